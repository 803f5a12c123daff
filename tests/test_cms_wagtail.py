"""cms_plugin.contrib.wagtail in a small Wagtail 8 site (tests/cms_sites/wagtail_site): the
scenarios in tests/cms_sites/wagtail_scenarios.py, run in a process of their own with that
site's settings, once with Wagtail's image model and once with a custom one."""

from __future__ import annotations

import pytest

pytest.importorskip("django")
from cms_sites.run_site import run_scenarios  # noqa: E402

NEEDS = ("wagtail", "modelcluster", "taggit")


def test_wagtail_site_with_wagtails_image_model(tmp_path):
    run_scenarios("wagtail_scenarios.py", "wagtail_site.settings", NEEDS, tmp_path)


def test_wagtail_site_with_a_custom_image_model(tmp_path):
    run_scenarios(
        "wagtail_scenarios.py",
        "wagtail_site.settings",
        NEEDS,
        tmp_path,
        HUMANMADE_TEST_IMAGE_MODEL="newsroom.NewsImage",
    )
