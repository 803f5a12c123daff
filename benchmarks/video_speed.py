"""Clip scoring speed: decode vs score time of synthetic 1080p clips (see
`humanmade benchmark-video --help`). The video figures in weights/README.md come from it.

    python benchmarks/video_speed.py [--seconds 30 300] [--weights FILE] [--json OUT]
"""

from detector_core.video_benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
