"""The demo's Celery app. Without a broker (the default) cms_plugin scores in-process after
commit; set HUMANMADE_CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to queue scoring for
a worker instead:

    celery -A demo_site worker -Q humanmade --pool=solo --loglevel=info
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

app = Celery("demo_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
