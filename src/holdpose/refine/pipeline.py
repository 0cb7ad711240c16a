"""The refine steps chained in their natural order, as ``holdpose refine`` runs them.

Order matters: ids must be stable before anything looks along time; swaps are repaired
before gaps are filled (else a gap would be interpolated between a flipped frame and a
correct one); gaps are filled before smoothing so the filter sees whole tracks;
resampling comes last.
"""

from __future__ import annotations

import logging

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)


def refine(seq: PoseSequence, *, track: bool = False, fill: bool = False, max_gap: int = 5, fix_swaps: bool = False,
           smooth: str | None = None, smooth_window: float | None = None, fps: float | None = None,
           video=None, reid_seconds: float | None = None) -> PoseSequence:
    """Apply the chosen refine steps to ``seq`` and return the result (the input is not changed).

    ``smooth`` is "offline" (zero-phase Savitzky-Golay over ``smooth_window`` seconds, default
    0.75) or "one_euro" (causal); ``max_gap`` is in frames, ``fps`` the new frame rate.
    Options that would do nothing (``smooth_window`` without offline smoothing) are refused.
    ``track`` re-assigns ids (:func:`holdpose.detect.track.track_people`; ``video``, the clip the
    poses came from, adds people's colours; ``reid_seconds`` how long someone may be lost)."""
    if smooth_window is not None and smooth != "offline":
        raise HoldposeError(f"smooth_window (--smooth-window) sets the offline smoother's window; it does nothing "
                            f"with smooth={smooth!r} (use --smooth offline, or drop --smooth-window)")
    if smooth_window is not None and not (np.isfinite(smooth_window) and smooth_window > 0):
        raise HoldposeError(f"smooth_window (--smooth-window) must be a positive number of seconds, got {smooth_window}")
    if track:
        from holdpose.detect.track import REID_SECONDS, slots_by_track, track_people, video_appearance

        appearance = video_appearance(seq, video) if video is not None else None
        before = len(np.unique(seq.track_ids[seq.track_ids >= 0]))
        seq = slots_by_track(track_people(seq, appearance=appearance, reid_seconds=reid_seconds or REID_SECONDS))
        logger.info("track: %d person ids before, %d after", before, len(np.unique(seq.track_ids[seq.track_ids >= 0])))
    if fix_swaps:
        from holdpose.refine.swaps import fix_swaps as repair

        seq, swapped = repair(seq)
        logger.info("fix swaps: %d left/right group swaps undone", int(np.sum(swapped)))
    if fill:
        from holdpose.refine.gaps import fill_gaps

        before = int(seq.interpolated.sum())
        seq = fill_gaps(seq, max_gap=max_gap)
        logger.info("fill: %d missing points interpolated (gaps of up to %d frames)",
                    int(seq.interpolated.sum()) - before, max_gap)
    if smooth == "offline":
        from holdpose.refine.smooth import smooth_offline

        window = None
        if smooth_window:
            frames = max(int(round(smooth_window * seq.fps)), 5)
            window = frames + 1 - frames % 2
        seq = smooth_offline(seq, window=window)
    elif smooth:
        from holdpose.refine.smooth import smooth as smoother

        seq = smoother(seq, method=smooth)
    if fps:
        from holdpose.refine.timeline import resample

        seq = resample(seq, fps)
    return seq
