"""Provenance: what an image file says about its own origin.

Many AI images still carry it: a C2PA manifest, an IPTC digital source type in XMP, the
generation settings written by the tool that made them (in PNG text chunks, EXIF, or hidden
in the pixels' low bits), or an invisible watermark. Reading them is cheap and precise when
present; their absence proves nothing, and camera metadata is only context.

    from detector_core.provenance import read_evidence, combine

    evidence = read_evidence(encoded_bytes, decoded.image)   # tuple[Evidence, ...]
    band, reasons = combine(probability, pixel_band, evidence)

Readers: `c2pa_reader` (c2pa-python, lazy), `xmp`, `exif`, `generator_params`, `stealth`,
`watermark` (a vectorised dwtDct decoder, no extra dependency); `containers` finds the
metadata blocks; `combine` holds the rules.
"""

from .combine import combine
from .evidence import Evidence, Strength
from .read import read_evidence

__all__ = ["Evidence", "Strength", "combine", "read_evidence"]
