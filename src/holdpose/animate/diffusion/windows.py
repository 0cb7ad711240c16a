"""Overlapping context windows over a long clip, and the weights that fuse them.

Video models such as AnimateDiff's motion modules see about 16 frames at once. A
longer clip is denoised as overlapping windows: at every denoising step each window's
noise prediction is computed on its own frames, and the predictions of the windows
that share a frame are averaged with per-position weights, so neighbouring windows
agree where they overlap (the "context scheduling" of AnimateDiff-Evolved; FreeNoise,
Qiu et al. 2023, fuses the same way inside the temporal attention, with the
"pyramid" weights ``[1, 2, 3, 2, 1]``). MimicMotion (and DisPose on it) fuses with
"triangular" weights ``min((i + 0.5)/(L/2), 2 − (i + 0.5)/(L/2))`` over its 16-frame windows,
counting the reference frame it puts first (``lead=1``).

Pure numpy; no model needed::

    windows = context_windows(num_frames=40, length=16, stride=8)   # [0..15] [8..23] [16..31] [24..39]
    weights = fusion_weights(windows, num_frames=40)                 # per window, [length] floats
    # for every frame, the weights of the windows holding it sum to one
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("pyramid", "flat", "triangular")


def context_windows(num_frames: int, length: int, stride: int) -> list[np.ndarray]:
    """Windows of ``length`` consecutive frame indices, starting every ``stride`` frames,
    covering ``range(num_frames)``.

    Every window has exactly ``min(length, num_frames)`` frames (the motion module sees
    the clip length it was trained on); the last window is moved back to end on the
    last frame, so it may overlap its neighbour by more than ``length - stride``.

    Args:
        num_frames: frames in the clip, >= 1.
        length: frames per window (the context length), >= 1.
        stride: frames between the starts of consecutive windows, 1 <= stride <= length
            (``stride == length`` makes windows that touch without overlapping).

    Returns:
        list of int64 arrays ``[length]``, in increasing order of start frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if length < 1:
        raise ValueError(f"window length must be at least 1, got {length}")
    if not 1 <= stride <= length:
        raise ValueError(f"stride must be between 1 and the window length {length}, got {stride}")
    if num_frames <= length:
        return [np.arange(num_frames)]
    starts = list(range(0, num_frames - length, stride))
    starts.append(num_frames - length)  # the last window ends on the last frame
    return [np.arange(start, start + length) for start in starts]


def window_profile(length: int, scheme: str = "pyramid", lead: int = 0) -> np.ndarray:
    """Unnormalised weight of each position in a window, float64 ``[length]``.

    "pyramid": ``min(i + 1, length - i)``, highest in the middle (``[1, 2, 3, 2, 1]``),
    so a frame leans on the window that sees most of its neighbours; "flat": all ones;
    "triangular" (MimicMotion's ``pipeline_mimicmotion.py``): ``min((i + 0.5)/(n/2),
    2 − (i + 0.5)/(n/2))`` over ``n = lead + length`` positions of which the first ``lead``
    (frames put in front of every window, such as the reference anchor) are not returned:
    for a 16-frame window, 0.0625 at both ends and 0.9375 in the middle.
    """
    if scheme == "pyramid":
        i = np.arange(length)
        return np.minimum(i + 1, length - i).astype(np.float64)
    if scheme == "flat":
        return np.ones(length)
    if scheme == "triangular":
        half = (lead + length) / 2
        i = np.arange(lead, lead + length) + 0.5
        return np.minimum(i / half, 2 - i / half)
    raise ValueError(f"unknown fusion scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")


def fusion_weights(windows: list[np.ndarray], num_frames: int, scheme: str = "pyramid",
                   lead: int = 0) -> list[np.ndarray]:
    """Per-window, per-position weights such that, for every frame, the weights of the
    windows holding it sum to one.

    Fusing noise predictions ``eps_w`` of each window ``w`` is then
    ``eps[:, :, windows[w]] += weights[w] * eps_w`` over all windows.

    Args:
        windows: from :func:`context_windows` (any list of index arrays covering the clip).
        num_frames: frames in the clip.
        scheme, lead: see :func:`window_profile` (``lead``: frames in front of every window,
            counted by the "triangular" profile only).

    Returns:
        list of float64 arrays, ``weights[w]`` of the shape of ``windows[w]``.

    Raises:
        ValueError: if some frame is in no window.
    """
    raw = [window_profile(len(window), scheme, lead) for window in windows]
    total = np.zeros(num_frames)
    for window, weight in zip(windows, raw):
        np.add.at(total, window, weight)
    if (total <= 0).any():
        raise ValueError(f"frames {np.flatnonzero(total <= 0).tolist()[:10]} are in no window")
    return [weight / total[window] for window, weight in zip(windows, raw)]
