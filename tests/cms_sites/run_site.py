"""Run a CMS site's scenarios in a pytest of its own (Django is set up once per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI

SITES = Path(__file__).resolve().parent
REPO = SITES.parent.parent


def run_scenarios(
    scenarios: str, settings: str, needs: tuple[str, ...], tmp_path: Path, **env: str
) -> None:
    """Fail with the inner run's report unless every scenario in `scenarios` passed.

    Skips where the CMS packages are not installed, except in CI (CI=true)."""
    missing = [name for name in needs if _missing(name)]
    if missing:
        message = f"not installed: {', '.join(missing)} (pip install 'humanmade[cms]')"
        if IN_CI:
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    run_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SITES), os.environ.get("PYTHONPATH")])),
        "DJANGO_SETTINGS_MODULE": settings,
        "HUMANMADE_TEST_FILES": str(tmp_path / "files"),
        **env,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SITES / scenarios),
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "inner"),
            "-W",
            "ignore::DeprecationWarning",
        ],
        cwd=REPO,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    report = (result.stdout + result.stderr)[-20000:]
    assert result.returncode == 0, report
    assert " passed" in report, report


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None
