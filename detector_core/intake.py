"""Turn whatever a caller hands us (path, bytes, file object, PIL image) into 8-bit RGB pixels.

Everything arriving here is untrusted: the format is sniffed from the bytes (never from a file
name), only an allow-list of Pillow plugins is ever asked to parse the data, the declared pixel
count is checked before any pixels are decoded, and every decoding failure leaves as an
`ImageError` subclass whose message can be shown to a person as it is.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

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

__all__ = [
    "DEFAULT_LIMITS",
    "DecodedImage",
    "ImageSource",
    "IntakeLimits",
    "decode_image",
    "load_image",
    "read_bytes",
    "to_rgb",
]

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image


@dataclass(frozen=True)
class IntakeLimits:
    max_bytes: int = 50 * 1024 * 1024  # encoded file size cap
    max_pixels: int = 64_000_000  # decompression-bomb cap (width*height, per frame)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("IntakeLimits values must be positive")


# A module-level instance so the signatures below need no call in their defaults.
DEFAULT_LIMITS = IntakeLimits()


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # mode "RGB", EXIF orientation already applied, first frame only
    format: str  # Pillow's format name ("JPEG", "PNG", ...); "RAW" for a format-less PIL image
    width: int
    height: int
    sha256: str  # of the encoded bytes; for a PIL image given directly, of its RGB pixel bytes
    n_bytes: int  # length of the encoded bytes (0 for a PIL image given directly)


SUPPORTED_FORMATS_TEXT = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF and AVIF"

# Everything Pillow's decoders and our structure checks raise on hostile or damaged input.
# Pillow plugins are not consistent about exception types, hence the wide net; it is only
# spread around the decoding calls, never around our own logic.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    RuntimeError,
    struct.error,
    zlib.error,
)


# --------------------------------------------------------------------------- reading sources


def read_bytes(source: ImageSource, limits: IntakeLimits = DEFAULT_LIMITS) -> bytes:
    """Return the encoded bytes of a path, a bytes-like object or a readable binary file object.

    Never holds more than `limits.max_bytes + 1` bytes of an oversized input in memory.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        if view.nbytes > limits.max_bytes:  # refuse before copying anything
            raise _too_large(view.nbytes, limits)
        return view.tobytes()
    if isinstance(source, str | os.PathLike):
        return _read_path(source, limits)
    if isinstance(source, Image.Image):
        raise TypeError("read_bytes() needs encoded data; pass PIL images to load_image()")
    if callable(getattr(source, "read", None)):
        return _read_file_object(source, limits)
    raise TypeError(
        f"expected a path, bytes, a binary file object or a PIL image, not {type(source).__name__}"
    )


def _read_path(path_like: str | os.PathLike, limits: IntakeLimits) -> bytes:
    path = os.fspath(path_like)
    shown = os.fsdecode(path)
    try:
        # stat before open: opening a FIFO would block, and a directory must not look "unreadable"
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableSourceError(f"The path '{shown}' is a folder, not an image file.")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableSourceError(f"The path '{shown}' is not a regular file.")
        if info.st_size > limits.max_bytes:
            raise _too_large(info.st_size, limits)
        with open(path, "rb") as fh:
            # the file may have grown since stat(); never read past the limit
            data = fh.read(limits.max_bytes + 1)
    except FileNotFoundError as exc:
        raise UnreadableSourceError(f"There is no file at '{shown}'.") from exc
    except PermissionError as exc:
        raise UnreadableSourceError(
            f"The file '{shown}' cannot be read (permission denied)."
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise UnreadableSourceError(f"The file '{shown}' cannot be read ({reason}).") from exc
    if len(data) > limits.max_bytes:
        raise _too_large(len(data), limits)
    return data


def _read_file_object(fh: BinaryIO, limits: IntakeLimits) -> bytes:
    if isinstance(fh, io.TextIOBase):  # its read() would fail on the first non-UTF-8 byte
        raise TypeError("the file object must be opened in binary mode ('rb')")
    cap = limits.max_bytes + 1
    chunks: list[bytes] = []
    total = 0
    try:
        # loop because raw/unbuffered streams (sockets, pipes) may return short reads
        while total < cap:
            chunk = fh.read(cap - total)
            if chunk is None:
                raise UnreadableSourceError("The file object had no data ready (non-blocking).")
            if isinstance(chunk, str):
                raise TypeError("the file object must be opened in binary mode ('rb')")
            if not chunk:
                break
            chunks.append(bytes(chunk))
            total += len(chunk)
    except (OSError, ValueError) as exc:  # ValueError: "I/O operation on closed file"
        reason = str(exc).rstrip(".") or type(exc).__name__
        raise UnreadableSourceError(f"The file could not be read ({reason}).") from exc
    if total > limits.max_bytes:
        raise FileTooLargeError(
            f"The file is larger than the limit of {_human_bytes(limits.max_bytes)}."
        )
    return b"".join(chunks)


# --------------------------------------------------------------------------- colour modes

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})


def to_rgb(image: Image.Image) -> Image.Image:
    """Return a new 8-bit RGB copy of `image`; transparency is composited over white.

    Training uses this same function, so every rule here must stay deterministic.
    """
    mode = image.mode
    try:
        if mode in _SIXTEEN_BIT_MODES:
            return _sixteen_bit_to_rgb(image)
        if mode == "F":
            return _float_to_rgb(image)
        if mode == "La":
            # Pillow cannot convert premultiplied grey directly; RGBa -> RGBA un-premultiplies.
            lum, alpha = image.split()
            return _over_white(Image.merge("RGBa", (lum, lum, lum, alpha)).convert("RGBA"))
        if _has_alpha(image):
            return _over_white(image.convert("RGBA"))
        if mode == "RGB":
            return image.copy()
        return image.convert("RGB")
    except ValueError as exc:  # Pillow: "conversion from X to RGB not supported"
        raise UnsupportedImageError(
            f"Images in colour mode '{mode}' are not supported; it cannot be converted to RGB."
        ) from exc


def _has_alpha(image: Image.Image) -> bool:
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return True
    palette = image.palette if image.mode == "P" else None
    return palette is not None and palette.mode == "RGBA"


def _over_white(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's own I;16 -> L conversion clips at 255, which turns most 16-bit images white;
    # we rescale 0..65535 onto 0..255 with rounding instead. "I" (32-bit) is what some
    # decoders use for 16-bit data, so it gets the same range (values outside it are clipped).
    values = np.asarray(image)
    transparent = None
    key = image.info.get("transparency")
    if isinstance(key, int):
        transparent = values == key
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    wide += 128
    wide //= 257  # == round(v * 255 / 65535)
    grey = wide.astype(np.uint8)
    if transparent is not None and transparent.any():
        grey[transparent] = 255  # a fully transparent pixel over white is white
    return Image.fromarray(grey, "L").convert("RGB")


def _float_to_rgb(image: Image.Image) -> Image.Image:
    # Float images come either normalised to 0..1 or in 0..255; an image whose values all lie
    # within 0..1 is taken as normalised (in 0..255 it would be black anyway). NaN -> 0.
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and float(values.max()) <= 1.0:
        values = values * 255.0
    grey = np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


# --------------------------------------------------------------------------- sniffing


@dataclass(frozen=True)
class _Kind:
    label: str  # for messages
    formats: tuple[str, ...]  # the only Pillow plugins allowed to parse these bytes


# "BM" alone is too weak a signature (plenty of text starts with it); the size of the header
# that follows is one of a few fixed values in every BMP variant.
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

# Real image formats we deliberately do not decode (Pillow could parse some of them, but each
# extra plugin is extra attack surface and none of them is a realistic upload).
_UNSUPPORTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"8BPS", "a Photoshop (PSD) file"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"qoif", "a QOI image"),
    (b"\x76\x2f\x31\x01", "an OpenEXR image"),
    (b"#?RADIANCE", "a Radiance HDR image"),
    (b"DDS ", "a DirectDraw (DDS) texture"),
    (b"icns", "an Apple icon (ICNS) file"),
    (b"\x00\x00\x01\x00", "an icon (ICO) file"),
    (b"\x00\x00\x02\x00", "a cursor (CUR) file"),
)

_DOCUMENT_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"%!PS", "a PostScript document"),
)
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xc5\xd0\xd3\xc6", "a PostScript document"),
    (b"PK\x03\x04", "a ZIP archive or Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"ID3", "an audio file"),
    (b"OggS", "an audio or video file"),
    (b"fLaC", "an audio file"),
    (b"\x1a\x45\xdf\xa3", "a video file"),
    (b"SQLite format 3\x00", "a database"),
)


def _sniff(data: bytes) -> _Kind:
    """Decide from the leading bytes which plugin may parse `data`, or refuse it with a reason."""
    if data.startswith(b"\xff\xd8\xff"):
        return _Kind("JPEG", ("JPEG", "MPO"))
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _Kind("PNG", ("PNG",))
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _Kind("GIF", ("GIF",))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _Kind("WebP", ("WEBP",))
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return _Kind("BMP", ("BMP",))
    if data[:4] in _TIFF_MAGICS:
        if data[8:10] == b"CR":
            raise _unsupported("a Canon camera raw (CR2) file")
        return _Kind("TIFF", ("TIFF",))
    if data[4:8] == b"ftyp":
        return _sniff_iso_media(data)
    for magic, what in _UNSUPPORTED_SIGNATURES:
        if data.startswith(magic):
            raise _unsupported(what)
    if data[:4] == b"RIFF":
        raise NotAnImageError(f"The file is not an image (it looks like {_riff_kind(data)}).")
    for magic, what in _DOCUMENT_SIGNATURES:  # text-like, so before the text test
        if data.startswith(magic):
            raise NotAnImageError(f"The file is not an image (it looks like {what}).")
    text = _as_text(data[:4096])
    if text is not None:
        head = text.lstrip("\ufeff \t\r\n").lower()
        if "<svg" in head[:2048]:
            raise _unsupported("an SVG (vector) drawing")
        if head.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in head[:1024]:
            raise NotAnImageError("The file is not an image (it looks like an HTML page).")
        raise NotAnImageError("The file is not an image (it looks like text).")
    for magic, what in _BINARY_SIGNATURES:
        if data.startswith(magic):
            raise NotAnImageError(f"The file is not an image (it looks like {what}).")
    raise NotAnImageError("The file is not an image (its contents match no known image format).")


def _sniff_iso_media(data: bytes) -> _Kind:
    # HEIF, AVIF, MP4 and QuickTime all open with an ISO-BMFF 'ftyp' box; brands tell them apart.
    major = data[8:12]
    box_end = min(int.from_bytes(data[0:4], "big"), len(data), 4096)
    compatible = {data[i : i + 4] for i in range(16, box_end - 3, 4)}
    if major in _AVIF_BRANDS:
        return _Kind("AVIF", ("AVIF", "HEIF"))
    if major in _HEIF_BRANDS:
        if compatible & _AVIF_BRANDS:
            return _Kind("AVIF", ("AVIF", "HEIF"))
        return _Kind("HEIF", ("HEIF", "AVIF"))
    if major == b"crx ":
        raise _unsupported("a Canon camera raw (CR3) file")
    raise NotAnImageError(
        "The file is not an image (it looks like a video or audio file; videos are scored "
        "with Detector.score_video or `humanmade score`)."
    )


def _riff_kind(data: bytes) -> str:
    return {b"AVI ": "a video file", b"WAVE": "an audio file"}.get(data[8:12], "a RIFF media file")


def _as_text(head: bytes) -> str | None:
    """`head` decoded as text if it plausibly is text (UTF-8/UTF-16 with few control chars)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # only forgive a multi-byte char cut by the 4 KiB window
            return None
        text = head[: exc.start].decode("utf-8")
    if not text:
        return None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    return text if controls <= len(text) // 100 else None


# --------------------------------------------------------------------------- structure checks
#
# Pillow only raises on truncated data while ImageFile.LOAD_TRUNCATED_IMAGES is False, and any
# code in the process (training scripts often do) may have set it to True, after which a cut-off
# file decodes to grey pixels. For PNG and JPEG, the bulk of uploads, we therefore check
# completeness ourselves instead of trusting that global flag.


def _check_png_complete(data: bytes) -> None:
    view = memoryview(data)
    pos = 8
    while True:
        if pos + 12 > len(data):
            raise _truncated("PNG")
        length, chunk_type = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise _truncated("PNG")
        if not chunk_type.isalpha():
            raise CorruptImageError("The PNG image is damaged (its chunk structure is broken).")
        critical = not chunk_type[0] & 0x20
        # like libpng: a bad checksum on a critical chunk is fatal, on an ancillary one it is not
        if critical:
            (expected,) = struct.unpack_from(">I", data, end - 4)
            if zlib.crc32(view[pos + 4 : end - 4]) != expected:
                raise CorruptImageError(
                    "The PNG image is damaged (a checksum in its image data does not match)."
                )
        if chunk_type == b"IEND":
            return
        pos = end


def _check_jpeg_complete(data: bytes) -> None:
    pos = 2
    while True:
        pos = data.find(b"\xff", pos)  # like libjpeg, skip stray bytes between segments
        if pos < 0:
            raise _truncated("JPEG")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= len(data):
            raise _truncated("JPEG")
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # stand-alone markers carry no length
            continue
        if marker == 0xD9:
            raise CorruptImageError("The JPEG image is damaged (it contains no image data).")
        if pos + 2 > len(data):
            raise _truncated("JPEG")
        seg_end = pos + int.from_bytes(data[pos : pos + 2], "big")
        if seg_end > len(data):
            raise _truncated("JPEG")
        if marker == 0xDA:  # start of scan: compressed data follows
            break
        pos = seg_end
    # Inside entropy-coded data every 0xFF is followed by 0x00 or a restart marker, so the
    # byte pair FF D9 after the first scan can only be the end-of-image marker.
    if data.find(b"\xff\xd9", seg_end) < 0:
        raise _truncated("JPEG")
    _check_jpeg_scans(data)


def _check_jpeg_scans(data: bytes) -> None:
    """Refuse a JPEG whose scans end before the image does, even with an end marker glued
    on: libjpeg fills the missing rows with grey and only warns, which Pillow ignores.

    libjpeg-turbo (through simplejpeg) entropy-decodes every scan at 1/8 scale, which is
    cheap, and reports its warnings as errors; only running out of data counts here.
    """
    import simplejpeg

    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=True)
    except ValueError as exc:
        if "premature end" in str(exc).lower():
            raise CorruptImageError(
                "The JPEG image is truncated (its image data ends early; the rest would be "
                "grey)."
            ) from exc
    except Exception:  # any other complaint is for Pillow to judge when decoding
        return


_STRUCTURE_CHECKS = {"PNG": _check_png_complete, "JPEG": _check_jpeg_complete}

# Ancillary PNG chunks that change the decoded pixels (transparency) or their orientation.
_PNG_PIXEL_CHUNKS = frozenset({b"tRNS", b"eXIf"})


def _png_pixels_only(data: bytes) -> bytes:
    """The PNG with only the chunks the pixels need, each with a valid checksum.

    Pillow refuses whole images over ancillary data that browsers ignore: an ICC profile or
    text over its 1 MB ceiling, a bad checksum on a metadata chunk. The provenance readers
    still see the original bytes.
    """
    view = memoryview(data)
    out = [data[:8]]
    pos = 8
    while pos + 12 <= len(data):
        length, chunk_type = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            break
        critical = not chunk_type[0] & 0x20
        if critical or chunk_type in _PNG_PIXEL_CHUNKS:
            (expected,) = struct.unpack_from(">I", data, end - 4)
            if critical or zlib.crc32(view[pos + 4 : end - 4]) == expected:
                out.append(data[pos:end])
        if chunk_type == b"IEND":
            break
        pos = end
    return b"".join(out)


# --------------------------------------------------------------------------- decoding

_heif_lock = threading.Lock()
_heif_registered = False


def _ensure_heif_opener() -> None:
    # Registering is a global side effect on Pillow, so do it once and only when HEIF shows up.
    global _heif_registered
    with _heif_lock:
        if _heif_registered:
            return
        try:
            import pillow_heif
        except ImportError as exc:
            raise UnsupportedImageError(
                "HEIC/HEIF images cannot be read here (pillow-heif is not installed)."
            ) from exc
        pillow_heif.register_heif_opener()
        _heif_registered = True


def decode_image(data: bytes, limits: IntakeLimits = DEFAULT_LIMITS) -> DecodedImage:
    """Decode encoded image bytes into an RGB `DecodedImage`, refusing anything unsafe or broken."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image() needs bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise EmptyImageError("The file is empty (0 bytes).")
    if len(data) > limits.max_bytes:
        raise _too_large(len(data), limits)

    kind = _sniff(data)
    if "HEIF" in kind.formats:
        _ensure_heif_opener()
    Image.init()  # so the allow-list check below sees every plugin Pillow has
    formats = [name for name in kind.formats if name in Image.OPEN]
    if not formats:
        raise UnsupportedImageError(
            f"{kind.label} images cannot be read here (Pillow was built without support for them)."
        )

    try:
        rgb, fmt, orientation = _decode_pixels(data, data, kind, formats, limits)
    except CorruptImageError:
        if kind.label != "PNG":
            raise
        # Perhaps only the ancillary data is bad: decode the pixels without it.
        cleaned = _png_pixels_only(data)
        if cleaned == data:
            raise
        rgb, fmt, orientation = _decode_pixels(data, cleaned, kind, formats, limits)

    rgb = _apply_orientation(rgb, orientation)
    return DecodedImage(
        image=rgb,
        format=fmt,
        width=rgb.width,
        height=rgb.height,
        sha256=hashlib.sha256(data).hexdigest(),
        n_bytes=len(data),
    )


def _decode_pixels(
    data: bytes, pillow_data: bytes, kind: _Kind, formats: list[str], limits: IntakeLimits
) -> tuple[Image.Image, str, int]:
    """(RGB image, format, EXIF orientation) of `pillow_data`; `data` is what was sent."""
    try:
        with Image.open(io.BytesIO(pillow_data), formats=formats) as im:
            _check_pixels(im.size, limits)
            check = _STRUCTURE_CHECKS.get(kind.label)
            if check is not None:
                check(data)
            if im.format == "TIFF" and 50706 in getattr(im, "tag_v2", {}):  # DNGVersion
                # Pillow would hand back the embedded preview, not the photo itself.
                raise _unsupported("a DNG camera raw file")
            im.load()
            # MPO is the JPEG plugin's name for a camera JPEG with extra embedded pictures;
            # its first frame is a plain JPEG, and callers care that it is a JPEG.
            fmt = "JPEG" if im.format == "MPO" else (im.format or kind.label.upper())
            return to_rgb(im), fmt, _orientation(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # (the warning only arrives as an exception when warnings are turned into errors)
        raise _bomb_from_pillow(data, formats, limits) from exc
    except UnidentifiedImageError as exc:
        raise CorruptImageError(
            f"The file looks like {kind.label}, but its header is damaged and cannot be read."
        ) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(
            f"The {kind.label} image is damaged or truncated and cannot be decoded."
        ) from exc


def load_image(source: ImageSource, limits: IntakeLimits = DEFAULT_LIMITS) -> DecodedImage:
    """Load any supported source into an RGB `DecodedImage`.

    A PIL image is taken as it stands (its current frame); its EXIF orientation is applied,
    so the result matches what decoding the same file would give.
    """
    if not isinstance(source, Image.Image):
        return decode_image(read_bytes(source, limits), limits)

    _check_pixels(source.size, limits)
    try:
        source.load()  # a lazily opened file may still fail here
        orientation = _orientation(source)
        rgb = to_rgb(source)
    except ImageError:
        raise
    except _DECODE_ERRORS as exc:
        raise CorruptImageError("The image is damaged or truncated and cannot be decoded.") from exc
    rgb = _apply_orientation(rgb, orientation)
    fmt = source.format or "RAW"
    return DecodedImage(
        image=rgb,
        format="JPEG" if fmt == "MPO" else fmt,
        width=rgb.width,
        height=rgb.height,
        sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
        n_bytes=0,
    )


# --------------------------------------------------------------------------- orientation

# The table ImageOps.exif_transpose uses. We read the tag and transpose the RGB result
# ourselves so a big image is copied once, and so a broken EXIF block cannot stop decoding.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(image: Image.Image) -> int:
    # getexif() also reads an XMP tiff:Orientation. TIFF and HEIF decoders already rotate
    # the pixels themselves and reset the tag, so it is not applied twice.
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF comes in every shape; it must never block decoding
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION_TRANSPOSE else 1


def _apply_orientation(rgb: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return rgb if method is None else rgb.transpose(method)


# --------------------------------------------------------------------------- limits & messages


def _check_pixels(size: tuple[int, int], limits: IntakeLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise EmptyImageError(f"The image has no pixels ({width}×{height}).")
    if width * height > limits.max_pixels:
        raise _bomb(width, height, limits)


def _bomb(width: int, height: int, limits: IntakeLimits) -> DecompressionBombError:
    return DecompressionBombError(
        f"The image is {width}×{height} pixels ({_human_pixels(width * height)}); "
        f"the limit is {_human_pixels(limits.max_pixels)}."
    )


def _bomb_from_pillow(data: bytes, formats: list[str], limits: IntakeLimits) -> ImageError:
    """Our error for Pillow's own process-wide pixel ceiling, which fires inside Image.open()."""
    size = _declared_size(data, formats)
    if size is None:
        return DecompressionBombError(
            "The image declares more pixels than the decoder's safety ceiling allows; "
            f"the limit is {_human_pixels(limits.max_pixels)}."
        )
    width, height = size
    if width * height > limits.max_pixels:
        return _bomb(width, height, limits)
    # Only reachable when max_pixels was set above Pillow's ceiling (2 × MAX_IMAGE_PIXELS).
    return DecompressionBombError(
        f"The image is {width}×{height} pixels ({_human_pixels(width * height)}), more than "
        "the image decoder's safety ceiling allows."
    )


def _declared_size(data: bytes, formats: list[str]) -> tuple[int, int] | None:
    # Image.open() refused before showing us the size. A plugin's factory parses only the
    # header, so asking it directly yields the declared size for the message, e.g. for PNG,
    # JPEG, BMP, HEIF and AVIF (GIF, TIFF, WebP and MPO check Pillow's ceiling themselves).
    for name in formats:
        try:
            factory = Image.OPEN[name][0]
            with factory(io.BytesIO(data), "") as im:
                return im.size
        except Exception:  # any failure only costs the nicer message
            continue
    return None


def _too_large(n_bytes: int, limits: IntakeLimits) -> FileTooLargeError:
    return FileTooLargeError(
        f"The file is {_human_bytes(n_bytes)}; the limit is {_human_bytes(limits.max_bytes)}."
    )


def _truncated(label: str) -> CorruptImageError:
    return CorruptImageError(f"The {label} image is truncated (the file ends too early).")


def _unsupported(what: str) -> UnsupportedImageError:
    return UnsupportedImageError(
        f"The file is {what}, which is not supported. Supported formats: {SUPPORTED_FORMATS_TEXT}."
    )


def _number(value: float) -> str:
    return f"{value:,.1f}".removesuffix(".0")


def _human_pixels(n: int) -> str:
    if n >= 10_000_000:
        return f"{n / 1e6:,.0f} MP"
    if n >= 100_000:
        return f"{_number(n / 1e6)} MP"
    return f"{n:,} pixels"


def _human_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{_number(n / size)} {unit}"
    return f"{n:,} bytes"
