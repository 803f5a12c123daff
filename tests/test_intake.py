"""Tests for detector_core.intake: every image is built here, in memory or under tmp_path."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from detector_core.errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyImageError,
    FileTooLargeError,
    ImageError,
    NotAnImageError,
    UnreadableSourceError,
    UnsupportedImageError,
)
from detector_core.intake import (
    DecodedImage,
    IntakeLimits,
    decode_image,
    load_image,
    read_bytes,
    to_rgb,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    if fmt in ("HEIF", "AVIF") and fmt not in Image.SAVE:
        import pillow_heif

        pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def marked(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Blue image with a 6×6 red block in the top-left corner (survives lossy codecs)."""
    im = Image.new("RGB", size, BLUE)
    im.paste(RED, (0, 0, 6, 6))
    return im


def noise(size: tuple[int, int] = (64, 64), seed: int = 0) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def near(actual: tuple[int, ...], expected: tuple[int, ...], tol: int) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR of a valid PNG to declare another size (with a valid CRC)."""
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return png[:16] + bytes(ihdr) + crc + png[33:]


# --------------------------------------------------------------------------- formats

LOSSLESS = [("PNG", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True})]
LOSSY = [
    ("JPEG", {"quality": 95}),
    ("WEBP", {"quality": 95}),
    ("HEIF", {"quality": 95}),
    ("AVIF", {"quality": 95}),
]


@pytest.mark.parametrize(("fmt", "params"), LOSSLESS + LOSSY)
def test_round_trip(fmt: str, params: dict) -> None:
    data = encode(marked(), fmt, **params)
    result = decode_image(data)
    assert isinstance(result, DecodedImage)
    assert result.format == fmt
    assert result.image.mode == "RGB"
    assert (result.width, result.height) == (40, 20) == result.image.size
    assert result.n_bytes == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    tol = 0 if (fmt, params) in LOSSLESS else 24
    assert near(result.image.getpixel((1, 1)), RED, tol)
    assert near(result.image.getpixel((30, 15)), BLUE, tol)


def test_apng_gives_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, GREEN, BLUE)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)
    result = decode_image(data)
    assert result.format == "PNG"
    assert result.image.getpixel((4, 4)) == RED


def test_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in (GREEN, RED)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert decode_image(data).image.getpixel((4, 4)) == GREEN


def test_animated_webp_gives_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in (BLUE, RED)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert decode_image(data).image.getpixel((4, 4)) == BLUE


def test_mpo_is_reported_as_jpeg_first_frame() -> None:
    first, second = Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), GREEN)
    data = encode(first, "MPO", save_all=True, append_images=[second])
    result = decode_image(data)
    assert result.format == "JPEG"
    assert near(result.image.getpixel((8, 8)), RED, 8)


def test_transparent_png_gif_webp_over_white() -> None:
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (0, 0, 4, 8))
    for fmt in ("PNG", "WEBP", "GIF"):
        params = {"lossless": True} if fmt == "WEBP" else {}
        out = decode_image(encode(im, fmt, **params)).image
        assert out.getpixel((6, 4)) == WHITE, fmt
        assert out.getpixel((1, 4)) == RED, fmt


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "HEIF", "AVIF"])
def test_exif_orientation_6_rotates(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be rotated 90° clockwise for display
    data = encode(marked(), fmt, exif=exif.tobytes(), quality=95)
    result = decode_image(data)
    assert (result.width, result.height) == (20, 40)
    # the red block that was top-left in the stored pixels is now top-right
    assert near(result.image.getpixel((18, 1)), RED, 24)
    assert near(result.image.getpixel((1, 1)), BLUE, 24)


@pytest.mark.parametrize(
    ("orientation", "red_at"),
    [(1, (1, 1)), (2, (38, 1)), (3, (38, 18)), (4, (1, 18))],
)
def test_other_orientations(orientation: int, red_at: tuple[int, int]) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = decode_image(encode(marked(), "PNG", exif=exif.tobytes())).image
    assert out.size == (40, 20)
    assert out.getpixel(red_at) == RED


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_falls_back_to_no_transpose() -> None:
    jpeg = encode(marked(), "JPEG", quality=95)
    payload = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x12\x01" * 20  # IFD offset far away
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    result = decode_image(jpeg[:2] + app1 + jpeg[2:])
    assert result.image.size == (40, 20)
    assert near(result.image.getpixel((1, 1)), RED, 24)


def test_orientation_of_wrong_type_is_ignored() -> None:
    payload = (  # one IFD entry: Orientation stored as the ASCII string "abc"
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00"
        b"\x12\x01\x02\x00\x04\x00\x00\x00abc\x00\x00\x00\x00\x00"
    )
    jpeg = encode(marked(), "JPEG", quality=95)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    assert decode_image(jpeg[:2] + app1 + jpeg[2:]).image.size == (40, 20)


def test_exif_that_cannot_be_parsed_does_not_block_decoding(monkeypatch) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(marked(), "JPEG", exif=exif.tobytes(), quality=95)

    def explode(self: Image.Image) -> Image.Exif:
        raise SyntaxError("malformed EXIF")

    monkeypatch.setattr(Image.Image, "getexif", explode)
    result = decode_image(data)
    assert result.image.size == (40, 20)  # decoded, just not rotated


# --------------------------------------------------------------------------- to_rgb modes


def px(image: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    out = to_rgb(image)
    assert out.mode == "RGB"
    assert out.size == image.size
    return out.getpixel(xy)


def test_to_rgb_bilevel_and_grey() -> None:
    assert px(Image.new("1", (2, 2), 1)) == WHITE
    assert px(Image.new("1", (2, 2), 0)) == (0, 0, 0)
    assert px(Image.new("L", (2, 2), 77)) == (77, 77, 77)


def test_to_rgb_la() -> None:
    assert px(Image.new("LA", (2, 2), (100, 255))) == (100, 100, 100)
    assert px(Image.new("LA", (2, 2), (0, 0))) == WHITE
    assert near(px(Image.new("LA", (2, 2), (0, 128))), (127, 127, 127), 1)


def test_to_rgb_premultiplied() -> None:
    assert px(Image.new("RGBa", (2, 2), (10, 20, 30, 255))) == (10, 20, 30)
    assert px(Image.new("RGBa", (2, 2), (0, 0, 0, 0))) == WHITE
    assert px(Image.new("La", (2, 2), (60, 255))) == (60, 60, 60)
    assert px(Image.new("La", (2, 2), (0, 0))) == WHITE


def test_to_rgb_rgba() -> None:
    assert px(Image.new("RGBA", (2, 2), (255, 0, 0, 0))) == WHITE
    assert px(Image.new("RGBA", (2, 2), (1, 2, 3, 255))) == (1, 2, 3)
    assert near(px(Image.new("RGBA", (2, 2), (0, 0, 0, 128))), (127, 127, 127), 1)


def test_to_rgb_palette() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.putpixel((1, 0), 1)
    assert px(im, (0, 0)) == RED
    assert px(im, (1, 0)) == GREEN
    im.info["transparency"] = 1  # palette index 1 is transparent
    assert px(im, (1, 0)) == WHITE
    assert px(im, (0, 0)) == RED


def test_to_rgb_palette_per_entry_alpha_from_png() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.putpixel((1, 0), 1)
    data = encode(im, "PNG", transparency=bytes([255, 0]))  # tRNS: entry 1 fully transparent
    out = decode_image(data).image
    assert out.getpixel((0, 0)) == RED
    assert out.getpixel((1, 0)) == WHITE


def test_to_rgb_rgba_palette() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 255, 0, 255, 0, 0], "RGBA")
    im.putpixel((1, 0), 1)
    assert px(im, (0, 0)) == RED
    assert px(im, (1, 0)) == WHITE


def test_to_rgb_pa() -> None:
    im = Image.new("PA", (1, 1))
    im.putpalette([0, 0, 255] * 256)
    im.putpixel((0, 0), (0, 0))
    assert px(im) == WHITE
    im.putpixel((0, 0), (0, 255))
    assert px(im) == BLUE


def test_to_rgb_rgb_colour_key_transparency() -> None:
    im = Image.new("RGB", (2, 1), RED)
    im.putpixel((1, 0), GREEN)
    im.info["transparency"] = GREEN
    assert px(im, (1, 0)) == WHITE
    assert px(im, (0, 0)) == RED


def test_to_rgb_cmyk() -> None:
    assert near(px(Image.new("CMYK", (2, 2), (255, 0, 0, 0))), (0, 255, 255), 2)
    assert px(Image.new("CMYK", (2, 2), (0, 0, 0, 0))) == WHITE
    assert px(Image.new("CMYK", (2, 2), (0, 0, 0, 255))) == (0, 0, 0)


def test_to_rgb_cmyk_jpeg_and_tiff() -> None:
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    assert near(decode_image(encode(cyan, "TIFF")).image.getpixel((8, 8)), (0, 255, 255), 2)
    assert near(decode_image(encode(cyan, "JPEG")).image.getpixel((8, 8)), (0, 255, 255), 8)


def test_to_rgb_ycbcr_lab_hsv() -> None:
    assert near(px(Image.new("YCbCr", (2, 2), (255, 128, 128))), WHITE, 2)
    assert near(px(Image.new("YCbCr", (2, 2), (76, 85, 255))), RED, 3)
    assert near(px(Image.new("LAB", (2, 2), (255, 128, 128))), WHITE, 3)
    assert near(px(Image.new("LAB", (2, 2), (0, 128, 128))), (0, 0, 0), 3)
    assert px(Image.new("HSV", (2, 2), (0, 255, 255))) == RED
    assert px(Image.new("HSV", (2, 2), (85, 255, 255))) == GREEN


@pytest.mark.parametrize(("mode", "dtype"), [("I;16", "<u2"), ("I;16B", ">u2")])
def test_to_rgb_sixteen_bit_scales(mode: str, dtype: str) -> None:
    values = np.array([0, 257, 32768, 65535], dtype=dtype)
    im = Image.frombytes(mode, (4, 1), values.tobytes())
    out = to_rgb(im)
    assert [out.getpixel((x, 0))[0] for x in range(4)] == [0, 1, 128, 255]
    assert out.getpixel((2, 0)) == (128, 128, 128)


def test_to_rgb_mode_i_uses_sixteen_bit_range() -> None:
    im = Image.fromarray(np.array([[0, 32768, 65535, 70000, -5]], dtype=np.int32))
    assert im.mode == "I"
    out = to_rgb(im)
    assert [out.getpixel((x, 0))[0] for x in range(5)] == [0, 128, 255, 255, 0]


def test_sixteen_bit_png_round_trip() -> None:
    values = np.array([[0, 32768, 65535]], dtype="<u2")
    data = encode(Image.frombytes("I;16", (3, 1), values.tobytes()), "PNG")
    out = decode_image(data).image
    assert [out.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128,) * 3, WHITE]


def test_to_rgb_float() -> None:
    normalised = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert normalised.mode == "F"
    assert [to_rgb(normalised).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    byte_range = Image.fromarray(np.array([[0.0, 127.6, 300.0, np.nan]], dtype=np.float32))
    assert [to_rgb(byte_range).getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]


def test_to_rgb_returns_new_image_and_never_mutates() -> None:
    rgb = Image.new("RGB", (3, 3), RED)
    out = to_rgb(rgb)
    assert out is not rgb
    out.putpixel((0, 0), GREEN)
    assert rgb.getpixel((0, 0)) == RED

    rgba = Image.new("RGBA", (3, 3), (9, 9, 9, 0))
    before = rgba.tobytes()
    to_rgb(rgba)
    assert rgba.mode == "RGBA"
    assert rgba.tobytes() == before


def test_to_rgb_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), "RGBA")
    assert to_rgb(im).tobytes() == to_rgb(im).tobytes()


# --------------------------------------------------------------------------- limits


def test_zero_bytes() -> None:
    with pytest.raises(EmptyImageError, match="empty"):
        decode_image(b"")


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(EmptyImageError):
        load_image(path)


def test_oversized_bytes() -> None:
    data = encode(noise(), "PNG")
    limits = IntakeLimits(max_bytes=len(data) - 1)
    with pytest.raises(FileTooLargeError, match="limit"):
        decode_image(data, limits)
    with pytest.raises(FileTooLargeError):
        read_bytes(memoryview(data), limits)
    assert decode_image(data, IntakeLimits(max_bytes=len(data))).width == 64


def test_oversized_path_is_refused_by_size(tmp_path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(FileTooLargeError, match="limit is 1,000 bytes"):
        read_bytes(path, IntakeLimits(max_bytes=1000))


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_oversized_file_object_reads_at_most_limit_plus_one() -> None:
    reader = CountingReader(b"\0" * 10_000)
    with pytest.raises(FileTooLargeError):
        read_bytes(reader, IntakeLimits(max_bytes=1000))
    assert reader.bytes_read == 1001


def test_short_reads_are_joined() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = data

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            chunk, self._data = self._data[:7], self._data[7:]
            return chunk

    data = encode(marked(), "PNG")
    assert read_bytes(Trickle(data)) == data


def test_declared_size_over_limit_before_decoding() -> None:
    data = encode(noise((40, 40)), "PNG")
    with pytest.raises(DecompressionBombError) as info:
        decode_image(data, IntakeLimits(max_pixels=1000))
    assert str(info.value) == "The image is 40×40 pixels (1,600 pixels); the limit is 1,000 pixels."


def test_crafted_png_bomb_is_refused_without_decoding() -> None:
    tiny = encode(Image.new("RGB", (1, 1)), "PNG")
    with pytest.raises(DecompressionBombError) as info:
        decode_image(with_png_size(tiny, 9000, 9000))  # 81 MP: our check
    assert str(info.value) == "The image is 9000×9000 pixels (81 MP); the limit is 64 MP."
    with pytest.raises(DecompressionBombError) as info:
        decode_image(with_png_size(tiny, 30000, 30000))  # Pillow's own ceiling fires first
    assert str(info.value) == "The image is 30000×30000 pixels (900 MP); the limit is 64 MP."


def test_bomb_above_pillows_ceiling_but_within_ours() -> None:
    tiny = encode(Image.new("RGB", (1, 1)), "PNG")
    with pytest.raises(DecompressionBombError, match="safety ceiling"):
        decode_image(with_png_size(tiny, 20000, 20000), IntakeLimits(max_pixels=10**9))


def test_gif_bomb_is_refused() -> None:
    gif = bytearray(encode(Image.new("P", (1, 1)), "GIF"))
    gif[6:10] = struct.pack("<HH", 60000, 60000)  # logical screen size: 3.6 GP
    with pytest.raises(DecompressionBombError, match="the limit is 64 MP"):
        decode_image(bytes(gif))


def test_bomb_limit_applies_to_pil_input() -> None:
    with pytest.raises(DecompressionBombError):
        load_image(Image.new("RGB", (50, 50)), IntakeLimits(max_pixels=100))


def test_pillow_globals_are_left_alone() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    tiny = encode(Image.new("RGB", (1, 1)), "PNG")
    decode_image(tiny)
    with pytest.raises(DecompressionBombError):
        decode_image(with_png_size(tiny, 20000, 20000))
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        IntakeLimits(max_bytes=0)


# --------------------------------------------------------------------------- damaged data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
@pytest.mark.parametrize("tolerant_pillow", [False, True])
def test_truncated_jpeg_and_png(fmt: str, keep: float, tolerant_pillow: bool, monkeypatch) -> None:
    # Even with Pillow told to tolerate truncation (as some training code does), we refuse.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", tolerant_pillow)
    data = encode(noise(), fmt)
    cut = data[: int(len(data) * keep)] if keep > 0 else data[:keep]
    with pytest.raises(CorruptImageError):
        decode_image(cut)


@pytest.mark.parametrize(("fmt", "params"), [("WEBP", {}), ("GIF", {}), ("TIFF", {}), ("BMP", {})])
def test_truncated_other_formats(fmt: str, params: dict) -> None:
    data = encode(noise(), fmt, **params)
    with pytest.raises(CorruptImageError):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_truncated_heif_avif(fmt: str) -> None:
    data = encode(noise(), fmt)
    with pytest.raises(CorruptImageError):
        decode_image(data[: len(data) * 2 // 3])


def test_corrupt_png_idat_checksum() -> None:
    data = bytearray(encode(noise(), "PNG"))
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x5A for b in data[middle : middle + 16])
    with pytest.raises(CorruptImageError, match="checksum"):
        decode_image(bytes(data))


def test_corrupt_png_stream_with_valid_checksums() -> None:
    # Damage the compressed data but fix the CRC, so zlib itself has to notice.
    png = encode(noise(), "PNG")
    idat = png.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png[idat : idat + 4])
    body = bytearray(png[idat + 8 : idat + 8 + length])
    body[10:40] = bytes(30)
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
    damaged = png[: idat + 8] + bytes(body) + crc + png[idat + 12 + length :]
    with pytest.raises(CorruptImageError):
        decode_image(damaged)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_corrupt_middle_other_formats(fmt: str) -> None:
    params = {"compression": "tiff_lzw"} if fmt == "TIFF" else {}
    data = bytearray(encode(noise(), fmt, **params))
    middle = len(data) // 2
    data[middle : middle + 40] = bytes(b ^ 0x5A for b in data[middle : middle + 40])
    with pytest.raises(CorruptImageError):
        decode_image(bytes(data))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 ", b"II*\0junk"],
)
def test_signature_only_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptImageError):
        decode_image(data)


# --------------------------------------------------------------------------- not images

HTML = b"<!DOCTYPE html>\n<html><head><title>Hi</title></head><body>hello</body></html>\n"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
TEXT = "Ceci n’est pas une image — c’est du texte brut. ".encode() * 20


@pytest.mark.parametrize(
    ("data", "says"),
    [(TEXT, "text"), (HTML, "an HTML page"), (PDF, "a PDF document"), (b'{"a": 1}\n', "text")],
)
def test_non_images_named_jpg(tmp_path, data: bytes, says: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(NotAnImageError) as info:
        load_image(path)
    assert str(info.value) == f"The file is not an image (it looks like {says})."


def test_random_bytes() -> None:
    data = random.Random(1).randbytes(4096)
    with pytest.raises(NotAnImageError, match="no known image format"):
        decode_image(data)


def test_video_container_is_not_an_image() -> None:
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)
    with pytest.raises(NotAnImageError, match="video"):
        decode_image(mp4)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"8BPS\x00\x01" + bytes(40), "Photoshop"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(40), "JPEG 2000"),
    ],
)
def test_unsupported_image_formats(data: bytes, says: str) -> None:
    with pytest.raises(UnsupportedImageError, match=says):
        decode_image(data)


def test_dng_raw_is_not_mistaken_for_its_tiff_preview() -> None:
    from PIL import TiffImagePlugin

    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[50706] = b"\x01\x04\x00\x00"  # DNGVersion
    ifd.tagtype[50706] = 1
    with pytest.raises(UnsupportedImageError, match="DNG"):
        decode_image(encode(Image.new("RGB", (8, 8)), "TIFF", tiffinfo=ifd))


def test_extension_is_ignored(tmp_path) -> None:
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(encode(marked(), "PNG"))
    assert load_image(path).format == "PNG"


# --------------------------------------------------------------------------- sources


def test_missing_path(tmp_path) -> None:
    with pytest.raises(UnreadableSourceError, match="no file") as info:
        load_image(tmp_path / "nope.png")
    assert not isinstance(info.value, FileNotFoundError)
    with pytest.raises(UnreadableSourceError):
        read_bytes(str(tmp_path / "nope.png"))


def test_directory(tmp_path) -> None:
    with pytest.raises(UnreadableSourceError, match="folder"):
        load_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableSourceError, match="regular file"):
        read_bytes(fifo)


def test_path_types(tmp_path) -> None:
    data = encode(marked(), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for source in (path, str(path)):
        assert read_bytes(source) == data
    # bytes are always image data, never a path
    with pytest.raises(NotAnImageError):
        load_image(os.fsencode(path))
    assert load_image(path).sha256 == hashlib.sha256(data).hexdigest()


def test_file_objects(tmp_path) -> None:
    data = encode(marked(), "GIF")
    path = tmp_path / "x.gif"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        assert load_image(fh).format == "GIF"
    assert load_image(io.BytesIO(data)).n_bytes == len(data)
    with open(path) as text_mode, pytest.raises(TypeError, match="binary"):
        read_bytes(text_mode)
    closed = io.BytesIO(data)
    closed.close()
    with pytest.raises(UnreadableSourceError):
        read_bytes(closed)


def test_bytes_like_sources() -> None:
    data = encode(marked(), "PNG")
    digest = hashlib.sha256(data).hexdigest()
    for source in (data, bytearray(data), memoryview(data)):
        result = load_image(source)
        assert result.sha256 == digest
        assert result.n_bytes == len(data)
    assert decode_image(memoryview(data)).sha256 == digest


def test_pil_image_source() -> None:
    im = Image.new("RGBA", (5, 4), (10, 20, 30, 255))
    result = load_image(im)
    assert result.format == "RAW"
    assert result.n_bytes == 0
    assert (result.width, result.height) == (5, 4)
    assert result.image.mode == "RGB"
    assert result.sha256 == hashlib.sha256(result.image.tobytes()).hexdigest()
    assert result.sha256 == hashlib.sha256(bytes([10, 20, 30]) * 20).hexdigest()
    assert im.mode == "RGBA"  # input untouched


def test_opened_pil_image_keeps_format_and_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(io.BytesIO(encode(marked(), "PNG", exif=exif.tobytes()))) as opened:
        result = load_image(opened)
    assert result.format == "PNG"
    assert result.image.size == (20, 40)
    assert result.image.getpixel((18, 1)) == RED


def test_truncated_lazy_pil_image_is_corrupt() -> None:
    data = encode(noise(), "PNG")
    with Image.open(io.BytesIO(data[: len(data) // 2])) as lazy, pytest.raises(CorruptImageError):
        load_image(lazy)


@pytest.mark.parametrize("bad", [42, None, 3.5, ["a"]])
def test_wrong_types(bad: object) -> None:
    with pytest.raises(TypeError):
        load_image(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        read_bytes(bad)  # type: ignore[arg-type]


def test_decode_image_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        decode_image("not bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- error contract


def _bad_inputs(tmp_path) -> list[object]:
    png = encode(noise(), "PNG")
    tiny = encode(Image.new("RGB", (1, 1)), "PNG")
    (tmp_path / "dir").mkdir()
    return [
        b"",
        png[:100],
        with_png_size(tiny, 20000, 20000),
        TEXT,
        HTML,
        PDF,
        random.Random(2).randbytes(500),
        b"8BPS" + bytes(40),
        tmp_path / "missing.jpg",
        tmp_path / "dir",
        b"\x89PNG\r\n\x1a\n",
    ]


def test_every_failure_is_an_image_error_with_a_message(tmp_path) -> None:
    for source in _bad_inputs(tmp_path):
        with pytest.raises(ImageError) as info:
            load_image(source)  # type: ignore[arg-type]
        message = str(info.value)
        assert message.strip(), source
        assert message[0].isupper() and message.endswith("."), message
    with pytest.raises(ImageError) as info:
        decode_image(b"x" * 11, IntakeLimits(max_bytes=10))
    assert str(info.value) == "The file is 11 bytes; the limit is 10 bytes."
