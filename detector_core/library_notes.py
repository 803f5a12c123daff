"""The image library's warnings about one file (damaged EXIF, a size past Pillow's
decompression-bomb threshold) as notes of that file's verdict, instead of Python warnings
that print Pillow's source paths on stderr."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_LIBRARIES = tuple(f"{os.sep}{name}{os.sep}" for name in ("PIL", "pillow_heif"))


def _from_image_library(caught: warnings.WarningMessage) -> bool:
    return any(part in caught.filename for part in _LIBRARIES)


@contextmanager
def library_notes(notes: list[str] | None) -> Iterator[None]:
    """Append the image library's warnings raised meanwhile to `notes` (other warnings go on
    as they were); with None, change nothing.

    Python's warning filters are process-wide, so this is for single-threaded callers (the
    command line): in a threaded server another thread's warnings would be caught too.
    """
    if notes is None:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for item in caught:
        if _from_image_library(item):
            text = str(item.message).strip()
            if text and text not in notes:
                notes.append(text)
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
