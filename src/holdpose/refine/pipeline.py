"""The refine steps chained in their natural order, as ``holdpose refine`` runs them.

Order matters: ids must be stable before anything looks along time; gaps are filled
before smoothing so the filter sees whole tracks; swaps are repaired before smoothing
so a flipped frame is not averaged into its neighbours; resampling comes last.
"""

from __future__ import annotations

from holdpose.sequence import PoseSequence


def refine(seq: PoseSequence, *, track: bool = False, fill: bool = False, max_gap: int = 5, fix_swaps: bool = False,
           smooth: str | None = None, fps: float | None = None) -> PoseSequence:
    """Apply the chosen refine steps to ``seq`` and return the result (the input is not changed)."""
    if track:
        from holdpose.refine.track import assign_track_ids, slots_by_track

        seq = slots_by_track(assign_track_ids(seq))
    if fill:
        from holdpose.refine.gaps import fill_gaps

        seq = fill_gaps(seq, max_gap=max_gap)
    if fix_swaps:
        from holdpose.refine.swaps import fix_swaps as repair

        seq = repair(seq)[0]
    if smooth:
        from holdpose.refine.smooth import smooth as smoother

        seq = smoother(seq, method=smooth)
    if fps:
        from holdpose.refine.timeline import resample

        seq = resample(seq, fps)
    return seq
