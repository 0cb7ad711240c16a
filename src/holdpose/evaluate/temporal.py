"""Temporal stability: flickering, warping error, keypoint jitter.

All frame metrics stream: a meter keeps only the previous frame, so memory does not
grow with the video. Frames are ``uint8 [H, W, 3]`` RGB.

**Temporal flickering** exactly as VBench defines it (Huang et al., 2024, "VBench";
``vbench/temporal_flickering.py``: ``calculate_mae`` and ``cal_score``): the mean absolute
difference of consecutive frames over all pixels and channels on the 0..255 scale,
averaged over the frame pairs (``raw``), and VBench's score ``(255 - raw) / 255``
(``score``, 1 for a still video). VBench applies it to static-scene videos, where any
change is flicker; on a moving person the raw value also contains the motion, so read it
against the ground truth's own value (holdpose reports both when a ground truth is given).

**Warping error** (Lai et al., 2018, "Learning Blind Video Temporal Consistency"): the
previous frame is warped to the current one along the optical flow and compared over
the pixels where the flow is reliable::

    E_warp = mean over pairs t of  sum_x M_t(x) |I_t(x) - W(I_{t-1})(x)|^2 / (3 sum_x M_t(x))

on intensities scaled to [0, 1], the squares summed over the three channels and divided
by three times the masked pixel count (Lai et al.'s code divides by the count of a
three-channel mask, so this equals theirs). The flow is OpenCV's DIS (Kroeger et al.,
2016, "Fast Optical Flow using Dense Inverse Search", ``cv2.DISOpticalFlow``, preset
ULTRAFAST) on grey frames (``flow="farneback"`` uses ``cv2.calcOpticalFlowFarneback``,
Farnebäck, 2003, instead). Flow, warp and error are computed on the frames shrunk
(area averaging) to a short side of 256 px: this keeps the value independent of the
video's resolution and the cost at a few ms per frame (``short_side=None`` uses the
full frames, whose finer flow gives somewhat different values). The mask ``M`` keeps
pixels whose backward flow lands inside the frame and passes the forward-backward
consistency test of Sundaram et al. (2010), as in Ruder et al. (2016):
``|b + f(x + b)|^2 <= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5``. Here the
flow is measured on the evaluated video itself (no reference needed), which is the
usual choice when no source video exists; Lai et al. measured it on the input video.

**Keypoint jitter**: the mean magnitude of the second difference of each keypoint,
``|p_{t+1} - 2 p_t + p_{t-1}|`` in px/frame^2, over the points a person has in three
consecutive frames. Real motion has acceleration too: compare it with the target's own
jitter (holdpose reports both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from holdpose.sequence import PoseSequence

WARP_SHORT_SIDE = 256
# Forward-backward consistency (Sundaram et al., 2010): |b + f|^2 <= A (|b|^2 + |f|^2) + B.
CONSISTENCY_A = 0.01
CONSISTENCY_B = 0.5


# --- flickering --------------------------------------------------------------------


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two ``uint8`` frames over pixels and channels, 0..255
    (VBench's ``calculate_mae``)."""
    import cv2

    if a.shape != b.shape:
        raise ValueError(f"consecutive frames differ in shape: {a.shape} and {b.shape}")
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size


def flicker_score(raw: float) -> float:
    """VBench's temporal flickering score ``(255 - raw) / 255`` (1: no change at all)."""
    return (255.0 - raw) / 255.0


class FlickerMeter:
    """Streams VBench temporal flickering: :meth:`update` with each frame in order returns
    the mean absolute difference to the previous frame (None for the first)."""

    def __init__(self):
        self._previous: np.ndarray | None = None

    def update(self, frame: np.ndarray) -> float | None:
        value = None if self._previous is None else frame_difference(self._previous, frame)
        self._previous = frame
        return value


@dataclass(frozen=True)
class Flickering:
    """Temporal flickering of a video.

    Attributes:
        raw: mean over consecutive pairs of the mean absolute difference, 0..255.
        score: VBench's ``(255 - raw) / 255``.
        per_pair: ``[T - 1]`` mean absolute difference of frame t+1 to frame t.
    """

    raw: float
    score: float
    per_pair: np.ndarray


def temporal_flickering(frames: Iterable[np.ndarray]) -> Flickering:
    """VBench temporal flickering of a stream of frames (at least two)."""
    meter = FlickerMeter()
    values = [v for v in (meter.update(f) for f in frames) if v is not None]
    if not values:
        raise ValueError("temporal flickering needs at least two frames")
    raw = float(np.mean(values))
    return Flickering(raw=raw, score=flicker_score(raw), per_pair=np.array(values))


# --- warping error -------------------------------------------------------------------


class WarpErrorMeter:
    """Streams the warping error: :meth:`update` with each frame in order returns the
    error of that frame against the previous one warped onto it (None for the first;
    NaN when no pixel passes the consistency mask).

    Args:
        flow: "dis" (OpenCV DIS, preset ULTRAFAST) or "farneback".
        short_side: frames are shrunk (area averaging) to this short side before the
            flow, the warp and the error are computed (default 256 px: the value then
            does not depend on the video's resolution, and costs a few ms per frame);
            None works on the full frames.
        consistency: mask out pixels failing the forward-backward check (otherwise only
            pixels whose flow leaves the frame are dropped).
    """

    def __init__(self, *, flow: str = "dis", short_side: int | None = WARP_SHORT_SIDE, consistency: bool = True):
        import cv2

        if flow not in ("dis", "farneback"):
            raise ValueError(f"flow must be 'dis' or 'farneback', got {flow!r}")
        self._cv2 = cv2
        self.flow = flow
        self.short_side = short_side
        self.consistency = consistency
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST) if flow == "dis" else None
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (small frame, its grey)
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._shape: tuple | None = None

    def _shrink(self, frame: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        h, w = frame.shape[:2]
        if self.short_side and min(w, h) > self.short_side:
            scale = self.short_side / min(w, h)
            frame = cv2.resize(frame, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        return frame

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow ``[h, w, 2]`` from grey ``a`` to grey ``b``: a(x) matches b(x + flow(x))."""
        if self._dis is not None:
            return self._dis.calc(a, b, None)
        return self._cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    def update(self, frame: np.ndarray) -> float | None:
        cv2 = self._cv2
        if self._shape is not None and frame.shape != self._shape:
            raise ValueError(f"consecutive frames differ in shape: {self._shape} and {frame.shape}")
        self._shape = frame.shape
        small = self._shrink(frame)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        previous, self._previous = self._previous, (small, grey)
        if previous is None:
            return None
        prev_small, prev_grey = previous
        h, w = grey.shape
        if self._grid is None or self._grid[0].shape != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (xs, ys)
        gx, gy = self._grid

        # 1. Backward flow (current -> previous) and the pixels it keeps inside the frame.
        #    (OpenCV array ops on split channels: several times faster than numpy here.)
        backward_x, backward_y = cv2.split(self._flow(grey, prev_grey))
        map_x, map_y = cv2.add(gx, backward_x), cv2.add(gy, backward_y)
        mask = cv2.bitwise_and(cv2.inRange(map_x, 0, w - 1), cv2.inRange(map_y, 0, h - 1))

        # 2. Forward-backward consistency: the forward flow, read where the backward flow
        #    lands, must bring the point back.
        if self.consistency:
            forward = self._flow(prev_grey, grey)
            fx, fy = cv2.split(cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            tx, ty = cv2.add(backward_x, fx), cv2.add(backward_y, fy)
            lhs = cv2.add(cv2.multiply(tx, tx), cv2.multiply(ty, ty))
            norms = cv2.add(cv2.add(cv2.multiply(backward_x, backward_x), cv2.multiply(backward_y, backward_y)),
                            cv2.add(cv2.multiply(fx, fx), cv2.multiply(fy, fy)))
            rhs = cv2.addWeighted(norms, CONSISTENCY_A, norms, 0.0, CONSISTENCY_B)
            mask = cv2.bitwise_and(mask, cv2.compare(lhs, rhs, cv2.CMP_LE))

        # 3. Warp the previous frame onto the current one; MSE over the mask and the
        #    channels, on the [0, 1] scale.
        count = cv2.countNonZero(mask)
        if count == 0:
            return float("nan")
        warped = cv2.remap(prev_small, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        sq = float(cv2.norm(warped, small, cv2.NORM_L2SQR, mask=mask))
        return sq / (count * small.shape[2]) / 255.0 ** 2


def warp_error(frames: Iterable[np.ndarray], **options) -> tuple[float, np.ndarray]:
    """Warping error of a stream of frames: ``(mean over pairs, per_pair [T - 1])``; options
    as :class:`WarpErrorMeter`."""
    meter = WarpErrorMeter(**options)
    values = np.array([v for v in (meter.update(f) for f in frames) if v is not None], np.float64)
    if not len(values):
        raise ValueError("the warping error needs at least two frames")
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"), values


# --- keypoint jitter -------------------------------------------------------------------


@dataclass(frozen=True)
class Jitter:
    """Keypoint jitter of a pose sequence.

    Attributes:
        mean: mean ``|p_{t+1} - 2 p_t + p_{t-1}|`` over all scored points, px/frame^2
            (NaN when no person has a point in three consecutive frames).
        per_frame: ``[T]`` the same mean per middle frame t (NaN at the ends and where
            nothing is scored).
        count: points scored.
    """

    mean: float
    per_frame: np.ndarray
    count: int


def keypoint_jitter(seq: PoseSequence, *, min_score: float = 0.3, keypoints: slice | np.ndarray | None = None) -> Jitter:
    """Mean keypoint acceleration of the people of ``seq`` (see the module docstring).

    A person is followed by track id; a point counts at frame t when it has a score
    above ``min_score`` at t - 1, t and t + 1. ``keypoints`` restricts the points
    (e.g. ``slice(0, 17)`` for the body).
    """
    num_frames = seq.num_frames
    index = np.arange(seq.num_keypoints)[keypoints if keypoints is not None else slice(None)]
    total = np.zeros(num_frames)
    count = np.zeros(num_frames, np.int64)
    ids = np.unique(seq.track_ids[seq.track_ids >= 0])
    for track in ids:
        # Positions of this person per frame, NaN where absent or below the score.
        points = np.full((num_frames, len(index), 2), np.nan)
        slot = seq.track_ids == track  # [T, P]
        frames, slots = np.nonzero(slot)
        first = np.unique(frames, return_index=True)[1]  # one slot per frame
        frames, slots = frames[first], slots[first]
        kp = seq.keypoints[frames, slots][:, index].astype(np.float64)
        present = seq.scores[frames, slots][:, index] > min_score
        kp[~present] = np.nan
        points[frames] = kp
        if num_frames < 3:
            continue
        acc = points[2:] - 2 * points[1:-1] + points[:-2]  # [T-2, K, 2]
        magnitude = np.sqrt((acc ** 2).sum(-1))
        valid = np.isfinite(magnitude)
        total[1:-1] += np.where(valid, magnitude, 0).sum(-1)
        count[1:-1] += valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_frame = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    n = int(count.sum())
    return Jitter(mean=float(total.sum() / n) if n else float("nan"), per_frame=per_frame, count=n)


__all__ = ["FlickerMeter", "Flickering", "Jitter", "WarpErrorMeter", "flicker_score", "frame_difference",
           "keypoint_jitter", "temporal_flickering", "warp_error"]
