"""Temporal smoothing of keypoint tracks: zero-phase offline, or causal One-Euro.

Both filters work per person slot and keypoint (slots are assumed to be consistent tracks)
and are confidence-aware:

- missing points (score 0) are never used and stay missing;
- a point's score is its weight, so a low-confidence point is pulled further towards
  what its neighbours in time say than a confident one.

``smooth_offline`` is a weighted Savitzky-Golay filter (Savitzky & Golay 1964): at every
frame, a polynomial of degree ``polyorder`` is fitted by weighted least squares (weights =
scores) to the points of a centred window and evaluated at the centre. The window is
symmetric, so the filter has no lag (zero phase); with equal scores it is exactly
``scipy.signal.savgol_filter``. Near missing points and the ends of the sequence the fit
uses the points that exist, so no run has to be padded; detections on both sides of a gap
shorter than the window both count (the fit is in time, so that is sound), and nothing
farther apart than the window is ever mixed.

``one_euro`` is the 1€ filter of Casiez, Roussel & Vogel (2012), "1€ Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI '12: an
exponential smoother whose cutoff rises with the speed of the point. It is causal (frame t
sees only frames <= t), for live use; like every causal low-pass filter it lags.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import correlate1d

from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

METHODS = ("offline", "one_euro")
# 0.75 s: on the dance fixture (24 fps, MediaPipe) the default cuts the mean keypoint acceleration
# to 37 % of the raw one while moving points by 0.8 % of the body height on average. Fast, clean
# motion keeps more detail with a shorter window (about 0.4 s is best on a 1 Hz synthetic walk).
DEFAULT_WINDOW_SECONDS = 0.75


def smooth(seq: PoseSequence, method: str = "offline", **kwargs) -> PoseSequence:
    """Smooth ``seq`` with ``smooth_offline`` (``method="offline"``) or ``one_euro``;
    ``kwargs`` go to that function."""
    if method == "offline":
        return smooth_offline(seq, **kwargs)
    if method == "one_euro":
        return one_euro(seq, **kwargs)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# --- offline: weighted Savitzky-Golay --------------------------------------------------

def default_window(fps: float, polyorder: int = 2) -> int:
    """Odd window in frames spanning about ``DEFAULT_WINDOW_SECONDS`` (19 frames at 24 fps, 23 at 30)."""
    window = max(int(round(DEFAULT_WINDOW_SECONDS * fps)), polyorder + 2)  # shorter would only interpolate
    return window + 1 - window % 2


def smooth_offline(seq: PoseSequence, window: int | None = None, polyorder: int = 2) -> PoseSequence:
    """Zero-phase, confidence-weighted Savitzky-Golay smoothing of every keypoint track.

    Args:
        seq: poses; ``keypoints [T, P, K, 2]`` px, ``scores [T, P, K]`` (0 = missing).
        window: odd window length in frames; default :func:`default_window` of ``seq.fps``
            (about 0.75 s).
        polyorder: degree of the local polynomial, < ``window``.

    Returns:
        A copy of ``seq`` with present points replaced by the weighted least-squares
        polynomial fit at their frame. Scores, flags and missing points are unchanged; a
        point whose window holds fewer than ``polyorder + 1`` detections is kept as it is.
    """
    window = default_window(seq.fps, polyorder) if window is None else window
    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of frames, got {window!r}")
    if int(polyorder) != polyorder or not 0 <= polyorder < window:
        raise ValueError(f"polyorder must be an integer in [0, window={window}), got {polyorder!r}")

    # 1. Columns [T, N] of weights and coordinates, smoothed in blocks of columns that stay in cache.
    t_len, p_len, k_len = seq.scores.shape
    w = seq.scores.reshape(t_len, p_len * k_len)
    xy = seq.keypoints.reshape(t_len, p_len * k_len, 2)
    fit = xy.copy()
    used = np.flatnonzero((w > 0).any(0))  # columns with at least one detection
    block = max(1, _BLOCK_ELEMENTS // max(t_len, 1))
    for start in range(0, len(used), block):
        cols = used[start:start + block]
        fit[:, cols] = _weighted_savgol(w[:, cols], xy[:, cols], window, polyorder)

    # 2. Present points take the fit; missing ones keep their (meaningless) values.
    out = seq.copy()
    out.keypoints[:] = np.where(seq.present[..., None], fit.reshape(seq.keypoints.shape), seq.keypoints)
    return out


_BLOCK_ELEMENTS = 1 << 16  # frames x columns per block: float64 temporaries of 512 kB stay in cache


def _weighted_savgol(w: np.ndarray, xy: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Weighted Savitzky-Golay values ``[T, N, 2]`` for weights ``w [T, N]`` and points ``xy [T, N, 2]``.

    Solves, at every frame t and column, min_a sum_j w(t+j) |x(t+j) - sum_m a_m u_j^m|^2 over the
    window j = -half..half (u_j = j / half, time in half-window units keeps the system well
    scaled) and returns a_0, the polynomial at the centre. Columns whose window holds fewer
    than ``polyorder + 1`` detections keep ``xy``.
    """
    # Weighted moments S_m = sum_j w(t+j) u_j^m and B_m = sum_j w(t+j) u_j^m x(t+j),
    # computed with time as the last, contiguous axis (2.5x faster correlations).
    half = window // 2
    u = np.arange(-half, half + 1) / max(half, 1)
    w_nt = np.ascontiguousarray(w.T, dtype=np.float64)  # [N, T]
    wxy = w_nt * np.transpose(xy, (2, 1, 0))  # [2, N, T]
    corr = lambda a, m: correlate1d(a, u**m, axis=-1, mode="constant", cval=0.0)  # noqa: E731
    s = [corr(w_nt, m) for m in range(2 * polyorder + 1)]
    normal = [[s[i + k] for k in range(polyorder + 1)] for i in range(polyorder + 1)]
    rhs = [corr(wxy, m) for m in range(polyorder + 1)]

    # The normal equations sum_k S_(i+k) a_k = B_i; a_0 is the polynomial at the centre.
    with np.errstate(divide="ignore", invalid="ignore"):
        fit = np.transpose(_solve_first(normal, rhs), (2, 1, 0))  # [T, N, 2]
    running = np.cumsum(np.pad(w > 0, ((half + 1, half), (0, 0))), axis=0)
    count = running[window:] - running[:-window]  # detections in each window
    ok = (count > polyorder) & np.isfinite(fit).all(-1)
    return np.where(ok[..., None], fit, xy)


def _solve_first(m: list[list[np.ndarray]], b: list[np.ndarray]) -> np.ndarray:
    """First unknown ``a_0`` of ``m a = b`` for stacks of small symmetric positive definite systems.

    ``m[i][k]`` are arrays ``[N, T]``, ``b[i]`` arrays ``[2, N, T]`` (x and y). Gaussian
    elimination without pivoting, from the last unknown up, vectorised over frames and
    columns (numpy's batched ``linalg.solve`` is some 50x slower on millions of 3x3 systems).
    The inputs are not modified.
    """
    m = [list(row) for row in m]
    b = list(b)
    for i in reversed(range(1, len(b))):
        for r in range(i):
            f = m[r][i] / m[i][i]
            m[r] = [m[r][k] - f * m[i][k] for k in range(i)]
            b[r] = b[r] - f * b[i]
    return b[0] / m[0][0]


# --- online: One-Euro -----------------------------------------------------------------

def one_euro(seq: PoseSequence, min_cutoff: float = 1.0, beta: float = 0.007, d_cutoff: float = 1.0) -> PoseSequence:
    """Causal 1€ filter (Casiez et al. 2012) on every keypoint track.

    Per point, with ``Te`` the time since its last detection (s): the speed estimate is
    ``dx = (x - x_hat_prev) / Te``, low-passed at ``d_cutoff``; the position is low-passed
    at ``fc = min_cutoff + beta * |dx_hat|``, with ``alpha = 1 / (1 + 1 / (2 pi fc Te))``.
    Deviations from the paper's scalar filter: ``|dx_hat|`` is the 2-D speed of the point
    (px/s) so x and y share one cutoff, and ``alpha`` is multiplied by the point's score,
    so a low-confidence detection moves the estimate less. A point seen again after a gap
    continues from its old state with the longer ``Te`` (which lets it catch up quickly).

    Args:
        seq: poses; ``keypoints [T, P, K, 2]`` px, ``scores [T, P, K]``; time from ``seq.fps``.
        min_cutoff: cutoff at rest, Hz. Lower: less jitter, more lag when slow.
        beta: cutoff increase per px/s of speed, Hz s/px. Higher: less lag when fast.
        d_cutoff: cutoff of the speed estimate, Hz.

    Returns:
        A copy of ``seq`` with present points filtered; missing points stay missing.
    """
    for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
        if not value > 0:
            raise ValueError(f"{name} must be a positive frequency in Hz, got {value!r}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")

    t_len, p_len, k_len = seq.scores.shape
    xy = seq.keypoints.reshape(t_len, p_len * k_len, 2).astype(np.float64)
    scores = seq.scores.reshape(t_len, p_len * k_len, 1).astype(np.float64)
    present = scores > 0
    x_hat = np.zeros(xy.shape[1:])
    dx_hat = np.zeros(xy.shape[1:])
    last_seen = np.full((xy.shape[1], 1), -1)  # frame of the last detection; -1: never

    # 1 / (2 pi fc Te) = rate / (2 pi fc), with rate = 1 / Te in Hz.
    for t in range(t_len):
        seen, x = present[t], xy[t]
        rate = seq.fps / (t - last_seen)
        dx_new = dx_hat + ((x - x_hat) * rate - dx_hat) / (1.0 + rate / (2 * np.pi * d_cutoff))
        cutoff = min_cutoff + beta * np.hypot(dx_new[:, :1], dx_new[:, 1:])
        x_new = x_hat + scores[t] * (x - x_hat) / (1.0 + rate / (2 * np.pi * cutoff))
        first = seen & (last_seen < 0)
        if first.any():  # a point's first detection starts its filter
            np.copyto(x_new, x, where=first)
            np.copyto(dx_new, 0.0, where=first)
        np.copyto(x_hat, x_new, where=seen)
        np.copyto(dx_hat, dx_new, where=seen)
        np.copyto(x, x_hat, where=seen)
        np.copyto(last_seen, t, where=seen)
    out = seq.copy()
    out.keypoints[:] = xy.reshape(out.keypoints.shape)
    return out
