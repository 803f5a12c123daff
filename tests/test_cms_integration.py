"""End to end: the demo app on PostgreSQL, a real Celery worker on Redis, an upload through
the REST API, and the result landing in the database; then new weights are deployed (the
worker restarted on them) and `manage.py humanmade_rescore` queues the re-scoring for it.

Needs Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, database `test`); override
with HUMANMADE_TEST_REDIS_URL / HUMANMADE_TEST_DATABASE_URL. Each test session uses a Redis
database of its own and each stack its own queue names, so that no other Celery worker on
the machine takes or restores their tasks. Skips where they are not
reachable, except in CI (CI=true), where their absence fails.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import IN_CI, encode, make_image

REPO = Path(__file__).resolve().parent.parent
REDIS_SERVER = os.environ.get("HUMANMADE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SESSION_KEY = "humanmade-test-session"


def _session_redis_url(server: str) -> str:
    """`server` with a Redis database of this test session's own (1-15, claimed with a key
    that expires): another Celery worker on the machine (db 0, a developer's, another
    session's) can then neither take nor restore this session's tasks. The database in
    HUMANMADE_TEST_REDIS_URL is replaced; its host, port and password are kept."""
    import random

    parts = urlsplit(server)
    token = uuid.uuid4().hex
    databases = list(range(1, 16))
    random.shuffle(databases)
    try:
        import redis

        for db in databases:
            client = redis.Redis.from_url(urlunsplit(parts._replace(path=f"/{db}")))
            if client.set(SESSION_KEY, token, nx=True, ex=4 * 3600):

                def release(client=client) -> None:
                    with contextlib.suppress(Exception):
                        if client.get(SESSION_KEY) == token.encode():
                            client.flushdb()  # the session's leftover queues go too

                atexit.register(release)
                return urlunsplit(parts._replace(path=f"/{db}"))
    except Exception:  # no Redis (the tests skip), no redis-py: any database will do
        pass
    return urlunsplit(parts._replace(path=f"/{databases[0]}"))


REDIS_URL = _session_redis_url(REDIS_SERVER)
DATABASE_SERVER = os.environ.get(
    "HUMANMADE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"
)


def _session_database_url(server_url: str) -> str:
    """A database of this test session's own on the PostgreSQL server, dropped at exit.

    The demo site's migrations run in it from scratch: a database that an earlier run (of
    another branch, say, with its own migrations) left behind cannot fail this one, and two
    test sessions on one machine never share rows."""
    try:
        import psycopg

        name = f"humanmade_it_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # no PostgreSQL (the tests skip) or no psycopg: use the URL as given
        return server_url

    def drop() -> None:
        try:
            with psycopg.connect(server_url, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:
            pass

    atexit.register(drop)
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


DATABASE_URL = _session_database_url(DATABASE_SERVER)

SETUP = """
import django, sys
django.setup()
from django.core.management import call_command
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
call_command("migrate", verbosity=0, interactive=False)
user = get_user_model().objects.create_user(sys.argv[1], password=None)
print(Token.objects.create(user=user).key)
"""


def demo_site_user(queue: str, tiny_weights: Path, tmp_path: Path, prefix: str):
    """The demo site's environment on PG/Redis, migrated, with a new user: (env, API token)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo_site.settings",
        "HUMANMADE_DEMO_DATABASE_URL": DATABASE_URL,
        "HUMANMADE_CELERY_BROKER_URL": REDIS_URL,
        "HUMANMADE_CELERY_QUEUE": queue,
        "HUMANMADE_WEIGHTS": str(tiny_weights),
        "HUMANMADE_DEMO_MEDIA_ROOT": str(tmp_path / "media"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    username = f"{prefix}-{uuid.uuid4().hex[:10]}"
    setup = subprocess.run(
        [sys.executable, "-c", SETUP, username],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    return env, setup.stdout.strip().splitlines()[-1]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def _require_services() -> None:
    missing = [u for u in (REDIS_URL, DATABASE_URL) if not _reachable(u)]
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing.append("psycopg (pip install 'psycopg[binary]')")
    if missing:
        message = "not reachable/installed: " + ", ".join(missing)
        if IN_CI:
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _request(url: str, token: str, body: bytes | None = None, content_type: str = ""):
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    request.add_header("Authorization", f"Token {token}")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, dict(exc.headers), json.loads(text)
        except ValueError:
            return exc.code, dict(exc.headers), {"body": text[:2000]}


@pytest.fixture
def stack(tmp_path, tiny_weights):
    """migrate + a user with a token, a Celery worker, and the web app, all on PG/Redis.

    `stack["start"](name, command, env)` starts a further process (say, a worker on other
    weights); every process started is stopped at teardown, whatever the test's outcome.
    """
    _require_services()
    queue = f"humanmade-test-{uuid.uuid4().hex[:8]}"
    env, token = demo_site_user(queue, tiny_weights, tmp_path, "it")
    port = _free_port()
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, TextIO] = {}

    def start(name: str, command: list[str], proc_env: dict[str, str]) -> subprocess.Popen:
        logs[name] = (tmp_path / f"{name}.log").open("w+")
        procs[name] = subprocess.Popen(
            command, cwd=REPO, env=proc_env, stdout=logs[name], stderr=subprocess.STDOUT
        )
        return procs[name]

    try:
        start("worker", _worker_command(queue, "worker"), env)
        start(
            "web",
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            env,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert procs["web"].poll() is None, _tail(logs["web"])
            try:
                urllib.request.urlopen(f"{base}/api/schema/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        yield {
            "base": base,
            "token": token,
            "queue": queue,
            "env": env,
            "procs": procs,
            "logs": logs,
            "start": start,
        }
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs.values():
            log.close()


def _worker_command(queue: str, name: str) -> list[str]:
    return [
        *(sys.executable, "-m", "celery", "-A", "demo_site", "worker", "-Q", queue),
        *("--hostname", f"{name}@%h"),
        *("--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat"),
        "--loglevel=info",
    ]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # a warm shutdown: the solo pool finishes its task, consumes no more
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _rows(ids: list[int]) -> dict[int, dict]:
    """The Detections' verdict columns, read straight from PostgreSQL."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(DATABASE_URL, row_factory=dict_row, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT id, status, probability, band, model_version, previous_probability,"
            " previous_band, previous_model_version, rescored_at"
            " FROM cms_plugin_detection WHERE id = ANY(%s)",
            (ids,),
        ).fetchall()
    return {row["id"]: row for row in rows}


def _tail(log: TextIO) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-12000:]


def test_upload_through_the_api_is_scored_by_a_celery_worker(stack, new_weights):
    created = []
    for seed in (21, 22):
        body, content_type = _multipart("file", "upload.png", encode(make_image(128, 96, seed)))
        status, headers, detection = _request(
            f"{stack['base']}/api/detections/", stack["token"], body, content_type
        )
        assert status == 202, (detection, _tail(stack["logs"]["web"]))
        assert detection["status"] == "pending"  # queued for the worker, not scored in the request
        created.append((headers["Location"], detection))

    results = []
    deadline = time.monotonic() + 120
    for location, result in created:
        while time.monotonic() < deadline and result["status"] in ("pending", "scoring"):
            assert stack["procs"]["worker"].poll() is None, _tail(stack["logs"]["worker"])
            time.sleep(0.3)
            _, _, result = _request(location, stack["token"])
        results.append(result)
    for (_, detection), result in zip(created, results, strict=True):
        assert result["status"] in ("needs_review", "scored"), (
            result,
            _tail(stack["logs"]["worker"]),
        )
        assert result["model_version"] == "test-0"
        assert 0.0 <= result["probability"] <= 1.0
        assert result["band"] in ("likely_human", "uncertain", "likely_ai")
        assert result["evidence"]["image"]["sha256"] == detection["sha256"]
    assert "cms_plugin.score_detection" in _tail(stack["logs"]["worker"])

    # Deploy new weights: a worker on them takes over the queue. It is started before the
    # old one stops, so that its start-up overlaps the old one's shutdown; nothing is queued
    # until the old worker has exited, so only the new one can take the re-scoring.
    ids = [result["id"] for result in results]
    before = _rows(ids)
    assert {pk: before[pk]["probability"] for pk in ids} == {
        r["id"]: r["probability"] for r in results
    }
    new_env = {**stack["env"], "HUMANMADE_WEIGHTS": str(new_weights)}
    new_worker = stack["start"](
        "worker-test-1", _worker_command(stack["queue"], "worker-test-1"), new_env
    )
    _stop(stack["procs"]["worker"])

    rescore = subprocess.run(
        [sys.executable, "manage.py", "humanmade_rescore"],
        cwd=REPO,
        env=new_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rescore.returncode == 0, rescore.stdout + rescore.stderr[-3000:]
    assert "Queued" in rescore.stdout and "with model test-1" in rescore.stdout, rescore.stdout
    assert f"on queue {stack['queue']!r}" in rescore.stdout, rescore.stdout

    deadline = time.monotonic() + 90
    rows = _rows(ids)
    while time.monotonic() < deadline and any(
        row["model_version"] != "test-1" for row in rows.values()
    ):
        assert new_worker.poll() is None, _tail(stack["logs"]["worker-test-1"])
        time.sleep(0.3)
        rows = _rows(ids)
    for pk in ids:
        row, old = rows[pk], before[pk]
        assert row["model_version"] == "test-1", (row, _tail(stack["logs"]["worker-test-1"]))
        assert row["previous_model_version"] == "test-0", row
        assert row["previous_probability"] == old["probability"], (row, old)
        assert row["previous_band"] == old["band"], (row, old)
        assert row["rescored_at"] is not None, row
        assert 0.0 <= row["probability"] <= 1.0, row
    log = _tail(stack["logs"]["worker-test-1"])
    assert "Task cms_plugin.rescore_detection[" in log, log
    assert "Task cms_plugin.rescore_detection[" not in _tail(stack["logs"]["worker"])


def test_a_video_upload_is_scored_by_a_celery_worker(stack, tmp_path):
    pytest.importorskip("av")
    from video_support import make_clip

    clip = make_clip(tmp_path / "clip.mp4", seconds=2).read_bytes()
    body, content_type = _multipart("file", "clip.mp4", clip)
    status, headers, detection = _request(
        f"{stack['base']}/api/detections/", stack["token"], body, content_type
    )
    assert status == 202, (detection, _tail(stack["logs"]["web"]))
    assert detection["status"] == "pending"
    result = detection
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and result["status"] in ("pending", "scoring"):
        assert stack["procs"]["worker"].poll() is None, _tail(stack["logs"]["worker"])
        time.sleep(0.3)
        _, _, result = _request(headers["Location"], stack["token"])
    assert result["status"] in ("needs_review", "scored"), (result, _tail(stack["logs"]["worker"]))
    assert "— video, " in result["summary"]
    evidence = result["evidence"]
    assert evidence["media"]["sha256"] == detection["sha256"]
    assert evidence["media"]["codec"] == "h264"
    assert len(evidence["frames"]) == evidence["coverage"]["frames_scored"] >= 2
    assert result["probability"] == pytest.approx(evidence["ai_probability"], abs=1e-6)
    assert "cms_plugin.score_detection" in _tail(stack["logs"]["worker"])
