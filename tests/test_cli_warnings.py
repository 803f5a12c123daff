"""Warnings the image library raises while reading a damaged file (corrupt EXIF, an image
past Pillow's decompression-bomb threshold) never reach the CLI's stderr as Python warnings
with source paths: they become the verdict's notes, shown with --verbose (and in --json)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import encode, make_image

REPO = Path(__file__).resolve().parent.parent


def _corrupt_exif_jpeg() -> bytes:
    """A JPEG whose EXIF Model tag claims 5000 bytes more than the file holds."""
    image = make_image(300, 200, seed=12)
    exif = image.getexif()
    exif[0x0110] = "Model" * 5
    raw = exif.tobytes()
    order = ">" if raw.removeprefix(b"Exif\0\0").startswith(b"MM") else "<"
    tag = struct.pack(f"{order}HH", 0x0110, 2)  # Model, ASCII
    data = bytearray(encode(image, "JPEG", quality=90, exif=raw))
    at = data.find(tag)
    count = struct.unpack(f"{order}I", data[at + 4 : at + 8])[0]
    data[at + 4 : at + 8] = struct.pack(f"{order}I", count + 5000)
    return bytes(data)


def _png_header_of_100_megapixels() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 10000, 10000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def damaged(tmp_path) -> tuple[Path, Path]:
    exif, bomb = tmp_path / "exif.jpg", tmp_path / "bomb.png"
    exif.write_bytes(_corrupt_exif_jpeg())
    bomb.write_bytes(_png_header_of_100_megapixels())
    return exif, bomb


def _cli(tiny_weights, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detector_core", "score", "--weights", str(tiny_weights), *args],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_library_warnings_do_not_reach_stderr(tiny_weights, damaged):
    exif, bomb = damaged
    run = _cli(tiny_weights, str(exif), str(bomb))
    assert run.returncode == 1  # the 100 MP image is refused
    # It used to print UserWarning / DecompressionBombWarning lines with PIL's source paths.
    assert "Warning" not in run.stderr and "site-packages" not in run.stderr, run.stderr
    assert run.stderr.splitlines() == [
        f"{bomb}: error: The image is 10000×10000 pixels (100 MP); the limit is 64 MP.",
        "1 of 2 inputs failed.",
    ]
    assert "note:" not in run.stdout  # quiet without --verbose


def test_verbose_shows_them_as_one_note_of_the_image_they_concern(tiny_weights, damaged):
    exif, bomb = damaged
    run = _cli(tiny_weights, "--verbose", str(exif), str(bomb))
    assert "Warning" not in run.stderr and "site-packages" not in run.stderr, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"{exif}: ")
    notes = [line for line in lines if line.startswith("  note: the image library")]
    assert len(notes) == 1 and "Tag data larger than file" in notes[0], run.stdout

    as_json = _cli(tiny_weights, "--json", str(exif))
    record = json.loads(as_json.stdout.splitlines()[0])
    assert any("Tag data larger than file" in note for note in record["notes"]), record
    assert "Warning" not in as_json.stderr, as_json.stderr
