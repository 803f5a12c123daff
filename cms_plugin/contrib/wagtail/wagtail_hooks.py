"""Wagtail hooks: the reviewers' "Needs review" menu item and admin URLs, and the optional
warning before publishing a page that uses an unconfirmed likely-AI image."""

from __future__ import annotations

from django.urls import include, path, reverse
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from ...models import REVIEW_PERMISSION
from ..decisions import is_reviewer
from . import publish_warning, urls


class NeedsReviewMenuItem(MenuItem):
    def is_shown(self, request) -> bool:
        return is_reviewer(request.user)


@hooks.register("register_admin_urls")
def register_urls():
    return [path("humanmade/", include(urls))]


@hooks.register("register_admin_menu_item")
def register_menu_item():
    return NeedsReviewMenuItem(
        "Needs review",
        reverse("humanmade_wagtail:queue"),
        name="humanmade-needs-review",
        icon_name="warning",
        order=450,
    )


hooks.register("before_publish_page", publish_warning.before_publish_page)
hooks.register("register_admin_urls", publish_warning.register_urls)


@hooks.register("register_permissions")
def review_permission():
    """Offer "Can decide whether a detection is human-made" in Settings → Groups."""
    from django.contrib.auth.models import Permission

    app_label, codename = REVIEW_PERMISSION.split(".")
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename)
