"""Speed and memory of scoring on this machine, next to a ResNet-50 measured in the same run.

    humanmade benchmark [--repeats 7] [--weights FILE] [--device cuda] [--sizes 0.25,1,4,12]
                        [--clip-seconds 30 300 | --no-clips] [--clip-size 1920x1080]
    python benchmarks/scoring_speed.py ...      (the same, from a checkout)

Times are end to end (JPEG bytes in, Verdict out: decoding, tiling, network, calibration,
the stability copies and the provenance readers), median of the repeats after one warm-up;
"pixels-only" switches the stability check and provenance off. A torchvision ResNet-50
forward pass on one 224×224 image is timed alongside, so that figures from different
machines can be compared as a ratio (the reference alone needs torch, the `train` extra).
The peak RSS of a separate scoring process (a Detector scoring each size once, without the
benchmark's ResNet-50) is measured too. Prints a table; `--json` writes the figures too.
`--device cuda` times the Detector (ONNX Runtime's CUDA provider, the `gpu` extra) and the
ResNet-50 on the GPU.

Clip rows follow (`video_benchmark.clip_rows`, as `humanmade benchmark-video` prints them):
synthetic 1080p H.264 clips of 30 s and 5 min by default, each scored with
`Detector.score_video`, decode (seeking and sampling, in the bounded child process) and
score (the sampled frames) timed apart, the total also as ResNet-50@224 forwards of the same
run's reference. Encoding the 5-minute clip takes minutes on a small machine; a line on
stderr says so. `--clip-seconds` with no value, or `--no-clips`, skips them.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .argtypes import int_at_least, report_error
from .detector import Detector
from .errors import HumanmadeError
from .video_benchmark import CLIP_SECONDS, CLIP_SIZE, clip_rows, clip_size, print_clip_rows

PROG = "humanmade benchmark"
SIZES_MP = (0.25, 1.0, 4.0, 12.0)
# A clip run seeks through the file and scores 8 frames, tens of seconds on 2 cores: beyond
# this many, repeats add minutes and little precision to the median.
CLIP_REPEATS = 3


def synthetic_jpeg(megapixels: float, seed: int = 0) -> bytes:
    """A 4:3 JPEG with smooth structure plus noise (content does not change the cost)."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(megapixels * 1e6 / width))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 23.0)[..., None]
    arr = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def resnet50_ms(repeats: int, device: str = "cpu") -> float:
    import torch
    from torchvision.models import resnet50

    model = resnet50(weights=None).eval().to(device)
    x = torch.rand(1, 3, 224, 224, device=device)

    def forward() -> None:
        model(x)
        if device != "cpu":
            # CUDA calls return before the GPU is done; time the work, not the launch.
            torch.cuda.synchronize()

    with torch.inference_mode():
        return _median_ms(forward, repeats)


_SCORING_PROCESS = """
import json, sys
from detector_core import Detector
from detector_core.benchmark import synthetic_jpeg
weights, device, sizes = json.loads(sys.argv[1])
detector = Detector(weights, device=device)
for mp in sizes:
    detector.score(synthetic_jpeg(mp))
# VmHWM, not ru_maxrss: Linux hands a forked child its parent's ru_maxrss (this benchmark's,
# ResNet-50 included); the exec'd image's own high-water mark is VmHWM.
try:
    with open("/proc/self/status") as status:
        peak = next(int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM:"))
except OSError:  # not Linux: the nearest figure there is
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": peak, "torch_loaded": "torch" in sys.modules}))
"""


def scoring_process_figures(
    weights: Path | None, device: str, sizes_mp: tuple[float, ...]
) -> dict:
    """Peak RSS of a fresh process that loads a Detector and scores each size once, and
    whether it loaded torch: what a web or Celery worker that scores images holds."""
    arg = json.dumps([str(weights) if weights else None, device, list(sizes_mp)])
    done = subprocess.run(
        [sys.executable, "-c", _SCORING_PROCESS, arg],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(
    weights: Path | None,
    repeats: int,
    max_tiles: int | None,
    device: str = "cpu",
    sizes_mp: tuple[float, ...] = SIZES_MP,
    clip_seconds: Sequence[int] = CLIP_SECONDS,
    clip_dimensions: tuple[int, int] = CLIP_SIZE,
) -> dict:
    kwargs: dict = {"device": device}
    if max_tiles:
        kwargs["max_tiles"] = max_tiles
    detector = Detector(weights, **kwargs)
    detector.load()  # outside the timings
    # The network alone, without the stability copies and provenance readers.
    pixels_only = Detector(weights, stability_check=False, provenance=False, **kwargs)
    pixels_only.load()
    # Every image re-checked on its stability copies: what an image near a cut-off costs.
    worst_case = Detector(weights, stability_margin=None, **kwargs)
    worst_case.load()
    loaded = pixels_only.loaded
    figures: dict = {
        "machine": platform.processor() or platform.machine(),
        "device": device,
        "experts": list(loaded.experts),
        "model_version": detector.model_version,
        "max_tiles": detector.max_tiles,
        "per_image": [],
    }
    for mp in sizes_mp:
        data = synthetic_jpeg(mp)
        verdict = detector.score(data)
        image = Image.open(io.BytesIO(data)).convert("RGB")
        pixels = np.asarray(image)
        row = {
            "megapixels": mp,
            "size": f"{verdict.image.width}x{verdict.image.height}",
            "tiles_scored": verdict.tiles_scored,
            "stability_checked": bool(verdict.variant_probabilities),
            "ms_median": _median_ms(lambda d=data: detector.score(d), repeats),
            "ms_median_pixels_only": _median_ms(lambda d=data: pixels_only.score(d), repeats),
            "ms_median_with_stability": _median_ms(lambda d=data: worst_case.score(d), repeats),
        }
        if loaded.model is not None:
            from .experts.trace import image_logit

            row["ms_trace"] = _median_ms(
                lambda px=pixels: image_logit(
                    loaded.model,
                    px,
                    loaded.tile_size,
                    pixels_only.max_tiles,
                    pixels_only._trace_device,
                ),
                repeats,
            )
        if pixels_only._clip is not None:
            row["ms_clip"] = _median_ms(lambda im=image: pixels_only._clip.score(im), repeats)
        figures["per_image"].append(row)
    batch = [synthetic_jpeg(0.25, seed=i) for i in range(16)]
    batch_ms = _median_ms(lambda: detector.score_many(batch), max(2, repeats // 2))
    figures["batched_images_per_s_0.25mp"] = len(batch) / (batch_ms / 1000)
    figures["resnet50_224_ms"] = resnet50_ms(repeats, device)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scoring = scoring_process_figures(weights, device, sizes_mp)
    figures["scoring_process_peak_rss_mb"] = scoring["peak_rss_mb"]
    figures["scoring_process_loaded_torch"] = scoring["torch_loaded"]
    if clip_seconds:
        figures["clip_repeats"] = min(repeats, CLIP_REPEATS)
        figures["clips"] = clip_rows(
            detector,
            clip_seconds,
            figures["clip_repeats"],
            figures["resnet50_224_ms"],
            clip_dimensions,
        )
    import torch

    figures["torch_threads"] = torch.get_num_threads()
    if device != "cpu":
        figures["cuda_device"] = torch.cuda.get_device_name(device)
        figures["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return figures


def _sizes(text: str) -> tuple[float, ...]:
    try:
        sizes = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected megapixels like 0.25,1,4, got {text!r}"
        ) from None
    if not sizes or any(not 0.01 <= mp <= 50 for mp in sizes):
        raise argparse.ArgumentTypeError("each size must be between 0.01 and 50 megapixels")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights", type=Path, default=None, help="weights file (default: the release in use)"
    )
    parser.add_argument(
        "--repeats", type=int_at_least(1), default=7, help="timed runs per size (default 7)"
    )
    parser.add_argument(
        "--max-tiles",
        type=int_at_least(1),
        default=None,
        help="most tiles scored per image (default: the detector's own limit)",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu (default) or cuda / cuda:N when a GPU is present"
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=SIZES_MP,
        help="image sizes in megapixels, comma-separated (default 0.25,1,4,12)",
    )
    clips = parser.add_mutually_exclusive_group()
    clips.add_argument(
        "--clip-seconds",
        type=int_at_least(1),
        nargs="*",
        default=list(CLIP_SECONDS),
        metavar="SECONDS",
        help="lengths of the synthetic clips timed after the images (default 30 300; "
        f"median of at most {CLIP_REPEATS} runs each); with no value, no clips",
    )
    clips.add_argument(
        "--no-clips", dest="clip_seconds", action="store_const", const=[], help="no clip rows"
    )
    parser.add_argument(
        "--clip-size",
        type=clip_size,
        default=CLIP_SIZE,
        metavar="WxH",
        help="frame size of the synthetic clips (default 1920x1080)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        return report_error(
            PROG,
            "the ResNet-50 reference runs on torch: install the train extra "
            "(pip install 'humanmade[train]')",
        )
    from .cli import device_problem

    problem = device_problem(args.device)
    if not problem and args.device != "cpu" and not torch.cuda.is_available():
        problem = "torch sees no CUDA GPU for the ResNet-50 reference"
    if problem:
        return report_error(PROG, f"--device {args.device}: {problem}")
    try:
        figures = run(
            args.weights,
            args.repeats,
            args.max_tiles,
            args.device,
            args.sizes,
            args.clip_seconds,
            args.clip_size,
        )
    except HumanmadeError as exc:
        return report_error(PROG, str(exc))
    ref = figures["resnet50_224_ms"]
    where = figures.get("cuda_device") or f"{figures['torch_threads']} torch threads"
    print(
        f"model {figures['model_version']} ({'+'.join(figures['experts'])}) on "
        f"{figures['device']} ({where}), max {figures['max_tiles']} tiles per image"
    )
    print(
        f"{'megapixels':>10} {'size':>11} {'tiles':>6} {'ms (p50)':>9} {'× ResNet-50@224':>16}"
        f" {'pixels-only':>12} {'+stability':>11} {'trace':>8} {'clip':>8}"
    )
    for row in figures["per_image"]:
        clip = f"{row['ms_clip']:>8.1f}" if "ms_clip" in row else f"{'-':>8}"
        trace = f"{row['ms_trace']:>8.1f}" if "ms_trace" in row else f"{'-':>8}"
        print(
            f"{row['megapixels']:>10} {row['size']:>11} {row['tiles_scored']:>6} "
            f"{row['ms_median']:>9.1f} {row['ms_median'] / ref:>16.2f}"
            f" {row['ms_median_pixels_only']:>12.1f} {row['ms_median_with_stability']:>11.1f}"
            f" {trace} {clip}"
        )
    print("(ms; +stability: every image re-scored on its copies, as near a cut-off)")
    print(f"batched (16 × 0.25 MP): {figures['batched_images_per_s_0.25mp']:.1f} images/s")
    print(f"ResNet-50 forward, 1×224×224: {ref:.1f} ms")
    print(f"peak RSS: {figures['peak_rss_mb']:.0f} MB (this benchmark, ResNet-50 included)")
    print(
        f"peak RSS of a scoring process: {figures['scoring_process_peak_rss_mb']:.0f} MB"
        f" (torch loaded: {'yes' if figures['scoring_process_loaded_torch'] else 'no'})"
    )
    if "peak_gpu_mb" in figures:
        print(f"peak GPU memory: {figures['peak_gpu_mb']:.0f} MB")
    if "clips" in figures:
        print(
            f"clips (ms, median of {figures['clip_repeats']} after a warm-up; decode: seek and"
            " sample, in a child process)"
        )
        print_clip_rows(figures["clips"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
