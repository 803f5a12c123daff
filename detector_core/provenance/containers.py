"""Find the metadata blocks inside an encoded image, without decoding any pixels.

Every walker here is written for hostile input: lengths are checked against the data before
use, every block is capped (`MAX_BLOCK`), decompression stops at the cap, and the number of
chunks or segments visited is bounded, so a crafted file costs at most a few milliseconds.
Nothing here raises for bad data: a broken structure simply ends the walk.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_BLOCK = 1 << 20  # 1 MiB: the most of any one text/XMP/EXIF block that is parsed
MAX_TOTAL_TEXT = 8 << 20  # all text blocks of one file together
MAX_CHUNKS = 100_000  # PNG chunks / RIFF chunks / JPEG segments visited

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = "XML:com.adobe.xmp"
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_EXIF = b"Exif\x00\x00"


@dataclass(frozen=True)
class TextBlock:
    keyword: str  # PNG keyword ("parameters", "prompt", ...) or a name such as "COM"
    text: str
    where: str  # for people: "PNG tEXt 'parameters'"


@dataclass(frozen=True)
class RawBlock:
    data: bytes
    where: str


@dataclass
class Metadata:
    """What the container holds, as found by `parse_container`."""

    format: str = "unknown"  # "PNG", "JPEG", "WEBP", "TIFF", "HEIF", "GIF", "unknown"
    texts: list[TextBlock] = field(default_factory=list)
    xmp: list[RawBlock] = field(default_factory=list)
    exif: list[RawBlock] = field(default_factory=list)
    has_jumbf: bool = False  # a C2PA/JUMBF store seems to be embedded
    png_color_type: int | None = None  # IHDR colour type (4 and 6 carry alpha)
    png_has_trns: bool = False
    webp_lossless_or_alpha: bool = False  # a VP8L or ALPH chunk: pixels' low bits may survive
    skipped: list[str] = field(default_factory=list)  # blocks ignored for their size, for logs

    @property
    def png_may_have_alpha(self) -> bool:
        return self.png_color_type in (4, 6) or self.png_has_trns


def sniff_format(data: bytes) -> str:
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[4:8] == b"ftyp":
        return "HEIF"  # HEIF, AVIF and other ISO-BMFF files: only scanned for XMP/C2PA
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return "unknown"


def parse_container(data: bytes) -> Metadata:
    """Collect text chunks, XMP packets and EXIF blocks from `data` (any format; never raises)."""
    meta = Metadata(format=sniff_format(data))
    walker = {"PNG": _walk_png, "JPEG": _walk_jpeg, "WEBP": _walk_riff}.get(meta.format)
    try:
        if walker is not None:
            walker(data, meta)
        else:
            _scan_for_xmp(data, meta)
    except Exception:  # a walker bug on odd input must not cost the other readers
        log.debug("metadata walk of a %s file stopped early", meta.format, exc_info=True)
    if not meta.has_jumbf:
        meta.has_jumbf = _looks_like_jumbf(data)
    return meta


def _looks_like_jumbf(data: bytes) -> bool:
    # A C2PA manifest store is a JUMBF superbox labelled "c2pa"; PNG keeps it in a caBX chunk.
    return b"jumb" in data and b"c2pa" in data


# --------------------------------------------------------------------------- PNG


def _walk_png(data: bytes, meta: Metadata) -> None:
    pos = len(PNG_SIGNATURE)
    total_text = 0
    for _ in range(MAX_CHUNKS):
        if pos + 8 > len(data):
            return
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body_start = pos + 8
        body_end = body_start + length
        if body_end > len(data):  # truncated: read what there is of a text chunk, then stop
            body_end = len(data)
        name = ctype.decode("latin-1")
        if ctype == b"IHDR" and length >= 13:
            meta.png_color_type = data[body_start + 9]
        elif ctype == b"tRNS":
            meta.png_has_trns = True
        elif ctype == b"caBX":
            meta.has_jumbf = True
        elif ctype in (b"tEXt", b"zTXt", b"iTXt"):
            if length > MAX_BLOCK or total_text > MAX_TOTAL_TEXT:
                meta.skipped.append(f"PNG {name} chunk of {length} bytes")
            else:
                block = _png_text(ctype, data[body_start:body_end])
                if block is not None:
                    total_text += len(block.text)
                    if block.keyword == XMP_KEYWORD:
                        meta.xmp.append(RawBlock(block.text.encode("utf-8"), block.where))
                    else:
                        meta.texts.append(block)
        elif ctype == b"eXIf":
            if length > MAX_BLOCK:
                meta.skipped.append(f"PNG eXIf chunk of {length} bytes")
            else:
                meta.exif.append(RawBlock(data[body_start:body_end], "PNG eXIf chunk"))
        elif ctype == b"IEND":
            return
        pos = body_start + length + 4  # + CRC (not checked: metadata is read even if damaged)


def _png_text(ctype: bytes, body: bytes) -> TextBlock | None:
    keyword_raw, sep, rest = body.partition(b"\x00")
    if not sep or not keyword_raw or len(keyword_raw) > 79:
        return None
    keyword = keyword_raw.decode("latin-1")
    name = ctype.decode("latin-1")
    if ctype == b"tEXt":
        text = rest.decode("latin-1")
    elif ctype == b"zTXt":
        if not rest or rest[0] != 0:
            return None
        text = inflate(rest[1:]).decode("latin-1")
    else:  # iTXt: flag, method, language\0, translated keyword\0, text (UTF-8)
        if len(rest) < 2:
            return None
        compressed, method = rest[0], rest[1]
        parts = rest[2:].split(b"\x00", 2)
        if len(parts) != 3:
            return None
        payload = parts[2]
        if compressed:
            if method != 0:
                return None
            payload = inflate(payload)
        text = payload.decode("utf-8", errors="replace")
    return TextBlock(keyword, text, f"PNG {name} '{clip_keyword(keyword)}'")


def clip_keyword(keyword: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in keyword[:40])


def inflate(payload: bytes, limit: int = MAX_BLOCK, wbits: int = zlib.MAX_WBITS) -> bytes:
    """Decompress zlib (or gzip with wbits=31) data, keeping at most `limit` bytes of output."""
    try:
        return zlib.decompressobj(wbits).decompress(payload, limit)
    except zlib.error:
        return b""


# --------------------------------------------------------------------------- JPEG


def _walk_jpeg(data: bytes, meta: Metadata) -> None:
    pos = 2
    for _ in range(MAX_CHUNKS):
        if pos + 4 > len(data) or data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan: metadata comes before
            return
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            return
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body.startswith(_JPEG_EXIF):
            meta.exif.append(RawBlock(body, "JPEG APP1 EXIF"))
        elif marker == 0xE1 and body.startswith(_JPEG_XMP):
            meta.xmp.append(RawBlock(body[len(_JPEG_XMP) :], "JPEG APP1 XMP"))
        elif marker == 0xEB and b"jumb" in body[:64]:
            meta.has_jumbf = True
        elif marker == 0xFE and body:
            text = body.decode("utf-8", errors="replace")
            meta.texts.append(TextBlock("COM", text, "JPEG comment (COM)"))
        pos += 2 + length


# --------------------------------------------------------------------------- WebP (RIFF)


def _walk_riff(data: bytes, meta: Metadata) -> None:
    pos = 12
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    for _ in range(MAX_CHUNKS):
        if pos + 8 > end:
            return
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : min(pos + 8 + size, end)]
        if fourcc in (b"EXIF", b"XMP "):
            if size > MAX_BLOCK:
                meta.skipped.append(f"WebP {fourcc!r} chunk of {size} bytes")
            elif fourcc == b"EXIF":
                meta.exif.append(RawBlock(body, "WebP EXIF chunk"))
            else:
                meta.xmp.append(RawBlock(body, "WebP XMP chunk"))
        elif fourcc == b"C2PA":
            meta.has_jumbf = True
        elif fourcc in (b"VP8L", b"ALPH"):
            meta.webp_lossless_or_alpha = True
        pos += 8 + size + (size & 1)


# --------------------------------------------------------------------------- other formats

_XMP_START = re.compile(rb"<x:xmpmeta|<x:xapmeta|<rdf:RDF")
_XMP_END = (b"</x:xmpmeta>", b"</x:xapmeta>", b"</rdf:RDF>")


def _scan_for_xmp(data: bytes, meta: Metadata) -> None:
    """TIFF, HEIF/AVIF, GIF: XMP is stored uncompressed, so a byte scan finds its packets."""
    pos = 0
    for _ in range(8):  # a few packets at most
        match = _XMP_START.search(data, pos)
        if match is None:
            return
        start = match.start()
        window = data[start : start + MAX_BLOCK]
        ends = [window.find(tag) + len(tag) for tag in _XMP_END if window.find(tag) >= 0]
        stop = max(ends) if ends else len(window)
        meta.xmp.append(RawBlock(window[:stop], f"{meta.format} XMP packet"))
        pos = start + max(stop, 1)
