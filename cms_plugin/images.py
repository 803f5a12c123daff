"""Pictures that pages show of a scored image, always re-encoded by us: the untrusted upload
itself is never served. A thumbnail (JPEG), and the heatmap figure (PNG) of a verdict."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

from django.http import HttpResponse

if TYPE_CHECKING:
    from detector_core import Verdict

    from .models import Detection

THUMB_SIDE = 160


def _decode(data: bytes):
    from detector_core.intake import IntakeLimits, decode_image

    return decode_image(data, IntakeLimits(max_bytes=max(len(data), 1))).image


def thumbnail_jpeg(data: bytes, side: int = THUMB_SIDE) -> bytes | None:
    """A JPEG at most `side` px across of the image in `data`; None if it cannot be decoded."""
    from detector_core import HumanmadeError

    try:
        image = _decode(data)
    except (HumanmadeError, OSError):
        return None
    image.thumbnail((side, side))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def heatmap_figure(data: bytes, verdict: Verdict, fmt: str = "PNG") -> bytes | None:
    """The verdict's heatmap figure (image and map side by side, scale, headline) encoded as
    `fmt`; None when the verdict carries no heatmap."""
    if verdict.heatmap is None:
        return None
    from detector_core.heatmap import render_heatmap_figure

    figure = render_heatmap_figure(
        _decode(data), verdict.heatmap, verdict.summary(), verdict.cutoffs
    )
    buf = io.BytesIO()
    figure.save(buf, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return buf.getvalue()


def data_url(data: bytes | None, content_type: str) -> str:
    """`data:` URL for a page that keeps nothing on disk (the demo); '' for None."""
    if not data:
        return ""
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def stored_thumbnail(detection: Detection) -> bytes | None:
    """The thumbnail of a Detection's stored image; None when it is gone or undecodable."""
    from .storage import read_image_bytes

    try:
        return thumbnail_jpeg(read_image_bytes(detection))
    except OSError:
        return None


def image_response(data: bytes | None, content_type: str = "image/jpeg") -> HttpResponse:
    """Our own re-encoded picture (404 for None), private to the viewer, never sniffed."""
    if data is None:
        return HttpResponse(status=404)
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def heatmap_response(detection: Detection) -> HttpResponse:
    """The Detection's stored heatmap (a PNG we drew); 404 when there is none or it is gone."""
    if not detection.heatmap:
        return HttpResponse(status=404)
    try:
        with detection.heatmap.open("rb") as fh:
            return image_response(fh.read(), "image/png")
    except OSError:
        return HttpResponse(status=404)
