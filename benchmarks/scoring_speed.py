"""Scoring speed and memory on this machine; prints a table (see `humanmade benchmark --help`).

    python benchmarks/scoring_speed.py [--weights FILE] [--device cuda] [--json OUT]

The figures in weights/README.md come from this script. It times scoring, it asserts
nothing: speed targets are read off its output, never enforced by a timed test.
"""

from detector_core.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
