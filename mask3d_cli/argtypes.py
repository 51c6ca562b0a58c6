"""``type=`` checks for numeric command-line options: a wrong value ends in argparse's usual one-line usage error
(exit 2) naming the option, instead of a traceback or a silently empty result later (``--frames 0``).

Light on purpose (no torch): the ``mask3d`` command parses its arguments before anything heavy loads.
"""
import argparse
import math


def _number(kind, text: str, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not {what}') from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'{text!r} is not {what}')
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: frames, views, sizes)."""
    value = _number(int, text, 'an integer >= 1')
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer >= 1')
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds)."""
    value = _number(int, text, 'an integer >= 0')
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer >= 0')
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (scales)."""
    value = _number(float, text, 'a finite number > 0')
    if value <= 0:
        raise argparse.ArgumentTypeError(f'{text!r} is not a finite number > 0')
    return value
