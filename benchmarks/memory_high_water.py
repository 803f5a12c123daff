"""Memory of a long-lived scoring process: RSS before and after scoring a large image, its
peak, and what is left after the engine frees its buffers. Prints a table; asserts nothing.

    python benchmarks/memory_high_water.py [--megapixels 12 24 48] [--weights FILE] [--json OUT]

Each size runs in a fresh child process, as a Celery pool child or an API process would:
a small image first (the model loaded, its buffers warm: the baseline), then the large one
three times. `peak` is the process's high-water mark (VmHWM), `after` its RSS once the
verdict is returned, `bytes/px` the peak above the baseline per pixel of the large image.
The README's production section quotes these figures; Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import gc, json, sys, time
from pathlib import Path

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

from detector_core import Detector
from detector_core.intake import IntakeLimits

weights, small, large, pixels = sys.argv[1] or None, sys.argv[2], sys.argv[3], int(sys.argv[4])
detector = Detector(weights, limits=IntakeLimits(max_bytes=200 * 1024 * 1024))
detector.score(Path(small).read_bytes(), heatmap=True)
gc.collect()
baseline = status("VmRSS")
rounds = []
for _ in range(3):
    data = Path(large).read_bytes()
    started = time.perf_counter()
    detector.score(data, heatmap=True)
    seconds = time.perf_counter() - started
    del data
    rounds.append({"after": status("VmRSS"), "peak": status("VmHWM"), "seconds": seconds})
print(json.dumps({"baseline": baseline, "pixels": pixels, "rounds": rounds}))
"""


def _image(path: Path, megapixels: float) -> int:
    """A photo-like JPEG (smooth shapes and fine noise) of about `megapixels`; its pixels."""
    import numpy as np
    from PIL import Image

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    for channel, (fx, fy) in enumerate(((700, 900), (1100, 500), (300, 1300))):
        wave = 128 + 80 * np.sin(x / fx) * np.cos(y / fy)
        pixels[..., channel] = np.clip(wave + rng.normal(0, 6, size=(height, width)), 0, 255)
    del x, y
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return width * height


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[12.0, 24.0, 48.0])
    parser.add_argument("--weights", default="", help="weights file (default: the release)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    mib = 1024 * 1024
    results = []
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "small.jpg"
        _image(small, 0.3)
        print("MP     baseline  after #1  after #3  peak      bytes/px  s/image")
        for megapixels in args.megapixels:
            large = Path(folder) / f"{megapixels:g}mp.jpg"
            pixels = _image(large, megapixels)
            run = subprocess.run(
                [sys.executable, "-c", CHILD, args.weights, str(small), str(large), str(pixels)],
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                print(f"{megapixels:<6g} failed: {run.stderr.strip().splitlines()[-1:]}")
                continue
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            first, last = figures["rounds"][0], figures["rounds"][-1]
            per_pixel = (last["peak"] - figures["baseline"]) / pixels
            print(
                f"{pixels / 1e6:<6.1f} {figures['baseline'] / mib:>6.0f} MiB "
                f"{first['after'] / mib:>6.0f} MiB {last['after'] / mib:>6.0f} MiB "
                f"{last['peak'] / mib:>6.0f} MiB {per_pixel:>6.0f}    {last['seconds']:.1f}"
            )
            results.append({"megapixels": megapixels, **figures, "bytes_per_pixel": per_pixel})
            large.unlink()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
