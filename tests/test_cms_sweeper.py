"""The sweeper on the real stack (the demo on PostgreSQL, Redis as the broker, the REST API
over HTTP, `manage.py humanmade_sweep` as cron runs it):

- a sweep while the broker is down gives every row it could not queue back as it was, so the
  first sweep once the broker is back queues them;
- a backlog (messages waiting in the queue, no worker) is not queued again, sweep after
  sweep; only the messages that are gone from the queue are sent again.

Time passing is played by moving this test's rows' timestamps back an hour. Needs Redis and
PostgreSQL like tests/test_cms_integration.py; skips where they are missing, except CI=true.
"""

from __future__ import annotations

import base64
import json
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import test_cms_integration
from test_cms_faults import DONE, BrokerProxy, Stack, _image, wait_for
from test_cms_integration import REDIS_URL, _require_services, demo_site_user

DATABASE_URL = ""  # this test's own database: the sweeper takes every row in it


@pytest.fixture
def stack(tmp_path, tiny_weights, monkeypatch):
    """The demo on a database of its own (a sweep sees the whole table: other tests' rows
    must not be in it), migrated, with a user; processes and database go at teardown."""
    global DATABASE_URL
    import psycopg

    _require_services()
    shared = test_cms_integration.DATABASE_URL
    name = f"humanmade_sweep_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(shared, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    DATABASE_URL = urlunsplit(urlsplit(shared)._replace(path=f"/{name}"))
    monkeypatch.setattr(test_cms_integration, "DATABASE_URL", DATABASE_URL)
    queue = f"humanmade-sweep-{uuid.uuid4().hex[:8]}"
    running = None
    try:
        env, token = demo_site_user(queue, tiny_weights, tmp_path, "sweep")
        running = Stack(tmp_path, env, token, queue)
        yield running
    finally:
        if running is not None:
            running.close()
        _redis().delete(queue)
        with psycopg.connect(shared, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


HOUR = 3600.0


def _rows(pks: list[int]) -> dict[int, dict]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(DATABASE_URL, row_factory=dict_row, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT * FROM cms_plugin_detection WHERE id = ANY(%s)", (pks,)
        ).fetchall()
    return {row["id"]: row for row in rows}


def _pass_time(pks: list[int], seconds: float) -> None:
    """Move every timestamp of these rows `seconds` into the past: time passes for them."""
    import psycopg

    with psycopg.connect(DATABASE_URL, connect_timeout=5) as conn:
        columns = [
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = "
                "'cms_plugin_detection' AND data_type LIKE 'timestamp%%'"
            )
        ]
        moves = ", ".join(f"{name} = {name} - make_interval(secs => %s)" for name in columns)
        conn.execute(
            f"UPDATE cms_plugin_detection SET {moves} WHERE id = ANY(%s)",
            (*[seconds] * len(columns), pks),
        )


def _redis():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def _queued_ids(queue: str) -> list[int]:
    """The Detection ids of the messages waiting in `queue`, oldest first (kombu's Redis
    transport pushes on the left and takes from the right)."""
    ids = []
    for raw in reversed(_redis().lrange(queue, 0, -1)):
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        ids.extend(args)
    return ids


def _sweep(stack: Stack, **env: str):
    return stack.manage("humanmade_sweep", **env)


def test_a_sweep_while_the_broker_is_down_does_not_delay_the_sweep_after_it(stack):
    redis_at = urlsplit(REDIS_URL)
    proxy = BrokerProxy((redis_at.hostname or "127.0.0.1", redis_at.port or 6379))
    proxy.start()
    down = {"HUMANMADE_CELERY_BROKER_URL": proxy.url}
    try:
        stack.start_web(**down)
        proxy.stop()
        pks = []
        for seed in (71, 72):
            status, _, body = stack.upload(_image(seed))
            assert (status, body["error"]) == (503, "queue_unavailable"), body
            # The detection's id is a field of its own, as in a 202 answer.
            assert f"#{body['id']}" in body["message"]
            pks.append(body["id"])
        old, young = pks
        _pass_time([old], HOUR)  # uploaded an hour ago; `young` two minutes ago
        _pass_time([young], 120)
        before = _rows(pks)

        during = _sweep(stack, **down)
        assert during.returncode == 1, during.stdout + during.stderr
        assert "2 could not be queued" in during.stderr
        after = _rows(pks)
        # Given back untouched: the rows keep their age and stay pending.
        for pk in pks:
            assert after[pk]["status"] == "pending"
            assert after[pk]["updated_at"] == before[pk]["updated_at"]
        assert _queued_ids(stack.queue) == []

        proxy.start()
        back = _sweep(stack, **down)
        # It used to say "Queued 0": the sweep during the outage had made them look fresh.
        assert back.returncode == 0, back.stdout + back.stderr
        assert "Queued 2 " in back.stdout
        assert sorted(_queued_ids(stack.queue)) == sorted(pks)

        stack.start_worker("worker", "prefork")
        for pk in pks:
            wait_for(
                lambda pk=pk: _rows([pk])[pk]["status"] in DONE, 90, lambda: stack.tail("worker")
            )
    finally:
        proxy.stop()


def test_a_backlog_in_the_queue_is_not_queued_again_only_lost_messages_are(stack):
    stack.start_web()
    pks = []
    for seed in range(80, 100):
        status, _, body = stack.upload(_image(seed))
        assert status == 202, body
        pks.append(body["id"])
    assert _queued_ids(stack.queue) == pks  # the backlog: 20 messages, no worker
    counts = []
    for _ in range(2):
        _pass_time(pks, HOUR)  # each sweep sees them all older than STUCK_AFTER
        swept = _sweep(stack)
        assert swept.returncode == 0, swept.stdout + swept.stderr
        counts.append(len(_queued_ids(stack.queue)))
    print(f"messages in the queue after two sweeps over a backlog of 20: {counts}")
    # It used to be [40, 60]: one more message per pending row at every sweep.
    assert counts == [20, 20]
    assert sorted(r["status"] for r in _rows(pks).values()) == ["pending"] * 20

    # The broker loses the five oldest messages (say, Redis restarted without them):
    # those five, and only those, are queued again.
    _redis().rpop(stack.queue, 5)
    assert _queued_ids(stack.queue) == pks[5:]
    _pass_time(pks, HOUR)
    swept = _sweep(stack)
    assert "Queued 5 " in swept.stdout, swept.stdout + swept.stderr
    assert _queued_ids(stack.queue) == pks[5:] + pks[:5]
