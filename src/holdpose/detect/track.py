"""Person tracking: give each person the same id in every frame.

Detections of frame t are matched to the tracks alive at t by keypoint
similarity (an OKS-like score on the points both have, scale-normalised by the
track's box) blended with box overlap, with an optimal assignment (Hungarian).
A track that is not matched is kept for ``max_age`` frames, so a person hidden
for a moment gets their id back (re-identification by predicted position and pose).
"""

from __future__ import annotations

import numpy as np

from holdpose.sequence import PoseSequence


def keypoint_similarity(a: np.ndarray, a_scores: np.ndarray, b: np.ndarray, b_scores: np.ndarray,
                        *, kappa: float = 0.1, min_score: float = 0.3) -> float:
    """OKS-like similarity in [0, 1] of two poses ``[K, 2]``: mean of exp(-d^2 / (2 s^2 kappa^2))
    over points present in both, with s^2 the area of ``a``'s box. 0 when they share under 2 points."""
    return float(pose_similarity(a, a_scores, b, b_scores, kappa=kappa, min_score=min_score, box_weight=0.0))


def _boxes(points: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``[..., 4]`` boxes around present points of ``[..., K, 2]`` (all zeros for fewer than 2)."""
    big = np.float32(1e9)
    lo = np.where(present[..., None], points, big).min(-2)
    hi = np.where(present[..., None], points, -big).max(-2)
    ok = present.sum(-1) >= 2
    return np.where(ok[..., None], np.concatenate([lo, hi], -1), 0)


def pose_similarity(a_kp, a_sc, b_kp, b_sc, *, kappa: float = 0.1, min_score: float = 0.3,
                    box_weight: float = 0.3) -> np.ndarray:
    """Similarity of poses ``a`` and ``b`` (``[..., K, 2]``, broadcasting): a blend of an OKS-like
    keypoint similarity (scale from ``a``'s box) and the IoU of their boxes, in [0, 1]."""
    a_present, b_present = a_sc > min_score, b_sc > min_score
    both = a_present & b_present
    count = both.sum(-1)
    a_box, b_box = _boxes(a_kp, a_present), _boxes(b_kp, b_present)
    a_area = np.maximum((a_box[..., 2] - a_box[..., 0]) * (a_box[..., 3] - a_box[..., 1]), 1.0)
    d2 = ((a_kp - b_kp) ** 2).sum(-1)
    oks = (np.exp(-d2 / (2 * a_area[..., None] * kappa ** 2)) * both).sum(-1) / np.maximum(count, 1)
    oks = np.where(count >= 2, oks, 0.0)
    if box_weight == 0:
        return oks
    ix = np.clip(np.minimum(a_box[..., 2], b_box[..., 2]) - np.maximum(a_box[..., 0], b_box[..., 0]), 0, None)
    iy = np.clip(np.minimum(a_box[..., 3], b_box[..., 3]) - np.maximum(a_box[..., 1], b_box[..., 1]), 0, None)
    inter = ix * iy
    b_area = (b_box[..., 2] - b_box[..., 0]) * (b_box[..., 3] - b_box[..., 1])
    union = a_area + b_area - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
    return (1 - box_weight) * oks + box_weight * iou


def assign_track_ids(seq: PoseSequence, *, max_age: int = 30, min_similarity: float = 0.2) -> PoseSequence:
    """Return a copy of ``seq`` whose ``track_ids`` follow each person across frames.

    A track is predicted from its last two sightings (constant velocity over the gap) and
    matched to the frame's detections by :func:`pose_similarity` with an optimal assignment;
    it survives ``max_age`` frames unseen, so a person hidden for a moment gets their id back.
    The common case, one person seen in consecutive frames, is scored for all frames at once.
    Slots with no present point get id -1. Ids are 0, 1, 2, ... in order of first appearance.
    """
    out = seq.copy()
    out.track_ids[:] = -1
    occupied = (seq.scores > 0).any(-1)  # [T, P]
    # Who is who is decided on the body (hands and face would add cost, not information).
    body = seq.layout.group("body") if "body" in seq.layout.groups else slice(None)
    keypoints, scores = seq.keypoints[:, :, body], seq.scores[:, :, body]
    single = occupied.sum(1) == 1
    slot_of = occupied.argmax(1)
    frames = np.arange(seq.num_frames)
    chained = np.zeros(seq.num_frames, bool)  # one person now and in the previous frame, similar enough
    if seq.num_frames > 1:
        t = frames[1:][single[1:] & single[:-1]]
        sim = pose_similarity(keypoints[t - 1, slot_of[t - 1]], scores[t - 1, slot_of[t - 1]],
                              keypoints[t, slot_of[t]], scores[t, slot_of[t]])
        chained[t[sim >= min_similarity]] = True

    tracks: list[list[int]] = []  # [id, last frame, last slot, previous frame, previous slot]
    next_id = 0
    for t in frames:
        slots = np.flatnonzero(occupied[t])
        if len(slots) == 0:
            continue
        tracks = [tr for tr in tracks if t - tr[1] <= max_age]
        if chained[t]:
            track = next((tr for tr in tracks if tr[1] == t - 1), None)
            if track is not None:
                track[1:] = [t, slots[0], track[1], track[2]]
                out.track_ids[t, slots[0]] = track[0]
                continue
        match = {}
        if tracks:
            from scipy.optimize import linear_sum_assignment

            predicted_kp, predicted_sc = _predict(keypoints, scores, tracks, t)
            similarity = pose_similarity(predicted_kp[:, None], predicted_sc[:, None],
                                         keypoints[t, slots][None], scores[t, slots][None])
            rows, cols = linear_sum_assignment(-similarity)
            match = {int(c): tracks[r] for r, c in zip(rows, cols) if similarity[r, c] >= min_similarity}
        for j, slot in enumerate(slots):
            track = match.get(j)
            if track is None:
                track = [next_id, t, slot, -1, -1]
                next_id += 1
                tracks.append(track)
            else:
                track[1:] = [t, slot, track[1], track[2]]
            out.track_ids[t, slot] = track[0]
    return out


def _predict(keypoints: np.ndarray, scores: np.ndarray, tracks: list[list[int]], t: int):
    """Each track's pose ``[M, K, 2]`` extrapolated to frame ``t`` from its last two sightings, and its scores."""
    last = np.array([(tr[1], tr[2]) for tr in tracks])
    prev = np.array([(tr[3], tr[4]) for tr in tracks])
    kp = keypoints[last[:, 0], last[:, 1]]
    sc = scores[last[:, 0], last[:, 1]]
    has_prev = prev[:, 0] >= 0
    prev_kp = keypoints[np.maximum(prev[:, 0], 0), prev[:, 1]]
    prev_sc = scores[np.maximum(prev[:, 0], 0), prev[:, 1]]
    step = np.maximum(last[:, 0] - prev[:, 0], 1)[:, None, None]
    velocity = np.where((has_prev[:, None] & (sc > 0) & (prev_sc > 0))[..., None], (kp - prev_kp) / step, 0)
    return kp + velocity * (t - last[:, 0])[:, None, None], sc


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
        out.neck[frames, j] = seq.neck[frames, slots]
        out.track_ids[frames, j] = track_id
    return out
