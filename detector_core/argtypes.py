"""argparse `type=` checks and the error line shared by the command-line tools.

A bad value becomes argparse's own usage error (exit 2, one line), never a traceback or a
silently clamped number.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """A parser for whole numbers of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def fraction(text: str) -> float:
    """A number from 0 to 1 inclusive; NaN and infinities are refused (they compare false)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


EXIT_USAGE = 2


def report_error(prog: str, message: str) -> int:
    """Print `prog: error: message` as argparse does; returns the usage exit code."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
