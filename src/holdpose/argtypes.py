"""argparse types shared by every subcommand: a bad value is one clear usage line.

Each type is a check from :mod:`holdpose.limits` (the same one the file loaders use)
whose :class:`HoldposeError` becomes argparse's ``ArgumentTypeError``.
"""

from __future__ import annotations

import argparse
import functools

from holdpose import limits
from holdpose.errors import HoldposeError


def _argument_type(check):
    """An argparse type from ``check(text)``: its HoldposeError is a usage error, its name the type's."""
    @functools.wraps(check)
    def parse(text: str):
        try:
            return check(text)
        except HoldposeError as err:
            raise argparse.ArgumentTypeError(str(err)) from err
    return parse


def _integer(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise HoldposeError(f"must be a whole number, got {text!r}") from err
    return limits.whole(value, "value", low, high)


@_argument_type
def positive_int(text: str) -> int:
    return _integer(text, 1, limits.INT32_MAX)


@_argument_type
def nonnegative_int(text: str) -> int:
    return _integer(text, 0, limits.INT32_MAX)


@_argument_type
def seed(text: str) -> int:
    """A random seed: a whole number in [0, 2**32 - 1] (what NumPy and torch generators take)."""
    return _integer(text, 0, 2**32 - 1)


@_argument_type
def finite_float(text: str) -> float:
    return limits.finite(text, "value")


@_argument_type
def positive_float(text: str) -> float:
    return limits.in_range(text, "value", 0, None, low_open=True)


@_argument_type
def nonnegative_float(text: str) -> float:
    return limits.in_range(text, "value", 0, None)


@_argument_type
def fraction(text: str) -> float:
    return limits.in_range(text, "value", 0, 1)


@_argument_type
def fps(text: str) -> float:
    """Frames per second, in (0, 1000]."""
    return limits.fps(text, "frame rate")


@_argument_type
def size(text: str) -> tuple[int, int]:
    """``"512x768"`` -> ``(512, 768)`` (width, height), within holdpose's size cap."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise HoldposeError(f"size must look like 512x768, got {text!r}") from err
    if w <= 0 or h <= 0:
        raise HoldposeError(f"size must be positive, got {text!r}")
    return limits.frame_size(w, h, "size")


@_argument_type
def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    return _integer(text, 0, 65535)
