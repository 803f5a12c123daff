"""cms_plugin when things die: a broker that is down at upload time, a database that is
locked, a worker that never finishes, and the sweeper that brings lost jobs back. In-process
(SQLite, tiny weights); tests/test_cms_faults.py does the same with real processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from cms_support import humanmade_conf, make_user, png
from django.core import checks
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from cms_plugin import services
from cms_plugin.models import Detection
from cms_plugin.tasks import rescore_detection, score_detection, sweep_detections
from demo_site.models import NewsPhoto


@pytest.fixture
def run_commits(django_capture_on_commit_callbacks):
    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


class Broker:
    """Celery's send_task as a broker that is up (records) or down (raises)."""

    def __init__(self) -> None:
        self.up = False
        self.sent: list[int] = []

    def __call__(self, name, args, **kwargs) -> None:
        if not self.up:
            raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.sent.extend(args)


@pytest.fixture
def broker(cms, tiny_weights, monkeypatch) -> Broker:
    cms.HUMANMADE = humanmade_conf(tiny_weights, IN_PROCESS=False)
    fake = Broker()
    monkeypatch.setattr(current_app, "send_task", fake)
    return fake


def _age(detection: Detection, seconds: float) -> None:
    Detection.objects.filter(pk=detection.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds)
    )


# --- a worker killed mid-task -----------------------------------------------------------


def test_tasks_go_back_on_the_queue_when_their_worker_dies():
    for task in (score_detection, rescore_detection):
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True


@pytest.mark.django_db
def test_sweeper_rescores_a_row_left_scoring_by_a_dead_worker(cms):
    detection = Detection(status=Detection.Status.SCORING, attempts=1)
    detection.upload.save("left.png", ContentFile(png(40)))
    fresh = Detection.objects.create(status=Detection.Status.SCORING, attempts=1)
    _age(detection, 3600)
    report = services.sweep_stuck()
    assert report.requeued == [detection.pk] and report.failed == []
    detection.refresh_from_db()
    assert detection.status == Detection.Status.NEEDS_REVIEW, detection.error
    assert detection.attempts == 2
    fresh.refresh_from_db()
    assert fresh.status == Detection.Status.SCORING  # younger than STUCK_AFTER: left alone


@pytest.mark.django_db
def test_an_image_that_kills_every_worker_fails_after_the_attempt_limit(cms, tiny_weights):
    cms.HUMANMADE = humanmade_conf(tiny_weights, TASK_MAX_ATTEMPTS=3)
    redelivered = Detection(status=Detection.Status.SCORING, attempts=3)
    redelivered.upload.save("killer.png", ContentFile(png(41)))
    assert services.run_detection(redelivered.pk) == Detection.Status.FAILED
    redelivered.refresh_from_db()
    assert redelivered.attempts == 3
    assert "started 3 times and never finished" in redelivered.error

    swept = Detection.objects.create(status=Detection.Status.SCORING, attempts=3)
    _age(swept, 3600)
    assert services.sweep_stuck().failed == [swept.pk]
    swept.refresh_from_db()
    assert swept.status == Detection.Status.FAILED and "given up" in swept.error


@pytest.mark.django_db
def test_sweep_command_and_task(cms):
    stuck = Detection(status=Detection.Status.PENDING)
    stuck.upload.save("never-queued.png", ContentFile(png(42)))
    _age(stuck, 40)
    call_command("humanmade_sweep", "--older-than", "120")
    stuck.refresh_from_db()
    assert stuck.status == Detection.Status.PENDING  # not old enough for this run
    call_command("humanmade_sweep", "--older-than", "30")
    stuck.refresh_from_db()
    assert stuck.status == Detection.Status.NEEDS_REVIEW
    with pytest.raises(CommandError, match="--older-than must be >= 0"):
        call_command("humanmade_sweep", "--older-than", "-1")
    assert sweep_detections.apply().get() == {"requeued": 0, "not_queued": 0, "failed": 0}


@pytest.mark.django_db
def test_a_finished_verdict_is_never_failed_afterwards(cms, run_commits):
    detection = run_commits(services.score_upload, png(43))
    services.mark_failed(detection.pk, "a late time-out of a duplicate message")
    detection.refresh_from_db()
    assert detection.status == Detection.Status.NEEDS_REVIEW and detection.error == ""


# --- the broker is down at upload time ----------------------------------------------------


# transaction=True: outside a test transaction on_commit runs at once, as in production, so
# the view learns whether the message went out.
@pytest.mark.django_db(transaction=True)
def test_api_upload_with_the_broker_down_is_kept_and_answered_503_json(broker):
    client = Client()
    client.force_login(make_user("newsdesk"))
    data = png(44)

    def post():
        return client.post("/api/detections/", {"file": SimpleUploadedFile("a.png", data)})

    down = post()
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "30"
    body = down.json()
    assert body["error"] == "queue_unavailable" and set(body) == {"error", "message", "id", "url"}
    detection = Detection.objects.get()
    assert body["id"] == detection.pk and f"#{detection.pk}" in body["message"]
    assert body["url"].endswith(f"/api/detections/{detection.pk}/")
    assert detection.status == Detection.Status.PENDING and detection.upload
    # Sending the same bytes again while the broker is down: still 503, still one row.
    assert post().status_code == 503
    assert Detection.objects.count() == 1

    broker.up = True
    again = post()
    assert again.status_code == 202
    assert again.json()["id"] == detection.pk
    assert broker.sent == [detection.pk]  # the earlier, never-queued row is queued now


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_queues_what_the_broker_missed(broker):
    client = Client()
    client.force_login(make_user("newsdesk"))
    response = client.post("/api/detections/", {"file": SimpleUploadedFile("b.png", png(45))})
    assert response.status_code == 503
    detection = Detection.objects.get()
    _age(detection, 7200)
    with pytest.raises(CommandError, match="1 could not be queued"):
        call_command("humanmade_sweep")
    assert broker.sent == []
    # The failed sweep left the row as it was (it used to make it look fresh, so that this
    # sweep queued nothing until STUCK_AFTER had passed again).
    broker.up = True
    call_command("humanmade_sweep")
    assert broker.sent == [detection.pk]
    detection.refresh_from_db()
    assert detection.queued_at is not None


@pytest.mark.django_db
def test_a_row_never_queued_is_swept_after_a_minute_one_queued_waits_stuck_after(broker):
    never = Detection.objects.create()
    queued = Detection.objects.create()
    broker.up = True
    services.dispatch(queued.pk)
    assert broker.sent == [queued.pk]
    for detection in (never, queued):
        Detection.objects.filter(pk=detection.pk).update(
            updated_at=timezone.now() - timedelta(seconds=90),
            created_at=timezone.now() - timedelta(seconds=90),
        )
    assert services.sweep_stuck().requeued == [never.pk]  # STUCK_AFTER is 1800 s
    assert services.sweep_stuck().requeued == []  # the first sweep's message is waiting
    assert broker.sent == [queued.pk, never.pk]


@pytest.mark.django_db
def test_watched_save_with_the_broker_down_commits_and_a_later_save_queues(broker, run_commits):
    photo = NewsPhoto(title="down")
    photo.image.save("down.png", ContentFile(png(46)), save=False)
    run_commits(photo.save)  # used to commit, then raise from the on_commit callback
    detection = Detection.objects.get()
    assert detection.status == Detection.Status.PENDING and broker.sent == []
    broker.up = True
    run_commits(photo.save)  # saved again, same file: the pending row is queued now
    assert broker.sent == [detection.pk]
    assert Detection.objects.count() == 1
    Detection.objects.filter(pk=detection.pk).update(status=Detection.Status.SCORED)
    run_commits(photo.save)
    assert broker.sent == [detection.pk]  # a finished row is not queued again


# --- the database is locked ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_locked_database_when_the_task_starts_is_retried_not_lost(cms, run_commits, monkeypatch):
    detection = Detection()
    detection.upload.save("locked.png", ContentFile(png(47)))
    real = Detection.objects.select_for_update
    locks = iter([OperationalError("database is locked")])

    def select_for_update(*args, **kwargs):
        for exc in locks:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(Detection.objects, "select_for_update", select_for_update)
    with pytest.raises(services.TransientError, match="database is locked"):
        services.run_detection(detection.pk)
    detection.refresh_from_db()
    assert (detection.status, detection.attempts) == (Detection.Status.PENDING, 0)

    locks = iter([OperationalError("database is locked")])
    score_detection.apply(args=[detection.pk])  # retried in-process after the failure
    detection.refresh_from_db()
    assert detection.status == Detection.Status.NEEDS_REVIEW, detection.error


@pytest.mark.django_db
def test_api_answers_503_json_when_the_database_is_locked(cms, monkeypatch):
    client = Client()
    client.force_login(make_user("newsdesk"))

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "score_upload", locked)
    response = client.post("/api/detections/", {"file": SimpleUploadedFile("c.png", png(48))})
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


# --- the settings that decide recovery ----------------------------------------------------


def _ids(settings) -> list[str]:
    return [m.id for m in checks.run_checks() if m.id and m.id.startswith("cms_plugin")]


@pytest.mark.parametrize(
    ("transport", "expected"),
    [
        (None, "cms_plugin.W006"),  # Celery's default of an hour
        ({"visibility_timeout": 120}, "cms_plugin.W007"),  # shorter than the time limit
        ({"visibility_timeout": 900}, None),
    ],
)
def test_check_warns_about_the_visibility_timeout(settings, tiny_weights, transport, expected):
    from celery import current_app

    settings.HUMANMADE = humanmade_conf(tiny_weights, IN_PROCESS=False)
    conf = current_app.conf
    saved = (conf.broker_url, conf.broker_transport_options)
    conf.broker_url = "redis://127.0.0.1:6379/0"
    conf.broker_transport_options = transport or {}
    try:
        found = [i for i in _ids(settings) if i in ("cms_plugin.W006", "cms_plugin.W007")]
    finally:
        conf.broker_url, conf.broker_transport_options = saved
    assert found == ([expected] if expected else [])


def test_check_warns_when_the_sweeper_or_attempts_would_cut_retries_short(settings, tiny_weights):
    settings.HUMANMADE = humanmade_conf(tiny_weights, STUCK_AFTER=300, TASK_MAX_ATTEMPTS=2)
    assert {"cms_plugin.W004", "cms_plugin.W005"} <= set(_ids(settings))
    settings.HUMANMADE = humanmade_conf(tiny_weights, STUCK_AFTER=0)
    assert "cms_plugin.E004" in _ids(settings)
    settings.HUMANMADE = humanmade_conf(tiny_weights)
    assert not {"cms_plugin.W004", "cms_plugin.W005", "cms_plugin.E004"} & set(_ids(settings))


@pytest.mark.django_db
def test_the_sweeper_queues_again_only_what_the_queue_no_longer_holds(broker, monkeypatch):
    from cms_plugin import queueing

    broker.up = True
    rows = [Detection.objects.create() for _ in range(6)]
    for detection in rows:  # published oldest first, an hour or more ago
        services.dispatch(detection.pk)
    for age, detection in enumerate(reversed(rows)):
        Detection.objects.filter(pk=detection.pk).update(
            updated_at=timezone.now() - timedelta(hours=3),
            queued_at=timezone.now() - timedelta(hours=1, seconds=age),
        )
    broker.sent.clear()
    depth: list[int | None] = [None]
    monkeypatch.setattr(queueing, "queue_depth", lambda: depth[0])

    report = services.sweep_stuck()  # the broker cannot be counted: nothing is sent
    assert (report.requeued, report.not_queued, broker.sent) == ([], [r.pk for r in rows], [])
    depth[0] = 6  # all six wait in the queue: a backlog
    assert services.sweep_stuck().requeued == []
    depth[0] = 4  # four wait: the two published first were taken, and their rows are pending
    assert services.sweep_stuck().requeued == [rows[0].pk, rows[1].pk]
    assert broker.sent == [rows[0].pk, rows[1].pk]
    depth[0] = 6  # the four, and the two queued again at the end: nothing is gone
    assert services.sweep_stuck().requeued == []
    depth[0] = 0  # the queue lost everything (a broker restarted without its data)
    assert services.sweep_stuck().requeued == [r.pk for r in rows[2:]]  # the two are young
