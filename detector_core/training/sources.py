"""Which images the model may learn from or be judged on.

Two lists beside the datasets decide it: `reserved-sources.txt` names packages kept for
independent checks (never trained on, evaluated on or used to choose a model), and
`holdout/exclude-sha256.txt` names the originals of the sealed test set. Both are applied to
every manifest, the shared dataset's included, before anything else sees a row.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from .corpus import read_excluded, read_reserved
from .data import ManifestRow, default_dataset_dir

SHARED_ENV = "HUMANMADE_SHARED"


def shared_dir() -> Path:
    """`$HUMANMADE_SHARED`, else the folder that holds the dataset (`../shared`)."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else default_dataset_dir().parent


def reserved_sources(shared: Path | None = None) -> frozenset[str]:
    """The reserved names; none where the lists are absent (a fixture dataset, say)."""
    path = (shared or shared_dir()) / "reserved-sources.txt"
    return frozenset(read_reserved(path)) if path.is_file() else frozenset()


def excluded_sha256(shared: Path | None = None) -> frozenset[str]:
    path = (shared or shared_dir()) / "holdout" / "exclude-sha256.txt"
    return frozenset(read_excluded(path)) if path.is_file() else frozenset()


def is_reserved(row: ManifestRow, reserved: frozenset[str]) -> bool:
    """Whether the row's source or origin names a reserved package (any prefix form)."""
    text = re.sub(r"[-_.]+", "-", f"{row.source_group} {row.origin}".lower())
    return any(re.search(rf"(^|[\s:/@]){re.escape(n)}\b", text) for n in reserved)


def usable(
    rows: Sequence[ManifestRow],
    reserved: frozenset[str] | None = None,
    excluded: frozenset[str] | None = None,
) -> list[ManifestRow]:
    """The rows neither reserved nor cut from a sealed-set original."""
    reserved = reserved_sources() if reserved is None else reserved
    excluded = excluded_sha256() if excluded is None else excluded
    return [r for r in rows if not is_reserved(r, reserved) and r.sha256_original not in excluded]


def cap_per_source(rows: Sequence[ManifestRow], cap: int) -> list[ManifestRow]:
    """At most `cap` rows per (label, source), the same ones on every run (chosen by hash).

    One source holds half of the shared dataset's AI images; beyond a few hundred images it
    teaches the head that source, not generators, and costs encoder time.
    """
    groups: dict[tuple[str, str], list[ManifestRow]] = defaultdict(list)
    for r in rows:
        groups[(r.label, r.source_group)].append(r)
    keep: set[int] = set()
    for members in groups.values():
        members = sorted(members, key=lambda r: hashlib.sha256(r.file.encode()).hexdigest())
        keep.update(id(r) for r in members[:cap])
    return [r for r in rows if id(r) in keep]
