"""What an editor sends to the checking desk becomes one Batch of Detections.

Files are queued one by one (`services.score_upload`); a ZIP is opened and each image in it
queued under "archive.zip/member.png"; pasted URLs are queued for the worker's safe fetch
(`services.submit_url`, which refuses at once what the fetch policy would).
Whatever is refused (not an image, too large, a bad URL, over the batch limit) is listed on
the batch with the reason, so nothing sent is silently lost.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.db import transaction

from .. import services
from ..conf import humanmade_settings
from ..models import Batch

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

MAX_URL_LENGTH = 2048
_ZIP_MAGIC = b"PK\x03\x04"


class Refused(Exception):
    """One input cannot be queued; the message says why, for people."""


def _is_zip(file: Any) -> bool:
    head = file.read(4)
    file.seek(0)
    return head == _ZIP_MAGIC


def _zip_members(name: str, file: Any, max_bytes: int) -> Iterator[tuple[str, bytes | Refused]]:
    """(name, bytes or the reason it is refused) for each file in the archive."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        yield name, Refused(f"The ZIP archive cannot be read ({exc}).")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
                continue
            label = f"{name}/{info.filename}"
            # The declared size first, then a capped read: a forged header cannot make us
            # inflate more than the limit.
            if info.file_size > max_bytes:
                yield label, Refused(f"It is {info.file_size:,} bytes; the limit is {max_bytes:,}.")
                continue
            try:
                with archive.open(info) as member:
                    data = member.read(max_bytes + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                # RuntimeError: encrypted; NotImplementedError: an unsupported compression.
                yield label, Refused(f"It cannot be read from the archive ({exc}).")
                continue
            if len(data) > max_bytes:
                yield label, Refused(f"It is larger than the limit of {max_bytes:,} bytes.")
                continue
            yield label, data


def expand_files(files: Iterable[Any], max_bytes: int) -> Iterator[tuple[str, Any]]:
    """(name, a file object, bytes, or a Refused) for each upload and each ZIP member."""
    for file in files:
        name = getattr(file, "name", None) or "upload"
        if _is_zip(file):
            yield from _zip_members(name, file, max_bytes)
        else:
            yield name, file


def parse_urls(text: str) -> list[str]:
    """One URL per line (blank lines and surrounding spaces ignored), duplicates once."""
    lines = (line.strip() for line in (text or "").splitlines())
    return list(dict.fromkeys(line for line in lines if line))


def _check_length(url: str) -> None:
    # The scheme, the form and the address are the fetch policy's to judge (submit_url).
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"The URL is longer than {MAX_URL_LENGTH} characters.")


def submit_batch(user: AbstractBaseUser, files: Iterable[Any], urls_text: str = "") -> Batch:
    """Queue everything sent at once as one Batch; scoring starts once it is committed."""
    from detector_core.errors import HumanmadeError

    limit = int(humanmade_settings.DESK_MAX_FILES)
    max_bytes = int(humanmade_settings.MAX_UPLOAD_BYTES)
    refused: list[dict[str, str]] = []
    names: dict[str, str] = {}
    queued = 0
    with transaction.atomic():
        batch = Batch.objects.create(created_by=user)

        def take(name: str, make: Any) -> None:
            nonlocal queued
            if queued >= limit:
                refused.append({"name": name, "reason": f"Over the limit of {limit} per batch."})
                return
            try:
                detection = make()
            except (Refused, HumanmadeError) as exc:  # not an image, a URL the policy refuses
                refused.append({"name": name, "reason": str(exc)})
                return
            queued += 1
            batch.detections.add(detection)
            names[str(detection.pk)] = name

        for name, item in expand_files(files, max_bytes):
            if isinstance(item, Refused):
                refused.append({"name": name, "reason": str(item)})
                continue
            take(name, lambda item=item: services.score_upload(item, user=user))
        for url in parse_urls(urls_text):

            def queue_url(url: str = url) -> Any:
                _check_length(url)
                return services.submit_url(url, user=user)

            take(url, queue_url)
        batch.refused, batch.names = refused, names
        batch.save(update_fields=["refused", "names"])
    return batch
