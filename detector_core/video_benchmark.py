"""Clip scoring speed on this machine: decode (sampling, in the child process) vs score time.

    humanmade benchmark-video [--seconds 30 300] [--weights FILE] [--json OUT]
    python benchmarks/video_speed.py ...   (the same)

Encodes synthetic 1080p H.264 clips (30 fps, a keyframe every 2 s, as phones and most web
encoders write them; content that moves every frame), scores each with
`Detector.score_video` and prints one row per clip next to a ResNet-50@224 forward timed in
the same run. It asserts nothing: speed targets are read off its output.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_clip(path: Path, seconds: int, width: int = 1920, height: int = 1080) -> Path:
    """Panning gradients and a drifting textured square: cheap to encode, no two frames
    alike."""
    import av

    fps = 30
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 255 // (width + height))], -1
    ).astype(np.uint8)
    side = min(256, width // 2, height // 2)
    texture = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 2 * fps
        for i in range(seconds * fps):
            frame = np.roll(base, i * 4, axis=1)  # a slow pan: no two frames alike
            x = (i * 7) % (width - side)
            y = (i * 3) % (height - side)
            frame[y : y + side, x : x + side] = np.roll(texture, i, axis=0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[30])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--resnet-repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    import torch

    from detector_core.benchmark import resnet50_ms
    from detector_core.detector import Detector

    detector = Detector(args.weights)
    detector.load()
    ref = resnet50_ms(args.resnet_repeats)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            started = time.perf_counter()
            path = synthetic_clip(
                Path(tmp) / f"clip{seconds}.mp4", seconds, args.width, args.height
            )
            encode_s = time.perf_counter() - started
            detector.score_video(path)  # warm-up: first-call allocations
            runs = [detector.score_video(path) for _ in range(args.repeats)]
            decode = statistics.median(r.decode_ms for r in runs)
            score = statistics.median(r.score_ms for r in runs)
            rows.append(
                {
                    "clip": f"{seconds} s {args.width}×{args.height} H.264 30 fps",
                    "bytes": os.path.getsize(path),
                    "frames_scored": len(runs[0].frames),
                    "frames_decoded": runs[0].frames_decoded,
                    "decode_ms": round(decode, 1),
                    "score_ms": round(score, 1),
                    "total_ms": round(decode + score, 1),
                    "resnet50_forwards": round((decode + score) / ref, 1),
                    "encode_s": round(encode_s, 1),
                }
            )
    print(f"torch threads: {torch.get_num_threads()}, ResNet-50 forward 1×224×224: {ref:.1f} ms")
    header = f"{'clip':<28} {'frames':>6} {'decoded':>7} {'decode ms':>9} {'score ms':>9} "
    print(header + f"{'total ms':>9} {'× ResNet-50':>11}")
    for r in rows:
        print(
            f"{r['clip']:<28} {r['frames_scored']:>6} {r['frames_decoded']:>7} "
            f"{r['decode_ms']:>9.0f} {r['score_ms']:>9.0f} {r['total_ms']:>9.0f} "
            f"{r['resnet50_forwards']:>11.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"resnet50_224_ms": ref, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
