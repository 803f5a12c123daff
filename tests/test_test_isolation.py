"""The integration and fault tests cannot be disturbed by another Celery worker on the same
machine: a Redis database of their own per session, their own queue names, and no task that
falls back to Celery's shared default queue."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from test_cms_integration import REDIS_URL, REPO, SESSION_KEY, _reachable


def test_the_session_has_a_redis_database_of_its_own():
    db = int(urlsplit(REDIS_URL).path.strip("/"))
    assert 1 <= db <= 15  # never database 0, where other workers run by default
    if not _reachable(REDIS_URL):
        pytest.skip("Redis is not reachable")
    redis = pytest.importorskip("redis")
    assert redis.Redis.from_url(REDIS_URL).get(SESSION_KEY)  # claimed for this session


def test_the_demo_sends_every_task_to_its_own_queue():
    env = {**os.environ, "HUMANMADE_CELERY_QUEUE": "humanmade-session-x"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    code = (
        "import demo_site.settings as s;"
        "print(s.CELERY_TASK_DEFAULT_QUEUE, s.HUMANMADE['CELERY_QUEUE'],"
        " s.CELERY_BEAT_SCHEDULE['humanmade-sweep']['options']['queue'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["humanmade-session-x"] * 3
