"""Clip scoring speed on this machine: decode (sampling, in the child process) vs score time.

    humanmade benchmark-video [--seconds 30 300] [--weights FILE] [--json OUT]
    python benchmarks/video_speed.py ...   (the same)
    humanmade benchmark                    (the same rows, after the image rows)

Encodes synthetic 1080p H.264 clips (30 fps, a keyframe every 2 s, as phones and most web
encoders write them; content that moves every frame), scores each with
`Detector.score_video` and prints one row per clip next to a ResNet-50@224 forward timed in
the same run. It asserts nothing: speed targets are read off its output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .detector import Detector

CLIP_SECONDS = (30, 300)
CLIP_SIZE = (1920, 1080)
FPS = 30


def synthetic_clip(path: Path, seconds: int, width: int = 1920, height: int = 1080) -> Path:
    """Panning gradients and a drifting textured square: cheap to encode, no two frames
    alike."""
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 255 // (width + height))], -1
    ).astype(np.uint8)
    side = min(256, width // 2, height // 2)
    texture = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 2 * FPS
        for i in range(seconds * FPS):
            frame = np.roll(base, i * 4, axis=1)  # a slow pan: no two frames alike
            x = (i * 7) % (width - side)
            y = (i * 3) % (height - side)
            frame[y : y + side, x : x + side] = np.roll(texture, i, axis=0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def clip_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT for the synthetic clips: even sides (H.264's 4:2:0 needs them), within the
    decoder's default frame limit."""
    match = re.fullmatch(r"(\d+)[x×](\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1920x1080, got {text!r}")
    width, height = int(match[1]), int(match[2])
    if width % 2 or height % 2 or not (64 <= width <= 3840 and 64 <= height <= 2160):
        raise argparse.ArgumentTypeError(
            "width and height must be even, 64-3840 wide and 64-2160 high"
        )
    return width, height


def clip_rows(
    detector: Detector,
    seconds: Sequence[int],
    repeats: int,
    resnet_ms: float,
    size: tuple[int, int] = CLIP_SIZE,
) -> list[dict]:
    """Encode each synthetic clip, score it once to warm up and `repeats` times timed; one row
    per clip with the medians and the total as ResNet-50@224 forwards (`resnet_ms`, timed by
    the caller in the same run so that the ratio compares like with like)."""
    width, height = size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, length in enumerate(seconds, 1):
            # Encoding a long 1080p clip takes minutes on a small machine: say what is going on.
            print(
                f"clip {n}/{len(seconds)}: encoding {length} s of {width}×{height} H.264 "
                f"({length * FPS:,} frames), then scoring it {repeats + 1} times",
                file=sys.stderr,
                flush=True,
            )
            started = time.perf_counter()
            path = synthetic_clip(Path(tmp) / f"clip{length}.mp4", length, width, height)
            encode_s = time.perf_counter() - started
            detector.score_video(path)  # warm-up: first-call allocations
            runs = [detector.score_video(path) for _ in range(repeats)]
            decode = statistics.median(r.decode_ms for r in runs)
            score = statistics.median(r.score_ms for r in runs)
            rows.append(
                {
                    "clip": f"{length} s {width}×{height} H.264 {FPS} fps",
                    "seconds": length,
                    "bytes": os.path.getsize(path),
                    "frames_scored": len(runs[0].frames),
                    "frames_decoded": runs[0].frames_decoded,
                    "decode_ms": round(decode, 1),
                    "score_ms": round(score, 1),
                    "total_ms": round(decode + score, 1),
                    "resnet50_forwards": round((decode + score) / resnet_ms, 1),
                    "encode_s": round(encode_s, 1),
                }
            )
    return rows


def print_clip_rows(rows: list[dict]) -> None:
    header = f"{'clip':<28} {'frames':>6} {'decoded':>7} {'decode ms':>9} {'score ms':>9} "
    print(header + f"{'total ms':>9} {'× ResNet-50':>11}")
    for r in rows:
        print(
            f"{r['clip']:<28} {r['frames_scored']:>6} {r['frames_decoded']:>7} "
            f"{r['decode_ms']:>9.0f} {r['score_ms']:>9.0f} {r['total_ms']:>9.0f} "
            f"{r['resnet50_forwards']:>11.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[CLIP_SECONDS[0]])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=CLIP_SIZE[0])
    parser.add_argument("--height", type=int, default=CLIP_SIZE[1])
    parser.add_argument("--resnet-repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    import torch

    from detector_core.benchmark import resnet50_ms
    from detector_core.detector import Detector

    detector = Detector(args.weights)
    detector.load()
    ref = resnet50_ms(args.resnet_repeats)
    rows = clip_rows(detector, args.seconds, args.repeats, ref, (args.width, args.height))
    print(f"torch threads: {torch.get_num_threads()}, ResNet-50 forward 1×224×224: {ref:.1f} ms")
    print_clip_rows(rows)
    if args.json:
        args.json.write_text(json.dumps({"resnet50_224_ms": ref, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
