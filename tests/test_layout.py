"""The engine's two halves: scoring never loads the code that builds models."""

from __future__ import annotations

import subprocess
import sys


def test_scoring_imports_nothing_from_training() -> None:
    code = (
        "import sys, detector_core.detector, detector_core.cli, detector_core.benchmark;"
        "print(sorted(m for m in sys.modules if m.startswith('detector_core.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
