"""Conversions between keypoint layouts, as pure array functions.

Every function takes arrays with any leading axes (``[..., K, 2]`` points and
``[..., K]`` scores) so the same code converts one person or a whole sequence.

Exact where the layouts agree (body points, hands, the 68 iBUG face points);
approximate, and said so, where they do not:
- OpenPose's neck is the mean of the shoulders, present only if both are, unless the
  sequence carries the neck its OpenPose file gave (``PoseSequence.neck``; see
  :func:`file_neck`): then that neck is drawn, moved with the shoulders.
- OpenPose's face has 70 points: iBUG 68 plus the two pupils, taken here from
  the body's eye points.
- MediaPipe has no small toe and its "foot index" stands in for the big toe;
  its 468-point face mesh is subsampled to iBUG 68 (see ``MEDIAPIPE_FACE_FOR_IBUG68``).
"""

from __future__ import annotations

import numpy as np

from holdpose.skeleton import (
    COCO_WHOLEBODY,
    MEDIAPIPE_FACE_FOR_IBUG68,
    MEDIAPIPE_POSE_FOR_COCO_BODY,
    MEDIAPIPE_POSE_FOR_FEET,
    WHOLEBODY_FOR_BODY25,
    WHOLEBODY_FOR_OPENPOSE,
)

FACE = COCO_WHOLEBODY.group("face")
LEFT_HAND = COCO_WHOLEBODY.group("left_hand")
RIGHT_HAND = COCO_WHOLEBODY.group("right_hand")
FEET = COCO_WHOLEBODY.group("feet")
LEFT_EYE, RIGHT_EYE, LEFT_SHOULDER, RIGHT_SHOULDER = 1, 2, 5, 6


def _take(points, scores, index):
    """Gather ``index`` along the K axis; index -1 gives a missing point."""
    safe = np.where(index < 0, 0, index)
    p = points[..., safe, :].copy()
    s = scores[..., safe].copy()
    s[..., index < 0] = 0
    p[..., index < 0, :] = 0
    return p, s


def wholebody_to_openpose(points: np.ndarray, scores: np.ndarray,
                          neck: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """COCO-WholeBody 133 -> OpenPose parts.

    ``neck``: ``[..., 7]`` file necks (``PoseSequence.neck``) used where present, else
    the neck is the shoulders' midpoint.
    Returns ``{"body": (p [...,18,2], s [...,18]), "face": (... 70), "left_hand": (... 21), "right_hand": (... 21)}``.
    """
    body_p, body_s = _take(points, scores, WHOLEBODY_FOR_OPENPOSE)
    both = (scores[..., LEFT_SHOULDER] > 0) & (scores[..., RIGHT_SHOULDER] > 0)
    mid = 0.5 * (points[..., LEFT_SHOULDER, :] + points[..., RIGHT_SHOULDER, :])
    body_p[..., 1, :] = np.where(both[..., None], mid, 0)
    body_s[..., 1] = np.where(both, np.minimum(scores[..., LEFT_SHOULDER], scores[..., RIGHT_SHOULDER]), 0)
    if neck is not None:
        xy, score = file_neck(neck, points, scores)
        given = score != 0
        body_p[..., 1, :] = np.where(given[..., None], xy, body_p[..., 1, :])
        body_s[..., 1] = np.where(given, np.maximum(score, 0), body_s[..., 1])

    face_p = np.concatenate([points[..., FACE, :], points[..., [RIGHT_EYE, LEFT_EYE], :]], axis=-2)
    face_s = np.concatenate([scores[..., FACE], scores[..., [RIGHT_EYE, LEFT_EYE]]], axis=-1)
    return {
        "body": (body_p, body_s),
        "face": (face_p, face_s),
        "left_hand": (points[..., LEFT_HAND, :].copy(), scores[..., LEFT_HAND].copy()),
        "right_hand": (points[..., RIGHT_HAND, :].copy(), scores[..., RIGHT_HAND].copy()),
    }


NECK_FIELDS = 7  # x, y, score, then the left and right shoulders (x, y) the neck was read with


def record_neck(neck: np.ndarray, neck_score: np.ndarray, points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """A file's neck ``[..., 2]`` (score ``[...]``, 0: the file marks it missing) as
    ``PoseSequence.neck`` ``[..., 7]``: the point, its score (-1 for missing, since 0 there
    means "no file neck, use the midpoint") and the shoulders of ``points``/``scores``
    (COCO-WholeBody) it came with."""
    out = np.zeros(np.shape(neck_score) + (NECK_FIELDS,), np.float32)
    out[..., :2] = neck
    out[..., 2] = np.where(np.asarray(neck_score) > 0, neck_score, -1)
    for i, shoulder in ((3, LEFT_SHOULDER), (5, RIGHT_SHOULDER)):
        out[..., i:i + 2] = np.where(scores[..., shoulder, None] > 0, points[..., shoulder, :], np.nan)
    return out


def file_neck(neck: np.ndarray, points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the file's neck is now: ``(xy [..., 2], score [...])`` (score 0: use the midpoint;
    -1: the file marks it missing).

    The neck is a point of the file, not of COCO-WholeBody, so it follows the shoulders:
    unchanged shoulders give the file's neck exactly; shoulders moved (aligned, smoothed,
    edited) carry it by the similarity (rotation, scale, shift) that moved them; if they
    cannot (a shoulder missing then or now), the file's neck is dropped for the midpoint.
    """
    neck = np.asarray(neck, np.float64)
    xy, score = neck[..., :2], neck[..., 2]
    old_l, old_r = neck[..., 3:5], neck[..., 5:7]
    new_l, new_r = points[..., LEFT_SHOULDER, :].astype(np.float64), points[..., RIGHT_SHOULDER, :].astype(np.float64)
    present_now = np.stack([scores[..., LEFT_SHOULDER] > 0, scores[..., RIGHT_SHOULDER] > 0], -1)
    had = ~np.isnan(np.stack([old_l[..., 0], old_r[..., 0]], -1))
    same = (had == present_now).all(-1) & np.where(had[..., 0], (old_l == new_l).all(-1), True) \
        & np.where(had[..., 1], (old_r == new_r).all(-1), True)
    # Similarity from the old shoulder pair to the new one, as complex numbers: z -> a z + b.
    old_vec = (old_l[..., 0] - old_r[..., 0]) + 1j * (old_l[..., 1] - old_r[..., 1])
    new_vec = (new_l[..., 0] - new_r[..., 0]) + 1j * (new_l[..., 1] - new_r[..., 1])
    movable = had.all(-1) & present_now.all(-1) & (np.abs(np.nan_to_num(old_vec)) > 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(movable, new_vec / np.where(movable, old_vec, 1), 1)
        # Shoulders that turned more than 90 degrees were swapped (left/right repair), not
        # turned: the same pair read the other way round, so the neck stays on its side.
        a = np.where(a.real < 0, -a, a)
        old_mid = 0.5 * ((old_l[..., 0] + old_r[..., 0]) + 1j * (old_l[..., 1] + old_r[..., 1]))
        new_mid = 0.5 * ((new_l[..., 0] + new_r[..., 0]) + 1j * (new_l[..., 1] + new_r[..., 1]))
        moved = a * ((xy[..., 0] + 1j * xy[..., 1]) - old_mid) + new_mid
    moved_xy = np.stack([moved.real, moved.imag], -1)
    out_xy = np.where(same[..., None], xy, np.where(movable[..., None], moved_xy, 0))
    out_score = np.where(same | movable, score, 0)
    return out_xy.astype(np.float32), out_score.astype(np.float32)


def openpose_to_wholebody(body, body_scores, face=None, face_scores=None, left_hand=None, left_hand_scores=None,
                          right_hand=None, right_hand_scores=None) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose parts -> COCO-WholeBody 133 ``(points [...,133,2], scores [...,133])``.

    ``body`` may have 18 points (COCO-18 order) or 25 (BODY_25, which brings the feet).
    The neck and mid-hip are derived points and are dropped; parts given as None are missing.
    """
    body = np.asarray(body, np.float32)
    body_scores = np.asarray(body_scores, np.float32)
    lead = body.shape[:-2]
    points = np.zeros(lead + (133, 2), np.float32)
    scores = np.zeros(lead + (133,), np.float32)
    mapping = {18: WHOLEBODY_FOR_OPENPOSE, 25: WHOLEBODY_FOR_BODY25}.get(body.shape[-2])
    if mapping is None:
        raise ValueError(f"OpenPose body must have 18 or 25 points, got {body.shape[-2]}")
    keep = mapping >= 0
    points[..., mapping[keep], :] = body[..., keep, :]
    scores[..., mapping[keep]] = body_scores[..., keep]
    for part, p, s in (("face", face, face_scores), ("left_hand", left_hand, left_hand_scores),
                       ("right_hand", right_hand, right_hand_scores)):
        if p is None:
            continue
        part_slice = COCO_WHOLEBODY.group(part)
        n = part_slice.stop - part_slice.start
        points[..., part_slice, :] = np.asarray(p, np.float32)[..., :n, :]
        scores[..., part_slice] = np.asarray(s, np.float32)[..., :n]
    return points, scores


def mediapipe_to_wholebody(pose=None, pose_scores=None, left_hand=None, right_hand=None, face=None,
                           hand_score: float = 1.0, face_score: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe holistic landmarks (pixels) -> COCO-WholeBody 133.

    Args:
        pose: ``[..., 33, 2]`` pose landmarks, with ``pose_scores`` ``[..., 33]`` (visibility).
        left_hand, right_hand: ``[..., 21, 2]`` (the subject's own left and right), or None.
        face: ``[..., 468, 2]`` face mesh (or 478 with iris refinement), or None.
        hand_score, face_score: score given to every point of a detected hand / face,
            since MediaPipe gives those landmarks no per-point confidence.
    """
    lead = next(np.shape(a)[:-2] for a in (pose, left_hand, right_hand, face) if a is not None)
    points = np.zeros(lead + (133, 2), np.float32)
    scores = np.zeros(lead + (133,), np.float32)
    if pose is not None:
        points[..., :17, :] = pose[..., MEDIAPIPE_POSE_FOR_COCO_BODY, :]
        scores[..., :17] = pose_scores[..., MEDIAPIPE_POSE_FOR_COCO_BODY]
        feet_p, feet_s = _take(np.asarray(pose), np.asarray(pose_scores), MEDIAPIPE_POSE_FOR_FEET)
        points[..., FEET, :] = feet_p
        scores[..., FEET] = feet_s
    if face is not None:
        points[..., FACE, :] = face[..., MEDIAPIPE_FACE_FOR_IBUG68, :]
        scores[..., FACE] = face_score
    if left_hand is not None:
        points[..., LEFT_HAND, :] = left_hand
        scores[..., LEFT_HAND] = hand_score
    if right_hand is not None:
        points[..., RIGHT_HAND, :] = right_hand
        scores[..., RIGHT_HAND] = hand_score
    return points, scores
