"""Person tracking: give each person the same id in every frame.

Detections of frame t are matched to the tracks alive at t by keypoint
similarity (an OKS-like score on the points both have, scale-normalised by the
track's box) blended with box overlap, with an optimal assignment (Hungarian).
A track that is not matched is kept for ``max_age`` frames, so a person hidden
for a moment gets their id back (re-identification by position and pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holdpose.sequence import PoseSequence


@dataclass
class _Track:
    track_id: int
    keypoints: np.ndarray  # [K, 2]
    scores: np.ndarray  # [K]
    velocity: np.ndarray  # [K, 2] px/frame of the last step, 0 when unknown
    last_frame: int


def keypoint_similarity(a: np.ndarray, a_scores: np.ndarray, b: np.ndarray, b_scores: np.ndarray,
                        *, kappa: float = 0.1, min_score: float = 0.3) -> float:
    """OKS-like similarity in [0, 1] of two poses ``[K, 2]``: mean of exp(-d^2 / (2 s^2 kappa^2))
    over points present in both, with s^2 the area of ``a``'s box. 0 when they share no point."""
    both = (a_scores > min_score) & (b_scores > min_score)
    if both.sum() < 2:
        return 0.0
    pa = a[a_scores > min_score]
    area = max(float(np.prod(pa.max(0) - pa.min(0))), 1.0)
    d2 = ((a[both] - b[both]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * area * kappa**2)).mean())


def _box(points: np.ndarray, scores: np.ndarray, min_score: float = 0.3):
    p = points[scores > min_score]
    if len(p) < 2:
        return None
    return np.concatenate([p.min(0), p.max(0)])


def _iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def assign_track_ids(seq: PoseSequence, *, max_age: int = 30, min_similarity: float = 0.2) -> PoseSequence:
    """Return a copy of ``seq`` whose ``track_ids`` follow each person across frames.

    Slots with no present point get id -1. Ids are 0, 1, 2, ... in order of first appearance.
    """
    from scipy.optimize import linear_sum_assignment

    out = seq.copy()
    out.track_ids[:] = -1
    tracks: list[_Track] = []
    next_id = 0
    for t in range(seq.num_frames):
        slots = [p for p in range(seq.num_people) if (seq.scores[t, p] > 0).any()]
        tracks = [tr for tr in tracks if t - tr.last_frame <= max_age]
        similarity = np.zeros((len(tracks), len(slots)))
        for i, tr in enumerate(tracks):
            predicted = tr.keypoints + tr.velocity * (t - tr.last_frame)
            for j, p in enumerate(slots):
                kp, sc = seq.keypoints[t, p], seq.scores[t, p]
                oks = keypoint_similarity(predicted, tr.scores, kp, sc)
                similarity[i, j] = 0.7 * oks + 0.3 * _iou(_box(predicted, tr.scores), _box(kp, sc))
        rows, cols = linear_sum_assignment(-similarity) if similarity.size else ([], [])
        matched = {}
        for i, j in zip(rows, cols):
            if similarity[i, j] >= min_similarity:
                matched[slots[j]] = tracks[i]
        for p in slots:
            kp, sc = seq.keypoints[t, p], seq.scores[t, p]
            tr = matched.get(p)
            if tr is None:
                tr = _Track(next_id, kp.copy(), sc.copy(), np.zeros_like(kp), t)
                next_id += 1
                tracks.append(tr)
            else:
                gap = t - tr.last_frame
                both = (sc > 0) & (tr.scores > 0)
                velocity = np.where(both[:, None], (kp - tr.keypoints) / max(gap, 1), 0)
                tr.velocity = velocity.astype(np.float32)
                tr.keypoints = np.where((sc > 0)[:, None], kp, tr.keypoints)
                tr.scores = np.where(sc > 0, sc, tr.scores * 0.9)
                tr.last_frame = t
            out.track_ids[t, p] = tr.track_id
    return out


def slots_by_track(seq: PoseSequence) -> PoseSequence:
    """Reorder person slots so that slot j holds the same person (the j-th track id) in every
    frame, which the along-time refine steps (gaps, smoothing, swaps) assume.
    Frames where a person is absent get an empty slot (id -1, scores 0)."""
    ids = np.unique(seq.track_ids[seq.track_ids >= 0])
    out = PoseSequence.empty(seq.num_frames, max(len(ids), 1), layout=seq.layout, size=seq.size, fps=seq.fps)
    for j, track_id in enumerate(ids):
        frames, slots = np.nonzero(seq.track_ids == track_id)
        out.keypoints[frames, j] = seq.keypoints[frames, slots]
        out.scores[frames, j] = seq.scores[frames, slots]
        out.interpolated[frames, j] = seq.interpolated[frames, slots]
        out.track_ids[frames, j] = track_id
    return out
