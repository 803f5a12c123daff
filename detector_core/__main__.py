"""`python -m detector_core ...` runs the `humanmade` command line."""

from detector_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
