"""End to end: the demo app on PostgreSQL, a real Celery worker on Redis, an upload through
the REST API, and the result landing in the database.

Needs Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, database `test`); override
with HUMANMADE_TEST_REDIS_URL / HUMANMADE_TEST_DATABASE_URL. Skips where they are not
reachable, except in CI (CI=true), where their absence fails.
"""

from __future__ import annotations

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
from urllib.parse import urlsplit

import pytest
from conftest import IN_CI, encode, make_image

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("HUMANMADE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get(
    "HUMANMADE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"
)

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
    """migrate + a user with a token, a Celery worker, and the web app, all on PG/Redis."""
    _require_services()
    queue = f"humanmade-test-{uuid.uuid4().hex[:8]}"
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
    username = f"it-{uuid.uuid4().hex[:10]}"
    setup = subprocess.run(
        [sys.executable, "-c", SETUP, username],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    token = setup.stdout.strip().splitlines()[-1]
    port = _free_port()
    logs = {name: (tmp_path / f"{name}.log").open("w+") for name in ("worker", "web")}
    commands = {
        "worker": [
            *(sys.executable, "-m", "celery", "-A", "demo_site", "worker", "-Q", queue),
            *("--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat"),
            "--loglevel=info",
        ],
        "web": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
    }
    procs = {
        name: subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
        for name, cmd in commands.items()
    }
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert procs["web"].poll() is None, _tail(logs["web"])
            try:
                urllib.request.urlopen(f"{base}/api/schema/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        yield {"base": base, "token": token, "procs": procs, "logs": logs}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs.values():
            log.close()


def _tail(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-12000:]


def test_upload_through_the_api_is_scored_by_a_celery_worker(stack):
    data = encode(make_image(128, 96, seed=21))
    body, content_type = _multipart("file", "upload.png", data)
    status, headers, created = _request(
        f"{stack['base']}/api/detections/", stack["token"], body, content_type
    )
    assert status == 202, (created, _tail(stack["logs"]["web"]))
    assert created["status"] == "pending"  # queued for the worker, not scored in the request
    location = headers["Location"]

    deadline = time.monotonic() + 120
    result = created
    while time.monotonic() < deadline and result["status"] in ("pending", "scoring"):
        assert stack["procs"]["worker"].poll() is None, _tail(stack["logs"]["worker"])
        time.sleep(0.5)
        _, _, result = _request(location, stack["token"])
    assert result["status"] in ("needs_review", "scored"), (
        result,
        _tail(stack["logs"]["worker"]),
    )
    assert result["model_version"] == "test-0"
    assert 0.0 <= result["probability"] <= 1.0
    assert result["band"] in ("likely_human", "uncertain", "likely_ai")
    assert result["evidence"]["image"]["sha256"] == created["sha256"]
    assert "cms_plugin.score_detection" in _tail(stack["logs"]["worker"])
