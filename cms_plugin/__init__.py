"""humanmade's reusable Django app: score uploads in the background, queue borderline ones for
a person's decision in the admin, and offer the same through a REST API.

Add `"cms_plugin"` to INSTALLED_APPS, configure `HUMANMADE = {...}` (see `cms_plugin.conf`),
include `cms_plugin.api.urls` for the API. Scores are advisory evidence for reviewers.
"""


def score_upload(file, *, user=None):
    """Queue an uploaded file for scoring from a custom view; see `uploads.score_upload`."""
    from .uploads import score_upload as _score_upload

    return _score_upload(file, user=user)
