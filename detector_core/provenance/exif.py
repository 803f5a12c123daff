"""EXIF: `Software`, camera `Make`/`Model`/lens/capture time, and generator settings hidden in
`UserComment`, `ImageDescription`, `XPComment` (AUTOMATIC1111, NovelAI) or in `Make`/`Model`
(ComfyUI's WebP files: "prompt:{...}").

Camera facts are context only: EXIF is trivial to forge or strip, so it never argues for a
human origin. Parsing uses Pillow's `Image.Exif` on the raw block, wrapped so that malformed
IFDs end in nothing rather than an exception.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from PIL import Image

from .containers import MAX_BLOCK, Metadata, RawBlock
from .evidence import Evidence, Strength, clip_text
from .generator_params import generator_evidence, parse_generator_text, software_evidence

log = logging.getLogger(__name__)

__all__ = ["decode_user_comment", "exif_blocks", "read_exif"]

TAG_IMAGE_DESCRIPTION = 0x010E
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_DATETIME = 0x0132
TAG_EXIF_IFD = 0x8769
TAG_XP_COMMENT = 0x9C9C
TAG_DATETIME_ORIGINAL = 0x9003
TAG_USER_COMMENT = 0x9286
TAG_LENS_MAKE = 0xA433
TAG_LENS_MODEL = 0xA434


def exif_blocks(data: bytes, meta: Metadata) -> list[RawBlock]:
    """The EXIF blocks of `data`: those the container walk found, or for TIFF and HEIF/AVIF,
    the ones Pillow reports (without decoding pixels)."""
    if meta.exif:
        return meta.exif[:4]
    if meta.format == "TIFF":
        return [RawBlock(data, "TIFF tags")]
    if meta.format == "HEIF":
        Image.init()
        formats = [f for f in ("HEIF", "AVIF") if f in Image.OPEN]
        if formats:
            try:
                with Image.open(io.BytesIO(data), formats=formats) as im:
                    raw = im.info.get("exif")
                if isinstance(raw, bytes) and 0 < len(raw) <= MAX_BLOCK:
                    return [RawBlock(raw, f"{meta.format} EXIF")]
            except Exception:
                log.debug("no EXIF from the HEIF/AVIF container", exc_info=True)
    return []


def _text(value: Any, limit: int = 300) -> str:
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return ""
    return clip_text(value.replace("\x00", "").strip(), limit)


def decode_user_comment(raw: Any) -> str:
    """EXIF UserComment: an 8-byte charset prefix ("ASCII", "UNICODE", "JIS", blank), then text."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes):
        return ""
    raw = raw[:MAX_BLOCK]
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        # piexif (AUTOMATIC1111) writes big-endian; some tools little-endian. ASCII-range text
        # has its zero bytes in the high half of each code unit, which tells the order.
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        codec = "utf-16-be" if even_zeros >= odd_zeros else "utf-16-le"
        return body.decode(codec, errors="replace").rstrip("\x00")
    if prefix == b"JIS\x00\x00\x00\x00\x00":
        return body.decode("shift_jis", errors="replace").rstrip("\x00")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body.decode("utf-8", errors="replace").rstrip("\x00 ")
    return raw.decode("utf-8", errors="replace").rstrip("\x00 ")


def _xp_text(raw: Any) -> str:
    if isinstance(raw, tuple):  # Pillow may hand BYTE arrays over as tuples
        raw = bytes(b & 0xFF for b in raw[:MAX_BLOCK] if isinstance(b, int))
    if isinstance(raw, bytes):
        return raw[:MAX_BLOCK].decode("utf-16-le", errors="replace").rstrip("\x00")
    return raw if isinstance(raw, str) else ""


def _load(block: RawBlock) -> tuple[Image.Exif, dict[int, Any]] | None:
    exif = Image.Exif()
    try:
        exif.load(block.data)
    except Exception:
        log.debug("unreadable EXIF in %s", block.where, exc_info=True)
        return None
    try:
        sub = dict(exif.get_ifd(TAG_EXIF_IFD))
    except Exception:
        log.debug("unreadable EXIF sub-IFD in %s", block.where, exc_info=True)
        sub = {}
    return exif, sub


def _get(exif: Image.Exif, tag: int) -> Any:
    try:
        return exif.get(tag)
    except Exception:
        return None


def read_exif(data: bytes, meta: Metadata) -> list[Evidence]:
    out: list[Evidence] = []
    for block in exif_blocks(data, meta):
        loaded = _load(block)
        if loaded is None:
            continue
        exif, sub = loaded
        out.extend(_generator_texts(exif, sub, block.where))
        software = _text(_get(exif, TAG_SOFTWARE), 200)
        if software:
            out.append(software_evidence(software, f"{block.where} 'Software'", "exif_software"))
        camera = _camera(exif, sub, block.where)
        if camera is not None:
            out.append(camera)
    return out


def _generator_texts(exif: Image.Exif, sub: dict[int, Any], where: str) -> list[Evidence]:
    candidates = [
        ("UserComment", decode_user_comment(sub.get(TAG_USER_COMMENT))),
        ("ImageDescription", _raw_text(_get(exif, TAG_IMAGE_DESCRIPTION))),
        ("XPComment", _xp_text(_get(exif, TAG_XP_COMMENT))),
        ("Make", _raw_text(_get(exif, TAG_MAKE))),
        ("Model", _raw_text(_get(exif, TAG_MODEL))),
    ]
    out = []
    for name, text in candidates:
        if not text or len(out) >= 3:
            continue
        info = parse_generator_text(text)
        if info is not None:
            out.append(generator_evidence(info, f"{where} '{name}'"))
    return out


def _raw_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value[:MAX_BLOCK].decode("utf-8", errors="replace")
    return value[:MAX_BLOCK] if isinstance(value, str) else ""


def _camera(exif: Image.Exif, sub: dict[int, Any], where: str) -> Evidence | None:
    make = _text(_get(exif, TAG_MAKE), 80)
    model = _text(_get(exif, TAG_MODEL), 80)
    if make.lower().startswith(("prompt:", "workflow:")) or model.lower().startswith(
        ("prompt:", "workflow:")
    ):
        return None  # ComfyUI's settings, not a camera
    if not make and not model:
        return None
    lens = " ".join(
        part
        for part in (_text(sub.get(TAG_LENS_MAKE), 80), _text(sub.get(TAG_LENS_MODEL), 80))
        if part
    )
    taken = _text(sub.get(TAG_DATETIME_ORIGINAL), 40) or _text(_get(exif, TAG_DATETIME), 40)
    # "Canon" + "Canon DIGITAL IXUS" reads better as "Canon DIGITAL IXUS"
    device = model if make and model.lower().startswith(make.lower()) else f"{make} {model}"
    device = device.strip()
    summary = f"EXIF says the picture was taken with a {device}"
    if lens:
        summary += f" ({lens})"
    if taken:
        summary += f" on {taken}"
    summary += "; context only: camera metadata is easy to forge or strip, so it proves nothing."
    details = {"make": make, "model": model}
    if lens:
        details["lens"] = lens
    if taken:
        details["capture_time"] = taken
    return Evidence(
        kind="camera", summary=summary, where=where, strength=Strength.CONTEXT, details=details
    )
