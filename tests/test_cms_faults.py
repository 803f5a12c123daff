"""Fault injection on the real stack: the demo on PostgreSQL, Celery workers on Redis, the
REST API over HTTP. Whatever dies, no upload is lost and no Detection stays unscored:

- a prefork pool child killed (`kill -9`) in the middle of a task: the task comes back;
- a solo worker killed (`kill -9`): the task comes back after the visibility timeout;
- the broker stopped while images are uploaded: 503 JSON, the file kept, scored later;
- the Detection's row locked when the worker starts: retried, then scored.

The worker is held "mid-task" by turning the stored upload into a named pipe: the task has
marked the row `scoring` and waits in open() until the test writes the image into the pipe.

Needs Redis and PostgreSQL like tests/test_cms_integration.py (HUMANMADE_TEST_REDIS_URL,
HUMANMADE_TEST_DATABASE_URL); skips where they are missing, except under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import encode, make_image
from test_cms_integration import (
    DATABASE_URL,
    REDIS_URL,
    REPO,
    _free_port,
    _multipart,
    _request,
    _require_services,
    _tail,
    demo_site_user,
)

DONE = ("needs_review", "scored")


class BrokerProxy:
    """A TCP relay in front of Redis that the test can stop and start: the broker going
    down and coming back, as the web process sees it, without touching the real Redis."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        parts = urlsplit(REDIS_URL)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [listener, *sockets]:
            if sock is None:
                continue
            _shut(sock)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(src)
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


class Stack:
    """The web app and workers as processes; every process is stopped at teardown."""

    def __init__(self, tmp_path: Path, env: dict[str, str], token: str, queue: str) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.token = token
        self.queue = queue
        self.base = ""
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, TextIO] = {}

    def start(self, name: str, command: list[str], **env: str) -> subprocess.Popen:
        self.logs[name] = (self.tmp_path / f"{name}.log").open("w+")
        self.procs[name] = subprocess.Popen(
            command,
            cwd=REPO,
            env={**self.env, **env},
            stdout=self.logs[name],
            stderr=subprocess.STDOUT,
        )
        return self.procs[name]

    def start_web(self, **env: str) -> None:
        port = _free_port()
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        web = self.start("web", command, **env)
        self.base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{self.base}/api/schema/"), 90, lambda: self.tail("web"))
        assert web.poll() is None, self.tail("web")

    def start_worker(self, name: str, pool: str, **env: str) -> subprocess.Popen:
        command = [
            *(sys.executable, "-m", "celery", "-A", "demo_site", "worker", "-Q", self.queue),
            *("--hostname", f"{name}@%h", f"--pool={pool}", "--concurrency=1"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=info"),
        ]
        return self.start(name, command, **env)

    def upload(self, data: bytes) -> tuple[int, dict, dict]:
        body, content_type = _multipart("file", "upload.png", data)
        return _request(f"{self.base}/api/detections/", self.token, body, content_type)

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def tail(self, name: str) -> str:
        return _tail(self.logs[name])

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs.values():
            log.close()


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except (urllib.error.URLError, ConnectionError):
        return False


def wait_for(condition: Callable[[], bool], seconds: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, why()
        time.sleep(0.3)


@pytest.fixture
def stack(tmp_path, tiny_weights):
    """migrate, a user with a token; the test starts the web app and workers it needs."""
    _require_services()
    queue = f"humanmade-fault-{uuid.uuid4().hex[:8]}"
    env, token = demo_site_user(queue, tiny_weights, tmp_path, "fault")
    running = Stack(tmp_path, env, token, queue)
    try:
        yield running
    finally:
        running.close()


def _row(pk: int) -> dict:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(DATABASE_URL, row_factory=dict_row, connect_timeout=5) as conn:
        return conn.execute(
            "SELECT id, status, attempts, error, upload FROM cms_plugin_detection WHERE id = %s",
            (pk,),
        ).fetchone()


def _hold_in_a_pipe(stack: Stack, pk: int) -> Path:
    """Replace the stored upload by a named pipe: a worker reading it waits in open()."""
    path = Path(stack.env["HUMANMADE_DEMO_MEDIA_ROOT"]) / _row(pk)["upload"]
    path.unlink()
    os.mkfifo(path)
    return path


def _release(pipe: Path, data: bytes) -> None:
    """Hand the waiting reader the image (open() for writing waits for the reader)."""
    done = threading.Event()

    def write() -> None:
        with open(pipe, "wb") as fh:
            fh.write(data)
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(30), "no worker was reading the upload"


def _pool_children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _image(seed: int) -> bytes:
    return encode(make_image(128, 96, seed))


def test_a_pool_child_killed_mid_task_gives_the_task_back(stack):
    data = _image(61)
    stack.start_web()
    status, _, detection = stack.upload(data)
    assert status == 202, detection
    pk = detection["id"]
    pipe = _hold_in_a_pipe(stack, pk)

    worker = stack.start_worker("prefork", "prefork")
    wait_for(lambda: _row(pk)["status"] == "scoring", 90, lambda: stack.tail("prefork"))
    wait_for(lambda: bool(_pool_children(worker.pid)), 30, lambda: stack.tail("prefork"))
    children = _pool_children(worker.pid)
    os.kill(children[0], signal.SIGKILL)

    # Celery used to acknowledge the message here (WorkerLostError): the row stayed
    # `scoring` with attempts 1 for ever. Now the message goes back and a new child starts.
    wait_for(lambda: _row(pk)["attempts"] == 2, 90, lambda: stack.tail("prefork"))
    assert "WorkerLostError" in stack.tail("prefork")
    _release(pipe, data)
    wait_for(lambda: _row(pk)["status"] in DONE, 90, lambda: stack.tail("prefork"))
    assert worker.poll() is None
    _, _, result = _request(f"{stack.base}/api/detections/{pk}/", stack.token)
    assert result["status"] in DONE and 0.0 <= result["probability"] <= 1.0


def test_a_killed_solo_worker_gives_the_task_back_after_the_visibility_timeout(stack):
    data = _image(62)
    timeout = {"HUMANMADE_CELERY_VISIBILITY_TIMEOUT": "3"}
    stack.start_web(**timeout)
    status, _, detection = stack.upload(data)
    assert status == 202, detection
    pk = detection["id"]
    pipe = _hold_in_a_pipe(stack, pk)

    first = stack.start_worker("solo-1", "solo", **timeout)
    wait_for(lambda: _row(pk)["status"] == "scoring", 90, lambda: stack.tail("solo-1"))
    first.kill()  # kill -9 of the whole worker: nothing can give the message back
    first.wait()
    os.unlink(pipe)
    os.mkfifo(pipe)  # the next worker waits in the pipe too, until the test feeds it

    stack.start_worker("solo-2", "solo", **timeout)
    # kombu restores unacknowledged messages older than the visibility timeout every 10 s.
    wait_for(lambda: _row(pk)["attempts"] == 2, 60, lambda: stack.tail("solo-2"))
    _release(pipe, data)
    wait_for(lambda: _row(pk)["status"] in DONE, 90, lambda: stack.tail("solo-2"))


def test_the_broker_stopped_during_uploads_loses_nothing(stack):
    redis = urlsplit(REDIS_URL)
    proxy = BrokerProxy((redis.hostname or "127.0.0.1", redis.port or 6379))
    proxy.start()
    try:
        stack.start_web(HUMANMADE_CELERY_BROKER_URL=proxy.url)
        stack.start_worker("worker", "prefork")  # the worker reaches Redis directly
        status, _, first = stack.upload(_image(63))
        assert status == 202, first
        wait_for(lambda: _row(first["id"])["status"] in DONE, 90, lambda: stack.tail("worker"))

        proxy.stop()
        retried, swept = _image(64), _image(65)
        status, headers, body = stack.upload(retried)
        # It used to be Django's HTML 500 page, with a pending row nobody would queue.
        assert status == 503, (body, stack.tail("web"))
        assert body["error"] == "queue_unavailable" and set(body) == {
            "error",
            "message",
            "id",
            "url",
        }
        assert headers["Retry-After"] == "30"
        status, _, again = stack.upload(retried)
        assert (status, again["error"]) == (503, "queue_unavailable")  # not 202 with a dead row
        status, _, body = stack.upload(swept)
        assert status == 503, body
        rows = {pk: _row(pk) for pk in range(first["id"] + 1, first["id"] + 3)}
        assert [row["status"] for row in rows.values()] == ["pending", "pending"]
        assert all(row["upload"] for row in rows.values())  # the files are stored

        proxy.start()
        status, _, back = stack.upload(retried)
        assert status == 202, back
        retried_pk, swept_pk = sorted(rows)
        assert back["id"] == retried_pk  # the same Detection, queued now
        sweep = stack.manage("humanmade_sweep", "--older-than", "0")
        assert sweep.returncode == 0, sweep.stdout + sweep.stderr
        for pk in (retried_pk, swept_pk):
            wait_for(lambda pk=pk: _row(pk)["status"] in DONE, 90, lambda: stack.tail("worker"))
    finally:
        proxy.stop()


def test_a_locked_row_when_the_worker_starts_is_retried_then_scored(stack):
    import psycopg

    stack.start_web()
    status, _, detection = stack.upload(_image(66))
    assert status == 202, detection
    pk = detection["id"]
    with psycopg.connect(DATABASE_URL, connect_timeout=5) as lock:
        lock.execute("SELECT id FROM cms_plugin_detection WHERE id = %s FOR UPDATE", (pk,))
        # The worker gives up waiting for the lock after 1 s (what SQLite's "database is
        # locked" is to the demo). That used to end the task with the row left pending.
        stack.start_worker("worker", "prefork", PGOPTIONS="-c lock_timeout=1000")
        wait_for(
            lambda: "transient failure, will retry" in stack.tail("worker"),
            90,
            lambda: stack.tail("worker"),
        )
        assert _row(pk)["status"] == "pending"
    # The lock is gone with the connection; the retry (10 s back-off) scores the image.
    wait_for(lambda: _row(pk)["status"] in DONE, 90, lambda: stack.tail("worker"))
