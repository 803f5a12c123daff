"""Which rows may be learnt from or judged on: reserved sources and sealed-set originals."""

from __future__ import annotations

from detector_core.training.data import ManifestRow
from detector_core.training.sources import cap_per_source, reserved_sources, usable


def row(file: str, source: str, origin: str = "", sha: str = "", label: str = "human"):
    return ManifestRow(
        file=file, split="train", label=label, source_group=source, generator="",
        content="photo", sha256_original=sha, origin=origin,
    )  # fmt: skip


def test_reserved_by_source_or_origin_and_excluded_by_sha() -> None:
    reserved = frozenset({"stellarium-data", "comfyui-workflow-templates-media-api"})
    rows = [
        row("a", "stellarium-data"),
        row("b", "debian:other", origin="stellarium-data@0.22:/usr/share/x.png"),
        row("c", "pypi", origin="comfyui_workflow_templates_media_api@0.3.1:t/x.webp"),
        row("d", "debian:stellarium-data-extra"),  # a binary of the same source: reserved too
        row("e", "BSDS500", sha="ab" * 32),
        row("f", "BSDS500", sha="cd" * 32),
    ]
    kept = usable(rows, reserved, frozenset({"ab" * 32}))
    assert [r.file for r in kept] == ["f"]


def test_cap_keeps_the_same_rows_whatever_the_order() -> None:
    rows = [row(f"img{i}", "big", label="ai") for i in range(30)] + [row("x", "small")]
    first = cap_per_source(rows, 10)
    again = cap_per_source(list(reversed(rows)), 10)
    assert len(first) == 11 and {r.file for r in first} == {r.file for r in again}


def test_missing_lists_reserve_nothing(tmp_path) -> None:
    assert reserved_sources(tmp_path) == frozenset()
