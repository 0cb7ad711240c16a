"""Person tracking: give each person the same id in every frame.

Three passes:

1. Online (:func:`assign_track_ids`): detections of frame t are matched to the tracks
   alive at t with an optimal assignment (Hungarian) on a similarity that blends
   *pose* (an OKS-like score on the points both have, scale-normalised by the track's
   box, plus box overlap) of the track's *motion* prediction (constant velocity from
   its last two sightings, extrapolated at most ``MAX_EXTRAPOLATION`` frames) with
   *appearance* (Bhattacharyya coefficient of hue-saturation histograms of the
   person's torso and legs, :func:`appearance_descriptors`), when the pixels are known.
   A track unseen for up to ``max_age`` frames can still be matched: a person hidden
   for a moment gets their id back; with no spatial evidence left, only a close
   appearance match re-identifies them.
2. Global (:func:`merge_tracklets`): tracklets that never share a frame are joined
   when one starts within ``max_gap`` frames after the other ends, near where the
   first was heading, and (with pixels) dressed alike, best pairs first.
3. Confirmation (:func:`without_flickers`): a track seen in fewer than ``CONFIRM_FRAMES``
   frames that lies on a lasting person in each of them is dropped.
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


MAX_EXTRAPOLATION = 8  # frames a lost track's motion is extrapolated before it is held still
APPEARANCE_WEIGHT = 0.5  # share of appearance in the similarity when histograms are known
REID_MIN_APPEARANCE = 0.8  # appearance needed to re-identify someone with no pose/box overlap left
HUE_BINS, SAT_BINS = 12, 4


def appearance_descriptors(image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                           min_score: float = 0.3) -> np.ndarray:
    """Hue-saturation histograms ``[P, HUE_BINS * SAT_BINS]`` (L1-normalised, zeros when unknown)
    of each person's clothes: the box from their shoulders to their ankles (the body box
    without the head when those points are missing), shrunk to its middle 60 % across.

    ``image`` ``uint8 [H, W, 3]`` RGB; ``keypoints`` ``[P, K, 2]`` px, ``scores`` ``[P, K]``."""
    import cv2

    h, w = image.shape[:2]
    out = np.zeros((len(scores), HUE_BINS * SAT_BINS), np.float32)
    for p in range(len(scores)):
        present = scores[p, :17] > min_score
        body = present.copy()
        body[:5] = False  # clothes, not face and hair
        use = body if body.sum() >= 2 else present
        if use.sum() < 2:
            continue
        (x0, y0), (x1, y1) = keypoints[p, :17][use].min(0), keypoints[p, :17][use].max(0)
        margin = 0.2 * (x1 - x0)
        x0, x1 = x0 + margin, x1 - margin
        if x1 - x0 < 4:  # side view: a narrow box, widen it about its middle
            cx = (x0 + x1) / 2
            x0, x1 = cx - 0.1 * (y1 - y0), cx + 0.1 * (y1 - y0)
        x0, y0 = int(np.clip(x0, 0, w - 1)), int(np.clip(y0, 0, h - 1))
        x1, y1 = int(np.clip(np.ceil(x1), x0 + 1, w)), int(np.clip(np.ceil(y1), y0 + 1, h))
        # Only the box is converted (per pixel, so the same values): a whole 1280x720 frame
        # costs more than four people's clothes.
        hsv = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
        if hist.sum() > 0:
            out[p] = hist / hist.sum()
    return out


def appearance_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient of histograms ``[..., D]`` (broadcasting), in [0, 1]; NaN where one is unknown."""
    known = (a.sum(-1) > 0) & (b.sum(-1) > 0)
    return np.where(known, np.sqrt(np.maximum(a, 0) * np.maximum(b, 0)).sum(-1), np.nan)


REID_SECONDS = 2.0  # default: a person lost for up to this long gets their id back
CONFIRM_FRAMES = 3  # a track seen in fewer frames, always on someone lasting, is dropped (SORT's n_init)


def track_people(seq: PoseSequence, *, appearance: np.ndarray | None = None,
                 reid_seconds: float = REID_SECONDS) -> PoseSequence:
    """The three passes (see the module docstring): online matching, the global merge of
    tracklets (a person lost for up to ``reid_seconds`` can be re-identified), then
    confirmation."""
    reach = max(1, int(round(reid_seconds * seq.fps)))
    online = assign_track_ids(seq, max_age=reach, appearance=appearance)
    return without_flickers(merge_tracklets(online, max_gap=reach, appearance=appearance))


def video_appearance(seq: PoseSequence, video) -> np.ndarray:
    """``[T, P, D]`` :func:`appearance_descriptors` of every person of ``seq`` in the frames of
    ``video`` (read one at a time, resized to the sequence's canvas)."""
    import cv2

    from holdpose.io.video import FrameSource

    source = FrameSource(video, stop=seq.num_frames)
    out = np.zeros((seq.num_frames, seq.num_people, HUE_BINS * SAT_BINS), np.float32)
    for t, frame in enumerate(source):
        if frame.shape[1::-1] != tuple(seq.size):
            frame = cv2.resize(frame, seq.size, interpolation=cv2.INTER_AREA)
        out[t] = appearance_descriptors(frame, seq.keypoints[t], seq.scores[t])
    return out


def assign_track_ids(seq: PoseSequence, *, max_age: int = 30, min_similarity: float = 0.2,
                     appearance: np.ndarray | None = None) -> PoseSequence:
    """Return a copy of ``seq`` whose ``track_ids`` follow each person across frames.

    A track is predicted from its last two sightings (constant velocity over the gap) and
    matched to the frame's detections by :func:`pose_similarity` with an optimal assignment;
    it survives ``max_age`` frames unseen, so a person hidden for a moment gets their id back.
    The common case, one person seen in consecutive frames, is scored for all frames at once.
    Slots with no present point get id -1. Ids are 0, 1, 2, ... in order of first appearance.
    ``appearance``: ``[T, P, D]`` histograms (:func:`appearance_descriptors`), blended into the
    similarity when given; each track keeps a running mean of its own.
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
    looks: dict[int, np.ndarray] = {}  # track id -> running mean histogram
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
                _update_look(looks, track[0], appearance, t, slots[0])
                continue
        match = {}
        if tracks:
            from scipy.optimize import linear_sum_assignment

            predicted_kp, predicted_sc = _predict(keypoints, scores, tracks, t)
            similarity = pose_similarity(predicted_kp[:, None], predicted_sc[:, None],
                                         keypoints[t, slots][None], scores[t, slots][None])
            if appearance is not None:
                similarity = _with_appearance(similarity, looks, tracks, appearance[t, slots])
            rows, cols = linear_sum_assignment(-similarity)
            match = {int(c): tracks[r] for r, c in zip(rows, cols) if similarity[r, c] >= min_similarity}
        crowded = _overlapping(keypoints[t, slots], scores[t, slots])
        for j, slot in enumerate(slots):
            track = match.get(j)
            if track is None:
                track = [next_id, t, slot, -1, -1]
                next_id += 1
                tracks.append(track)
            else:
                track[1:] = [t, slot, track[1], track[2]]
            out.track_ids[t, slot] = track[0]
            if not crowded[j]:  # a look taken while someone overlaps mixes two people's clothes
                _update_look(looks, track[0], appearance, t, slot)
    return out


def _overlapping(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3, limit: float = 0.1) -> np.ndarray:
    """bool ``[N]``: whose body box overlaps another's by more than ``limit`` of its own area."""
    boxes = _boxes(keypoints, scores > min_score)  # [N, 4]
    share = _share_inside(boxes, boxes)
    np.fill_diagonal(share, 0)
    return (share > limit).any(1)


def without_flickers(seq: PoseSequence, *, min_frames: int = CONFIRM_FRAMES, min_score: float = 0.3,
                     cover: float = 0.5) -> PoseSequence:
    """A copy of ``seq`` less the tracks seen in fewer than ``min_frames`` frames whose body box
    lies, by more than ``cover`` of its area, inside the box of someone seen in ``min_frames``
    frames or more, in every frame it has; ids renumbered 0, 1, ... .

    People do not appear on top of someone else for a frame or two and vanish: such a brief
    skeleton is the landmark model's mix of two people standing close (one's head and side,
    the other's limbs) or of one person found twice, and would take the place of the person
    it lies on for whoever compares boxes. Multi-object trackers confirm a new track only
    after several frames for the same reason (SORT and DeepSORT: ``n_init`` = 3). Someone
    seen briefly on their own (walking past the frame's edge) is kept, and so is everyone in
    a sequence where nobody lasts (a still image).
    """
    out = seq.copy()
    ids, counts = np.unique(seq.track_ids[seq.track_ids >= 0], return_counts=True)
    lasting = np.isin(seq.track_ids, ids[counts >= min_frames])  # [T, P]
    boxes = _boxes(seq.keypoints[..., :17, :], seq.scores[..., :17] > min_score)  # [T, P, 4]
    for track_id in ids[counts < min_frames]:
        frames, slots = np.nonzero(seq.track_ids == track_id)
        if all((_share_inside(boxes[t, slot][None], boxes[t][lasting[t]]) > cover).any()
               for t, slot in zip(frames, slots)):
            out.scores[frames, slots] = 0
            out.track_ids[frames, slots] = -1
    return _renumber(out)


def _share_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]``: the share of each box of ``a [N, 4]`` (x0, y0, x1, y1) that lies inside each of ``b [M, 4]``."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-6)
    return ix * iy / area[:, None]


def merge_tracklets(seq: PoseSequence, *, max_gap: int, appearance: np.ndarray | None = None,
                    min_appearance: float = 0.7, min_score: float = 0.3) -> PoseSequence:
    """Join tracklets of the same person that the online pass split (a long occlusion, a
    missed stretch); a copy of ``seq`` with ids 0, 1, ... in order of first appearance.

    Tracklet B continues tracklet A when they never share a frame, B starts 1 to
    ``max_gap`` frames after A ends, B's first body box is within one body height
    (plus one per second of gap) of where A was heading, their heights differ by less
    than 1.5x, and, with ``appearance`` ``[T, P, D]``, their mean looks have a
    Bhattacharyya coefficient of at least ``min_appearance``. Best-scoring pairs join
    first; each tracklet gets at most one successor and one predecessor.
    """
    out = seq.copy()
    ids = [int(i) for i in np.unique(seq.track_ids[seq.track_ids >= 0])]
    if len(ids) < 2:
        return _renumber(out)
    info = {i: _tracklet_summary(seq, i, appearance, min_score) for i in ids}
    candidates = []
    for a in ids:
        for b in ids:
            score = _continuation_score(info[a], info[b], max_gap, seq.fps, min_appearance)
            if score is not None:
                candidates.append((score, a, b))
    successor, predecessor = {}, {}
    for _, a, b in sorted(candidates, reverse=True):
        if a in successor or b in predecessor or _chain_head(predecessor, a) == b:
            continue
        # the chain that ends in a must not share a frame with b
        frames_a = set().union(*(info[i]["frames"] for i in _chain(predecessor, a)))
        if frames_a & info[b]["frames"]:
            continue
        successor[a], predecessor[b] = b, a
    for b in ids:
        out.track_ids[seq.track_ids == b] = _chain_head(predecessor, b)
    return _renumber(out)


def _tracklet_summary(seq: PoseSequence, track_id: int, appearance, min_score: float) -> dict:
    frames, slots = np.nonzero(seq.track_ids == track_id)
    boxes = _boxes(seq.keypoints[frames, slots, :17], seq.scores[frames, slots, :17] > min_score)  # [n, 4]
    ok = (boxes[:, 2:] > boxes[:, :2]).any(-1)
    frames_ok, boxes = frames[ok], boxes[ok]
    summary = {"frames": set(frames.tolist()), "first": int(frames.min()), "last": int(frames.max()), "boxes": len(boxes)}
    if len(boxes):
        centres, heights = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 3] - boxes[:, 1]
        tail = slice(max(0, len(boxes) - 6), None)
        span = max(frames_ok[tail][-1] - frames_ok[tail][0], 1)
        summary.update(first_centre=centres[0], last_centre=centres[-1], first_height=heights[0],
                       last_height=heights[-1], velocity=(centres[tail][-1] - centres[tail][0]) / span)
    if appearance is not None:
        looks = appearance[frames, slots]
        looks = looks[looks.sum(-1) > 0]
        summary["look"] = looks.mean(0) if len(looks) else None
    return summary


def _continuation_score(a: dict, b: dict, max_gap: int, fps: float, min_appearance: float) -> float | None:
    """How well tracklet ``b`` continues ``a`` (higher is better), or None when it cannot."""
    gap = b["first"] - a["last"]
    if not 0 < gap <= max_gap or not a["boxes"] or not b["boxes"]:
        return None
    predicted = a["last_centre"] + a["velocity"] * min(gap, MAX_EXTRAPOLATION)
    height = max(a["last_height"], 1.0)
    distance = float(np.linalg.norm(b["first_centre"] - predicted)) / height
    if distance > 1.0 + gap / fps or not 1 / 1.5 < b["first_height"] / height < 1.5:
        return None
    look = 1.0
    if a.get("look") is not None and b.get("look") is not None:
        look = float(appearance_similarity(a["look"], b["look"]))
        if look < min_appearance:
            return None
    return look - 0.3 * distance - 0.1 * gap / fps


def _chain(predecessor: dict, track_id: int) -> list[int]:
    chain = [track_id]
    while chain[-1] in predecessor:
        chain.append(predecessor[chain[-1]])
    return chain


def _chain_head(predecessor: dict, track_id: int) -> int:
    return _chain(predecessor, track_id)[-1]


def _renumber(seq: PoseSequence) -> PoseSequence:
    """Ids 0, 1, ... in order of first appearance (then slot)."""
    order = seq.track_ids[seq.track_ids >= 0]
    _, first = np.unique(order, return_index=True)
    new = {int(order[i]): n for n, i in enumerate(sorted(first))}
    seq.track_ids[:] = np.vectorize(lambda i: new.get(int(i), -1), otypes=[np.int32])(seq.track_ids)
    return seq


def _with_appearance(pose_sim: np.ndarray, looks: dict, tracks: list, detections: np.ndarray) -> np.ndarray:
    """Blend ``pose_sim`` ``[M, N]`` with the appearance similarity of the tracks' running looks
    to the detections' histograms ``[N, D]``. Where pose and box no longer overlap (a lost
    track far from everyone), only a close look counts: re-identification by appearance."""
    track_looks = np.stack([looks.get(tr[0], np.zeros(detections.shape[-1], np.float32)) for tr in tracks])
    look_sim = appearance_similarity(track_looks[:, None], detections[None])
    blended = (1 - APPEARANCE_WEIGHT) * pose_sim + APPEARANCE_WEIGHT * np.nan_to_num(look_sim, nan=0.0)
    blended = np.where(np.isnan(look_sim), pose_sim, blended)
    reid = np.where(look_sim >= REID_MIN_APPEARANCE, look_sim, 0.0)
    return np.where(pose_sim < 0.05, np.nan_to_num(reid) * APPEARANCE_WEIGHT, blended)


def _update_look(looks: dict, track_id: int, appearance: np.ndarray | None, t: int, slot: int, rate: float = 0.1):
    if appearance is None or appearance[t, slot].sum() == 0:
        return
    old = looks.get(track_id)
    looks[track_id] = appearance[t, slot].copy() if old is None else (1 - rate) * old + rate * appearance[t, slot]


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
    ahead = np.minimum(t - last[:, 0], MAX_EXTRAPOLATION)[:, None, None]
    return kp + velocity * ahead, sc


def slots_by_track(seq: PoseSequence) -> PoseSequence:
    """Reorder person slots so that slot j holds the same person (the j-th track id) in every
    frame, which the along-time refine steps (gaps, smoothing, swaps) assume.
    Frames where a person is absent get an empty slot (id -1, scores 0)."""
    ids = np.unique(seq.track_ids[seq.track_ids >= 0])
    out = PoseSequence.empty(seq.num_frames, max(len(ids), 1), layout=seq.layout, size=seq.size, fps=seq.fps)
    for j, track_id in enumerate(ids):
        frames, slots = np.nonzero(seq.track_ids == track_id)
        out.put_person(frames, j, seq, slots, track_id)
    return out
