"""Valid but unusual files that used to crash or be refused, and a damaged one that used to
be scored: a side over JPEG's 65,500 px limit, PNG ancillary data that browsers ignore, and
a JPEG cut mid-scan with an end marker glued on."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image, PngImagePlugin

from detector_core.cli import main
from detector_core.detector import Detector
from detector_core.errors import CorruptImageError, ImageError
from detector_core.intake import decode_image
from detector_core.stability import JPEG_MAX_SIDE, jpeg_resave, stability_variants
from detector_core.verdict import Verdict


def tall_png(height: int = 70_000, width: int = 32) -> bytes:
    """A width×height PNG; a repeated noise pattern keeps the file small (PNG finds it)."""
    rng = np.random.default_rng(7)
    pattern = rng.integers(0, 256, (64, width, 3), dtype=np.uint8)
    pixels = np.tile(pattern, (height // 64 + 1, 1, 1))[:height]
    return encode(Image.fromarray(pixels))


# --- a side over 65,500 px --------------------------------------------------------------


def test_the_jpeg_resave_of_a_very_tall_image_is_made_in_strips():
    image = decode_image(tall_png()).image
    assert image.height > JPEG_MAX_SIDE
    resaved = jpeg_resave(image)  # used to raise a bare OSError from the JPEG encoder
    original = np.asarray(image, dtype=np.int16)
    assert resaved.shape == original.shape
    # A true JPEG re-save: away from the crop's edges (where decoding smooths chroma across
    # blocks), the first rows equal a re-save of those rows on their own.
    alone = jpeg_resave(image.crop((0, 0, 32, 1024)))
    assert np.array_equal(resaved[16:1008], alone[16:1008])
    # And the seam between two strips is no worse than the rest.
    error = np.abs(resaved.astype(np.int16) - original).mean(axis=(1, 2))
    edge = JPEG_MAX_SIDE - JPEG_MAX_SIDE % 16
    assert 0 < error[edge - 16 : edge + 16].mean() < 1.5 * error.mean()
    names = [name for name, _ in stability_variants(image)]
    assert len(names) == 2


def test_score_many_scores_a_very_tall_image_with_the_rest(tiny_weights):
    ordinary = encode(make_image(seed=81))
    results = Detector(tiny_weights).score_many(
        [tall_png(), ordinary, b"not an image"], return_errors=True
    )
    assert isinstance(results[0], Verdict), results[0]
    assert (results[0].image.width, results[0].image.height) == (32, 70_000)
    assert isinstance(results[1], Verdict)
    assert isinstance(results[2], ImageError)


def test_one_image_failing_inside_scoring_does_not_cost_the_batch(tiny_weights, monkeypatch):
    from detector_core import detector as detector_module

    real = detector_module.stability_variants

    def breaks_on_wide(image):
        if image.width == 200:
            raise OSError("encoder broke")
        return real(image)

    monkeypatch.setattr(detector_module, "stability_variants", breaks_on_wide)
    sources = [encode(make_image(96, 64, seed=82)), encode(make_image(200, 64, seed=83))]
    every = {"stability_margin": None}  # the copies are made for every image, as before
    first, second = Detector(tiny_weights, **every).score_many(sources, return_errors=True)
    assert isinstance(first, Verdict)
    assert isinstance(second, ImageError) and "internal error: OSError" in str(second)
    with pytest.raises(OSError, match="encoder broke"):
        Detector(tiny_weights, **every).score_many(sources)  # without return_errors: raised


def test_cli_folder_run_scores_a_very_tall_image(capsys, tiny_weights, tmp_path):
    (tmp_path / "tall.png").write_bytes(tall_png())
    (tmp_path / "wide.png").write_bytes(encode(make_image(seed=84)))
    code = main(["score", str(tmp_path), "--weights", str(tiny_weights)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    assert [line.split(": ")[0] for line in out.splitlines()] == [
        str(tmp_path / "tall.png"),
        str(tmp_path / "wide.png"),
    ]


# --- PNG ancillary data that browsers ignore ----------------------------------------------


def _png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "shot on a phone")
    buf = io.BytesIO()
    make_image(seed=85).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_a_png_with_an_icc_profile_over_1_mb_is_decoded():
    buf = io.BytesIO()
    make_image(seed=86).save(buf, "PNG", icc_profile=os.urandom(1_200_000))
    decoded = decode_image(buf.getvalue())  # used to be "damaged or truncated"
    assert decoded.image.tobytes() == make_image(seed=86).tobytes()


def test_a_bad_checksum_on_an_ancillary_png_chunk_is_ignored():
    data = bytearray(_png_with_text())
    at = data.find(b"tEXt")
    (length,) = struct.unpack(">I", data[at - 4 : at])
    data[at + 4 + length] ^= 0xFF  # the chunk's CRC
    decoded = decode_image(bytes(data))  # used to be "its header is damaged"
    assert decoded.image.tobytes() == make_image(seed=85).tobytes()


def test_a_bad_checksum_on_the_image_data_is_still_refused():
    data = bytearray(_png_with_text())
    at = data.find(b"IDAT")
    (length,) = struct.unpack(">I", data[at - 4 : at])
    data[at + 4 + length] ^= 0xFF
    with pytest.raises(CorruptImageError, match="checksum"):
        decode_image(bytes(data))


def test_transparency_survives_when_ancillary_data_is_dropped():
    image = Image.new("P", (64, 64), 0)
    image.putpalette([255, 0, 0] * 256)
    image.info["transparency"] = 0
    buf = io.BytesIO()
    image.save(buf, "PNG", transparency=0, icc_profile=os.urandom(1_200_000))
    pixel = decode_image(buf.getvalue()).image.getpixel((10, 10))
    assert pixel == (255, 255, 255)  # transparent over white, not the red palette colour


# --- a JPEG cut mid-scan ------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_cut_mid_scan_with_an_end_marker_is_refused(progressive):
    data = encode(make_image(640, 480, seed=87), "JPEG", quality=90, progressive=progressive)
    assert decode_image(data).format == "JPEG"
    scan = data.find(b"\xff\xda")
    cut = data[: scan + (len(data) - scan) // 14] + b"\xff\xd9"  # 93 % of the data missing
    with pytest.raises(CorruptImageError, match="truncated"):
        decode_image(cut)


def test_a_jpeg_with_bytes_after_its_end_is_still_read():
    data = encode(make_image(160, 120, seed=88), "JPEG", quality=90)
    assert decode_image(data + b"trailing bytes a camera appended").format == "JPEG"
    assert zlib.crc32(data)  # the same bytes without the tail decode too
    assert decode_image(data).format == "JPEG"
