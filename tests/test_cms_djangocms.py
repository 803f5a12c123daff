"""cms_plugin.contrib.djangocms in a small django CMS 5 + django-filer 3 site
(tests/cms_sites/djangocms_site): the scenarios in tests/cms_sites/djangocms_scenarios.py,
run in a process of their own with that site's settings."""

from __future__ import annotations

import pytest

pytest.importorskip("django")
from cms_sites.run_site import run_scenarios  # noqa: E402


def test_django_cms_site_with_filer(tmp_path):
    run_scenarios(
        "djangocms_scenarios.py",
        "djangocms_site.settings",
        ("cms", "filer", "easy_thumbnails"),
        tmp_path,
    )
