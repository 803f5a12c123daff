"""How well the perceptual hash recognises a picture that comes back, on a real image set.

    OMP_NUM_THREADS=1 python benchmarks/near_duplicates.py [--datasets ../shared/datasets]
        [--limit N] [--json OUT]

For every image in the set's manifest it hashes the original and five copies a newsroom
sees (0.5x resize, JPEG quality 60, a 10 % crop, PNG->WebP, a screenshot-like re-render
with a border), then prints, for each Hamming distance 0-8:

- the share of distinct images (different originals, by `sha256_original`) that match at
  least one other distinct image at that distance: wrong matches, the target is 0;
- per transform, the share of copies whose hash is within that distance of the original.

The figures in cms_plugin/README.md come from this script; it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from detector_core.intake import decode_image
from detector_core.near_duplicate import (
    MAX_INDEXED_DISTANCE,
    hash_bytes,
    is_informative,
    perceptual_hash,
)

DISTANCES = range(0, 9)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def resized(image: Image.Image) -> bytes:
    w, h = image.size
    return _encode(image.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS), "PNG")


def jpeg_q60(image: Image.Image) -> bytes:
    return _encode(image, "JPEG", quality=60)


def cropped(image: Image.Image) -> bytes:
    # 10 % of each side's length away: 5 % from every edge, as a light re-framing does.
    w, h = image.size
    dx, dy = round(w * 0.05), round(h * 0.05)
    return _encode(image.crop((dx, dy, w - dx, h - dy)), "PNG")


def webp(image: Image.Image) -> bytes:
    png = Image.open(io.BytesIO(_encode(image, "PNG")))
    return _encode(png, "WEBP", quality=80)


def screenshot(image: Image.Image) -> bytes:
    # Shown a little larger on a page, with a light frame around it, then captured as PNG.
    w, h = image.size
    shown = image.resize((round(w * 1.3), round(h * 1.3)), Image.BILINEAR)
    border = 24
    canvas = Image.new("RGB", (shown.width + 2 * border, shown.height + 2 * border), (242,) * 3)
    canvas.paste(shown, (border, border))
    return _encode(canvas, "PNG")


TRANSFORMS = {
    "resize 0.5x": resized,
    "JPEG q60": jpeg_q60,
    "crop 10%": cropped,
    "PNG->WebP": webp,
    "screenshot + border": screenshot,
}


def popcount64(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (bit tricks; numpy < 2.0 has no bitwise_count)."""
    v = values.astype(np.uint64)
    v = v - ((v >> np.uint64(1)) & np.uint64(0x5555555555555555))
    v = (v & np.uint64(0x3333333333333333)) + ((v >> np.uint64(2)) & np.uint64(0x3333333333333333))
    v = (v + (v >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((v * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--copies-every",
        type=int,
        default=1,
        help="make the five copies of every Nth image only (all images count for wrong matches)",
    )
    parser.add_argument("--show-pairs", type=int, default=20, help="close pairs to print")
    args = parser.parse_args(argv)
    manifest = args.datasets / "manifest.csv"
    if not manifest.exists():
        print(f"no manifest at {manifest}", file=sys.stderr)
        return 2
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if args.limit:
        rows = rows[: args.limit]

    started = time.perf_counter()
    originals: list[int] = []
    informative: list[bool] = []
    files: list[str] = []
    groups: list[str] = []
    copies: dict[str, list[int]] = {name: [] for name in TRANSFORMS}
    skipped = 0
    copied: list[int] = []  # indices (into originals) of the images whose copies are made
    for index, row in enumerate(rows):
        data = (args.datasets / row["file"]).read_bytes()
        try:
            decoded = decode_image(data).image
            original = perceptual_hash(decoded)
            plain = not is_informative(decoded)
            hashes = {}
            if index % args.copies_every == 0:
                # Copies are made of the picture as people see it: EXIF orientation applied,
                # transparency over white (what the intake decodes), then hashed from bytes.
                hashes = {name: hash_bytes(make(decoded)) for name, make in TRANSFORMS.items()}
        except Exception as exc:  # a file the intake refuses is reported, not fatal
            print(f"skipped {row['file']}: {exc}", file=sys.stderr)
            skipped += 1
            continue
        if hashes:
            copied.append(len(originals))
            for name, value in hashes.items():
                copies[name].append(value)
        originals.append(original)
        informative.append(not plain)
        files.append(row["file"])
        groups.append(row.get("sha256_original") or row["file"])
    elapsed = time.perf_counter() - started
    n = len(originals)

    hashes = np.array(originals, dtype=np.uint64)
    group_ids = np.unique(np.array(groups), return_inverse=True)[1]
    # Only informative images are stored with a hash (flat and one-axis ones are matched by
    # their bytes only): they alone can be matched, wrongly or not.
    usable = np.array(informative, dtype=bool)
    # For each image, the smallest distance to an image of another original.
    nearest = np.full(n, 64, dtype=np.int64)
    for i in np.flatnonzero(usable):
        d = popcount64(hashes ^ hashes[i])
        d[(group_ids == group_ids[i]) | ~usable] = 64
        nearest[i] = d.min()
    report: dict[str, object] = {
        "images": n,
        "images_copied": len(copied),
        "skipped": skipped,
        "seconds_hashing": round(elapsed, 1),
        "distinct_wrongly_matched": {},
        "copies_found": {name: {} for name in TRANSFORMS},
    }
    print(
        f"{n} images hashed, {len(copied)} of them with 5 copies each, in {elapsed:.0f} s "
        f"({skipped} skipped); {int((~usable).sum())} too plain for a hash (bytes only)"
    )
    report["too_plain"] = int((~usable).sum())
    header = f"{'distance':>8}  {'wrong':>8}  " + "  ".join(f"{t:>19}" for t in TRANSFORMS)
    print(header)
    for dist in DISTANCES:
        wrong = float(np.mean(nearest <= dist))
        report["distinct_wrongly_matched"][str(dist)] = wrong
        found = {}
        for name, values in copies.items():
            # A copy is found only where both it and its original have a hash.
            has_hash = np.array([v is not None for v in values]) & usable[copied]
            raw = np.array([v or 0 for v in values], dtype=np.uint64)
            d = np.where(has_hash, popcount64(raw ^ hashes[copied]), 64)
            found[name] = float(np.mean(d <= dist))
            report["copies_found"][name][str(dist)] = found[name]
        mark = " (indexed lookup limit)" if dist == MAX_INDEXED_DISTANCE else ""
        print(
            f"{dist:>8}  {wrong:>8.2%}  "
            + "  ".join(f"{found[t]:>19.1%}" for t in TRANSFORMS)
            + mark
        )
    close = np.flatnonzero(nearest <= MAX_INDEXED_DISTANCE)
    print(f"images with another original within distance {MAX_INDEXED_DISTANCE}: {len(close)}")
    report["close_pairs"] = []
    for i in close:
        d = popcount64(hashes ^ hashes[i])
        d[(group_ids == group_ids[i]) | ~usable] = 64
        j = int(np.argmin(d))
        if i < j or nearest[j] > MAX_INDEXED_DISTANCE:
            report["close_pairs"].append([files[i], files[j], int(d[j])])
    for a, b, bits in report["close_pairs"][: args.show_pairs]:
        print(f"  {bits} bits: {a}  ~  {b}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
