"""Giving the memory of a large image back to the system once it is scored.

Scoring takes about 40 bytes per pixel above the loaded model (the decoded image, its
arrays, tiles, the stability copies; benchmarks/memory_high_water.py measures it). Python
and NumPy free those buffers, but glibc keeps much of the freed heap mapped for reuse, so
a long-lived process (an API server, a Celery child) kept a few hundred MB per large image
it had seen. `malloc_trim` hands the free pages back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

# Smaller images leave little behind; trimming after each would only cost time.
RELEASE_AFTER_PIXELS = 4_000_000


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed_memory(pixels: int | None = None) -> bool:
    """Return the heap's free pages to the system, when `pixels` (those just scored) is
    None or at least RELEASE_AFTER_PIXELS. True when something was trimmed; a no-op
    (False) off glibc."""
    if pixels is not None and pixels < RELEASE_AFTER_PIXELS:
        return False
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
