"""`humanmade data build-video`: clips from fake packages made here, never the network; and
the committed video lists themselves."""

from __future__ import annotations

import csv
import hashlib
import zipfile
from pathlib import Path

import pytest
from conftest import encode, make_image
from test_corpus import RESERVED, OfflineRegistry, _row, _write_lists
from video_support import make_animation, make_clip

from detector_core.training import corpus, video_corpus

WHEEL = ("fakeclips", "2.0")


@pytest.fixture
def clip_files(tmp_path) -> dict[str, bytes]:
    mp4 = make_clip(tmp_path / "a.mp4", seconds=1, fps=5, width=64, height=48).read_bytes()
    avi = make_clip(
        tmp_path / "b.avi", seconds=1, fps=5, width=64, height=48, codec="mpeg4", container="avi"
    ).read_bytes()
    return {
        "fakeclips/camera.mp4": mp4,
        "fakeclips/old.avi": avi,
        "fakeclips/anim.webp": make_animation("WEBP", n=3),
        "fakeclips/still.png": encode(make_image(64, 64), "PNG"),
    }


def _wheel(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name, version = WHEEL
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)


def _build(tmp_path, rows, files, reserved_text=RESERVED, splits=None):
    cache = tmp_path / "cache"
    _wheel(cache / "pypi", files)
    lists = _write_lists(tmp_path / "lists", rows, splits)
    (tmp_path / "reserved.txt").write_text(reserved_text)
    (tmp_path / "exclude.txt").write_text("")
    registry = OfflineRegistry(cache, corpus.read_reserved(tmp_path / "reserved.txt"))
    out = tmp_path / "out"
    report = video_corpus.build_video(
        lists,
        out,
        cache,
        reserved_path=tmp_path / "reserved.txt",
        exclude_path=tmp_path / "exclude.txt",
        registry=registry,
    )
    with (out / "manifest.csv").open(newline="") as fh:
        return report, list(csv.DictReader(fh)), out


def test_clips_are_stored_byte_for_byte_with_their_split_and_kind(tmp_path, clip_files):
    rows = [_row("pypi", *WHEEL, p, d) for p, d in clip_files.items()]
    rows[0]["label"], rows[0]["generator"] = "human", ""
    splits = {"pypi:fakeclips": "val"}
    report, manifest, out = _build(tmp_path, rows, clip_files, splits=splits)
    assert report.summary().startswith("3 clips (2 ai, 1 human) from 3 files")
    assert report.skipped == {"not a clip": 1}  # the still PNG
    by_name = {Path(m["origin"].split(":", 1)[1]).name: m for m in manifest}
    assert set(by_name) == {"camera.mp4", "old.avi", "anim.webp"}
    assert (by_name["camera.mp4"]["kind"], by_name["camera.mp4"]["container"]) == ("video", "mov")
    assert by_name["old.avi"]["container"] == "avi"
    assert (by_name["anim.webp"]["kind"], by_name["anim.webp"]["container"]) == (
        "animation",
        "WEBP",
    )
    for name, m in by_name.items():
        data = (out / m["file"]).read_bytes()
        assert data == clip_files[f"fakeclips/{name}"]
        assert m["sha256"] == hashlib.sha256(data).hexdigest()
        assert m["file"].startswith(f"clips/val/{m['label']}/")
    assert list(manifest[0]) == video_corpus.VIDEO_MANIFEST_COLUMNS


def test_a_changed_file_is_skipped_and_a_reserved_package_refused(tmp_path, clip_files):
    rows = [_row("pypi", *WHEEL, "fakeclips/camera.mp4", b"other bytes")]
    report, manifest, _ = _build(tmp_path, rows, clip_files)
    assert manifest == [] and report.skipped == {"sha256 mismatch": 1}
    with pytest.raises(corpus.CorpusError, match="reserved source"):
        _build(tmp_path / "r", rows, clip_files, reserved_text="fakeclips\n")


def test_the_command_builds_into_out(tmp_path, clip_files, monkeypatch, capsys):
    rows = [_row("pypi", *WHEEL, "fakeclips/anim.webp", clip_files["fakeclips/anim.webp"])]
    _wheel(tmp_path / "cache" / "pypi", clip_files)
    lists = _write_lists(tmp_path / "lists", rows)
    (tmp_path / "reserved.txt").write_text(RESERVED)
    (tmp_path / "exclude.txt").write_text("")
    code = corpus.main(
        [
            *("build-video", "--out", str(tmp_path / "vc"), "--lists", str(lists)),
            *("--cache", str(tmp_path / "cache"), "--reserved", str(tmp_path / "reserved.txt")),
            *("--exclude", str(tmp_path / "exclude.txt")),
        ]
    )
    assert code == 0
    assert "1 clips (1 ai)" in capsys.readouterr().out
    assert (tmp_path / "vc" / "manifest.csv").is_file()


SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def test_the_committed_video_lists_are_sound():
    rows = corpus.read_lists(video_corpus.DEFAULT_VIDEO_LISTS)
    labels = {(r.label, r.split) for r in rows}
    assert labels == {("ai", "train"), ("ai", "val"), ("human", "train"), ("human", "val")}
    for split in ("train", "val"):  # split by source: no source on both sides
        groups = {r.source_group for r in rows if r.split == split}
        other = {r.source_group for r in rows if r.split != split}
        assert not groups & other
    # Never the reserved ComfyUI wheels (the -media-video wheel is the one for clips).
    assert not any(r.package.startswith("comfyui-workflow-templates-media-a") for r in rows)
    reserved = SHARED / "reserved-sources.txt"
    if reserved.is_file():
        names = corpus.read_reserved(reserved)
        assert not [r.package for r in rows if corpus.reserved_match(r.package, names)]
    excluded = SHARED / "holdout" / "exclude-sha256.txt"
    if excluded.is_file():
        assert not {r.sha256 for r in rows} & corpus.read_excluded(excluded)
