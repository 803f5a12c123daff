"""A long-lived process gives a large image's memory back once it is scored: the engine
trims the heap after images of RELEASE_AFTER_PIXELS or more (benchmarks/memory_high_water.py
prints the figures: RSS before and after, the peak, bytes per pixel)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import encode, make_image

from detector_core import Detector
from detector_core import detector as detector_module
from detector_core.memory import RELEASE_AFTER_PIXELS, _malloc_trim, release_freed_memory

glibc = pytest.mark.skipif(_malloc_trim() is None, reason="needs glibc's malloc_trim")

# Fills the heap with 200 MB of 64 KiB blocks (under glibc's mmap threshold, so they come
# from the heap) between small blocks that stay, as a scoring leaves it; frees the large
# ones, and prints RSS after the free and after the release.
HEAP = r"""
import sys
from pathlib import Path
from detector_core.memory import release_freed_memory

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

blocks, pins = [], []
for _ in range(3200):
    blocks.append(bytearray(64 * 1024))
    pins.append(bytearray(1024))  # kept: the freed blocks become holes inside the heap
del blocks
freed = rss_mb()
released = release_freed_memory()
print(freed, rss_mb(), released)
"""


@glibc
def test_freed_heap_memory_stays_mapped_until_it_is_released():
    run = subprocess.run([sys.executable, "-c", HEAP], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    freed, after, released = run.stdout.split()
    assert released == "True"
    # Without the release the 200 MB stayed resident (what a long-lived API process did).
    assert int(freed) - int(after) > 150, run.stdout


def test_small_images_are_not_worth_a_release():
    assert release_freed_memory(RELEASE_AFTER_PIXELS - 1) is False


def test_the_engine_releases_memory_after_a_large_image(tiny_weights, monkeypatch):
    released: list[int | None] = []
    monkeypatch.setattr(detector_module, "release_freed_memory", released.append)
    detector = Detector(tiny_weights, stability_check=False, provenance=False)
    detector.score(encode(make_image(2400, 1800, seed=5), "JPEG", quality=85))
    detector.score(encode(make_image(200, 150, seed=6)))
    assert released == [2400 * 1800, 200 * 150]  # the function itself skips the small one
