"""The limits every input is held to, in one place: the CLI's argument types and the file
loaders check values with these functions, so a bad number is refused the same way
wherever it comes from.

Each check returns the clean value or raises :class:`HoldposeError` naming ``what`` (a
flag or a file and field) and the allowed range. Sizes have a cap that a user with the
memory for more can raise: ``HOLDPOSE_MAX_PIXELS`` (default 64 megapixels per frame,
8000x8000), ``HOLDPOSE_MAX_SIDE`` (default 16384 pixels) and ``HOLDPOSE_MAX_POSE_SLOTS``
(frames x people of a pose sequence, default 1 000 000).
"""

from __future__ import annotations

import math
import os

from holdpose.errors import HoldposeError

MAX_FPS = 1000.0
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_SIDE = 16384
DEFAULT_MAX_POSE_SLOTS = 1_000_000  # frames x people; ~1.7 GB of COCO-WholeBody arrays
INT32_MAX = 2**31 - 1


def finite(value, what: str) -> float:
    """``value`` as a finite float (bools and NaN/inf refused)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise HoldposeError(f"{what} must be a finite number, got {value!r}")
    return number


def in_range(value, what: str, low: float | None = None, high: float | None = None, *, low_open: bool = False) -> float:
    """A finite float in ``[low, high]`` (``(low, high]`` with ``low_open``); a missing bound is no bound."""
    if low is not None and high is not None:
        bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        bounds = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        bounds = f"<= {high:g}"
    else:
        return finite(value, what)
    try:
        number = finite(value, what)
    except HoldposeError:
        number = math.nan
    if not (math.isfinite(number) and (low is None or number > low or (not low_open and number == low))
            and (high is None or number <= high)):
        raise HoldposeError(f"{what} must be {bounds}, got {value!r}")
    return number


def fps(value, what: str = "fps") -> float:
    """A frame rate in (0, 1000] frames per second."""
    return in_range(value, what, 0, MAX_FPS, low_open=True)


def whole(value, what: str, low: int = 0, high: int = INT32_MAX) -> int:
    """An integer in ``[low, high]``: an int, or a float with no fraction (JSON writes 3.0 for 3)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__index__"):
        raise HoldposeError(f"{what} must be a whole number in [{low}, {high}], got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise HoldposeError(f"{what} must be a whole number in [{low}, {high}], got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise HoldposeError(f"{what} must be a whole number in [{low}, {high}], got {_short(value)}")
    return number


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def _env_limit(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return max(1, int(text))
    except ValueError as err:
        raise HoldposeError(f"{name}={text!r} must be a whole number") from err


def pose_slots(num_frames: int, num_people: int, what: str = "pose sequence") -> None:
    """Refuse a sequence of more frame x person slots than the cap (``HOLDPOSE_MAX_POSE_SLOTS``)
    before its arrays are allocated."""
    cap = _env_limit("HOLDPOSE_MAX_POSE_SLOTS", DEFAULT_MAX_POSE_SLOTS)
    if num_frames * num_people > cap:
        raise HoldposeError(f"{what}: {num_frames} frames x {num_people} people is more than holdpose's limit of "
                            f"{cap} slots; set HOLDPOSE_MAX_POSE_SLOTS to raise it if you have the memory")


def max_pixels() -> int:
    return _env_limit("HOLDPOSE_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_side() -> int:
    return _env_limit("HOLDPOSE_MAX_SIDE", DEFAULT_MAX_SIDE)


def frame_size(width, height, what: str = "size") -> tuple[int, int]:
    """``(width, height)`` as positive ints within the cap; checked before anything of that size is allocated."""
    side = max_side()
    w = whole(width, f"{what} width", 1, 2**62)
    h = whole(height, f"{what} height", 1, 2**62)
    if w > side or h > side or w * h > max_pixels():
        raise HoldposeError(f"{what} {w}x{h} is larger than holdpose's limit ({side} pixels a side, "
                            f"{max_pixels() / 1e6:g} megapixels); set HOLDPOSE_MAX_SIDE / HOLDPOSE_MAX_PIXELS "
                            "to raise it if you have the memory")
    return w, h
