"""Time operations on a :class:`PoseSequence`: resample, trim, loop, reverse, concatenate.

Frames are addressed by time in seconds, so a motion keeps its speed whatever
the frame rate: frame ``i`` of a sequence at ``fps`` shows time ``i / fps`` and
lasts ``1 / fps``; a sequence of T frames lasts ``T / fps`` seconds.

Poses between two frames are made by linear interpolation of positions
(``blend_frames``), with three rules shared by every function here and by
:mod:`holdpose.refine.keyframes`:

- a point missing at either neighbour stays missing in between (nothing is invented);
- a point made in between is marked ``interpolated``; a frame that coincides with
  an original frame is copied as it is, flags included;
- track ids, and whole slots whose person differs between the neighbours, come
  from the nearer neighbour (no blending of two different people).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

# A source position within this many frames of an original frame is that frame.
_EXACT = 1e-6


class TimelineError(HoldposeError, ValueError):
    """Invalid time arguments or incompatible sequences (a ``ValueError`` the CLI reports in one line)."""


def frame_times(seq: PoseSequence) -> np.ndarray:
    """float64 ``[T]``: the time of each frame in seconds, ``i / fps``."""
    return np.arange(seq.num_frames) / seq.fps


def _check_not_empty(seq: PoseSequence, what: str) -> None:
    if seq.num_frames == 0:
        raise TimelineError(f"{what}: the sequence has no frames")


def _pad_people(seq: PoseSequence, num_people: int) -> PoseSequence:
    """``seq`` with empty slots appended up to ``num_people`` person slots."""
    extra = num_people - seq.num_people
    if extra <= 0:
        return seq
    t, _, k = seq.scores.shape
    return replace(
        seq,
        keypoints=np.concatenate([seq.keypoints, np.zeros((t, extra, k, 2), np.float32)], 1),
        scores=np.concatenate([seq.scores, np.zeros((t, extra, k), np.float32)], 1),
        track_ids=np.concatenate([seq.track_ids, np.full((t, extra), -1, np.int32)], 1),
        interpolated=np.concatenate([seq.interpolated, np.zeros((t, extra, k), bool)], 1),
        neck=np.concatenate([seq.neck, np.zeros((t, extra, seq.neck.shape[-1]), np.float32)], 1),
    )


# --- interpolation core --------------------------------------------------------

def blend_frames(a: PoseSequence, ia: np.ndarray, b: PoseSequence, ib: np.ndarray, w: np.ndarray,
                 *, by_slot: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blend frames ``a[ia]`` and ``b[ib]`` with weight ``w`` on ``b``: ``(1 - w) * a + w * b``.

    Args:
        a, b: sequences with the same number of person slots and keypoints (may be the same object).
        ia, ib: int ``[N]`` frame indices into ``a`` and ``b``.
        w: float ``[N]`` in [0, 1]; 0 copies ``a[ia]``, 1 copies ``b[ib]`` (flags included).
        by_slot: blend slot p of ``a`` with slot p of ``b`` whatever their track ids
            (for joining two clips); by default a slot whose track id differs between
            the two frames is not blended but copied from the nearer frame.

    Returns:
        ``(keypoints [N, P, K, 2] float32, scores [N, P, K] float32, track_ids [N, P] int32,
        interpolated [N, P, K] bool)``. A point is blended where present in both frames,
        missing where present in only one, and marked interpolated when ``0 < w < 1``.
    """
    ia = np.asarray(ia, int)
    ib = np.asarray(ib, int)
    w = np.asarray(w, np.float64)
    ka, kb = a.keypoints[ia].astype(np.float64), b.keypoints[ib].astype(np.float64)
    sa, sb = a.scores[ia], b.scores[ib]
    ida, idb = a.track_ids[ia], b.track_ids[ib]
    fa, fb = a.interpolated[ia], b.interpolated[ib]

    # 1. The nearer frame: everything that is not blended comes from it.
    take_b = (w >= 0.5)[:, None]  # [N, 1]
    track_ids = np.where(take_b, idb, ida)
    near_k = np.where(take_b[..., None, None], kb, ka)
    near_s = np.where(take_b[..., None], sb, sa)
    near_f = np.where(take_b[..., None], fb, fa)

    # 2. Blend the slots that hold the same person, strictly between the frames.
    between = (w > 0) & (w < 1)  # [N]
    same = np.ones(ida.shape, bool) if by_slot else ida == idb  # [N, P]
    mix = between[:, None] & same  # [N, P]
    both = (sa > 0) & (sb > 0)  # [N, P, K]
    w3 = w[:, None, None]
    kp = (1 - w3[..., None]) * ka + w3[..., None] * kb
    sc = (1 - w3) * sa + w3 * sb
    mix_k = mix[..., None]
    keypoints = np.where(mix_k[..., None], np.where(both[..., None], kp, 0.0), near_k)
    scores = np.where(mix_k, np.where(both, sc, 0.0), near_s)
    interpolated = np.where(mix_k, both, near_f)
    return keypoints.astype(np.float32), scores.astype(np.float32), track_ids.astype(np.int32), interpolated


# --- operations ---------------------------------------------------------------------

def resample(seq: PoseSequence, fps: float) -> PoseSequence:
    """Change the frame rate to ``fps`` (frames per second), keeping the motion's timing.

    The result has ``round(T * fps / seq.fps)`` frames (at least 1); new frame j shows
    time ``j / fps``, i.e. source position ``u = j * seq.fps / fps`` (clamped to the last
    frame). Positions are interpolated linearly between frames ``floor(u)`` and
    ``floor(u) + 1``; see the module docstring for missing points, flags and track ids.
    30 -> 15 fps keeps the even frames exactly; 10 -> 20 fps inserts midpoints.
    """
    _check_not_empty(seq, "resample")
    if not np.isfinite(fps) or fps <= 0:
        raise TimelineError(f"fps must be a positive number of frames per second, got {fps!r}")
    t = seq.num_frames
    n = max(1, int(round(t * fps / seq.fps)))
    u = np.clip(np.arange(n) * (seq.fps / fps), 0, t - 1)
    nearest = np.rint(u).astype(int)
    exact = np.abs(u - nearest) < _EXACT
    i0 = np.where(exact, nearest, np.floor(u).astype(int))
    i1 = np.minimum(np.where(exact, nearest, i0 + 1), t - 1)
    w = np.where(exact, 0.0, u - i0)
    keypoints, scores, track_ids, interpolated = blend_frames(seq, i0, seq, i1, w)
    return replace(seq, keypoints=keypoints, scores=scores, track_ids=track_ids,
                   interpolated=interpolated, fps=float(fps), neck=seq.neck[np.where(w < 0.5, i0, i1)])


def trim(seq: PoseSequence, start: float | None = None, end: float | None = None) -> PoseSequence:
    """The frames whose time ``i / fps`` lies in ``[start, end)`` seconds.

    ``None`` means the beginning / the end of the sequence; ``end`` past the end is
    clamped. Raises :class:`TimelineError` when the range holds no frame.
    """
    _check_not_empty(seq, "trim")
    start = 0.0 if start is None else float(start)
    end = seq.duration if end is None else float(end)
    if start < 0 or end <= start:
        raise TimelineError(f"trim needs 0 <= start < end (seconds), got start={start}, end={end}")
    first = int(np.ceil(start * seq.fps - _EXACT))
    stop = min(int(np.ceil(end * seq.fps - _EXACT)), seq.num_frames)
    if first >= stop:
        raise TimelineError(
            f"trim range [{start}, {end}) s holds no frame of a {seq.duration:.3f} s sequence at {seq.fps:g} fps"
        )
    return seq[first:stop].copy()


def loop(seq: PoseSequence, times: float) -> PoseSequence:
    """Repeat the sequence ``times`` times (``round(T * times)`` frames; a fraction
    ends part-way through a repetition). Track ids repeat unchanged."""
    _check_not_empty(seq, "loop")
    if not np.isfinite(times) or times <= 0:
        raise TimelineError(f"loop needs times > 0, got {times!r}")
    n = max(1, int(round(seq.num_frames * times)))
    return seq[np.arange(n) % seq.num_frames].copy()


def reverse(seq: PoseSequence) -> PoseSequence:
    """The frames in reverse order (time runs backwards)."""
    return seq[::-1].copy()


def concatenate(a: PoseSequence, b: PoseSequence, blend: float = 0.0) -> PoseSequence:
    """``a`` followed by ``b``, with a cross-fade of ``blend`` seconds.

    The last ``n = round(blend * fps)`` frames of ``a`` overlap the first ``n`` of ``b``
    and are replaced by blends: overlap frame k (0-based) is ``(1 - w) * a + w * b`` with
    ``w = (k + 1) / (n + 1)``, so the fade starts just after ``a`` and ends just before
    ``b``. People are matched by slot (slot p of ``a`` with slot p of ``b``); a point
    present on one side only is missing in the overlap. The result has
    ``len(a) + len(b) - n`` frames and as many person slots as the larger input.

    Raises:
        ValueError (:class:`TimelineError`): different size, fps or layout, or a blend
        longer than either sequence.
    """
    # 1. Check inputs.
    for name, x, y in (("size", a.size, b.size), ("fps", a.fps, b.fps), ("layout", a.layout.name, b.layout.name)):
        if x != y:
            raise TimelineError(
                f"cannot concatenate sequences with different {name}: {x!r} (first) and {y!r} (second); "
                + ("resample one with holdpose.refine.timeline.resample" if name == "fps" else "convert one first")
            )
    if not np.isfinite(blend) or blend < 0:
        raise TimelineError(f"blend must be >= 0 seconds, got {blend!r}")
    n = int(round(blend * a.fps))
    if n > min(a.num_frames, b.num_frames):
        raise TimelineError(
            f"blend of {blend} s ({n} frames) is longer than the sequences ({a.num_frames} and {b.num_frames} frames)"
        )
    # 2. Same number of person slots on both sides.
    num_people = max(a.num_people, b.num_people)
    a, b = _pad_people(a, num_people), _pad_people(b, num_people)
    # 3. Head of a, blended overlap, tail of b.
    head = a[: a.num_frames - n]
    tail = b[n:]
    parts_k, parts_s, parts_i, parts_f = [head.keypoints], [head.scores], [head.track_ids], [head.interpolated]
    parts_n = [head.neck]
    if n:
        k = np.arange(n)
        w = (k + 1) / (n + 1)
        kp, sc, ids, flags = blend_frames(a, a.num_frames - n + k, b, k, w, by_slot=True)
        parts_k.append(kp), parts_s.append(sc), parts_i.append(ids), parts_f.append(flags)
        # a file's neck is not blended: the nearer side's, as resample takes it
        parts_n.append(np.where((w < 0.5)[:, None, None], a.neck[a.num_frames - n + k], b.neck[k]))
    parts_k.append(tail.keypoints), parts_s.append(tail.scores)
    parts_i.append(tail.track_ids), parts_f.append(tail.interpolated), parts_n.append(tail.neck)
    return replace(a, keypoints=np.concatenate(parts_k), scores=np.concatenate(parts_s),
                   track_ids=np.concatenate(parts_i), interpolated=np.concatenate(parts_f),
                   neck=np.concatenate(parts_n))
