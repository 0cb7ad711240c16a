"""Retarget a driving pose sequence to a reference character's body.

The driving performer and the character differ in bone lengths, size and placement;
fed as is, the pose maps ask the model to stretch the character. Alignment keeps the
driving motion (bone directions, and root motion) and gives it the character's body:

1. Typical bone lengths of the driver are measured over *all* frames (a high
   percentile of the 2-D length, since foreshortening only ever shortens a bone),
   not in one frame as MusePose does, so a bad or missing joint in one frame cannot
   poison the ratios.
2. Each bone gets the ratio ``reference length / typical driving length``; a bone the
   reference lacks (legs of a head-and-shoulders photo) takes the body ratio: the median over
   the torso bones, or, when the reference or the driver lacks the spine (a photo cut at the
   chest, a waist-up driver), the larger of that and the median over the long bones near the
   body that both show (shoulders, head, upper arms, thighs), so shoulders foreshortened by a
   turn cannot set the scale alone.
3. Each frame is rebuilt outward from the root (mid-hip, or the neck when the hips
   are rarely seen) along the kinematic tree: ``child = parent + direction * length``.
   By default ``length`` is the driving length times the bone's ratio, so
   foreshortening carries over; ``orientation_only=True`` uses the reference length
   as is (only the bone directions of the driver are kept, as Animated Drawings does).
4. The root starts where the reference's root is and moves by the driver's root
   motion scaled by the body ratio, so the character walks as far as its size says.
Hands and face are part of the tree (each face point hangs from the nose), so they
follow too. A joint missing in a frame stays missing; its children hang from the
nearest present ancestor.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY, HAND_EDGES

logger = logging.getLogger(__name__)

PELVIS, NECK = 133, 134  # virtual joints appended after the 133 COCO-WholeBody points
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 0, 5, 6, 11, 12
BODY_BONES = (  # undirected; the tree is rooted at run time
    (PELVIS, LEFT_HIP), (PELVIS, RIGHT_HIP), (PELVIS, NECK), (NECK, LEFT_SHOULDER), (NECK, RIGHT_SHOULDER),
    (NECK, NOSE), (0, 1), (0, 2), (1, 3), (2, 4),
    (5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16),
    (15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22),
)
TORSO_BONES = ((PELVIS, NECK), (NECK, LEFT_SHOULDER), (NECK, RIGHT_SHOULDER), (PELVIS, LEFT_HIP), (PELVIS, RIGHT_HIP))
# the body's scale when the spine is not shared: long bones near the body, seldom foreshortened all at once
SCALE_BONES = TORSO_BONES + ((NECK, NOSE), (5, 7), (6, 8), (11, 13), (12, 14))
ALL_BONES = (
    BODY_BONES
    + ((9, 91), (10, 112))
    + tuple((91 + a, 91 + b) for a, b in HAND_EDGES)
    + tuple((112 + a, 112 + b) for a, b in HAND_EDGES)
    + tuple((NOSE, 23 + i) for i in range(68))
)
NUM_JOINTS = 135
LENGTH_PERCENTILE = 90


def with_virtual_joints(points: np.ndarray, scores: np.ndarray, min_score: float = 0.0):
    """Append the pelvis (mid-hip) and neck (mid-shoulder): ``[..., 133, 2] -> [..., 135, 2]``.

    A virtual joint is present when both of its points are (score = the smaller score)."""
    out_p = np.concatenate([points, np.zeros(points.shape[:-2] + (2, 2), points.dtype)], axis=-2)
    out_s = np.concatenate([scores, np.zeros(scores.shape[:-1] + (2,), scores.dtype)], axis=-1)
    for joint, (a, b) in ((PELVIS, (LEFT_HIP, RIGHT_HIP)), (NECK, (LEFT_SHOULDER, RIGHT_SHOULDER))):
        both = (scores[..., a] > min_score) & (scores[..., b] > min_score)
        out_p[..., joint, :] = np.where(both[..., None], (points[..., a, :] + points[..., b, :]) / 2, 0)
        out_s[..., joint] = np.where(both, np.minimum(scores[..., a], scores[..., b]), 0)
    return out_p, out_s


def bone_lengths(points: np.ndarray, present: np.ndarray, bones=ALL_BONES) -> np.ndarray:
    """Length of each bone ``[..., B]`` in pixels; NaN where an end is missing."""
    a = np.array([b[0] for b in bones])
    b = np.array([b[1] for b in bones])
    length = np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1)
    return np.where(present[..., a] & present[..., b], length, np.nan)


def rooted_tree(root: int, bones=ALL_BONES) -> list[tuple[int, int, int]]:
    """Breadth-first ``(parent, child, bone index)`` edges of the bone graph from ``root``."""
    neighbours: dict[int, list[tuple[int, int]]] = {}
    for index, (a, b) in enumerate(bones):
        neighbours.setdefault(a, []).append((b, index))
        neighbours.setdefault(b, []).append((a, index))
    order, seen, queue = [], {root}, deque([root])
    while queue:
        parent = queue.popleft()
        for child, index in neighbours.get(parent, []):
            if child not in seen:
                seen.add(child)
                order.append((parent, child, index))
                queue.append(child)
    return order


@dataclass
class Alignment:
    """What :func:`align_to_reference` measured, for reports and tests."""

    ratios: np.ndarray  # [B] reference length / typical driving length per bone
    body_ratio: float  # median ratio over the torso bones: how much bigger the character is
    root: int  # joint the rebuild starts from (PELVIS or NECK)


def align_to_reference(driving: PoseSequence, reference_keypoints: np.ndarray, reference_scores: np.ndarray, *,
                       orientation_only: bool = False, min_score: float = 0.3,
                       reference_size: tuple[int, int] | None = None,
                       main: int | None = None) -> tuple[PoseSequence, Alignment]:
    """Give ``driving``'s motion the reference character's body (see the module docstring).

    Several people (one per track id, whatever slot they sit in): the main person (default:
    the one with the most body points seen) becomes the character, placed where the reference stands. Every other
    person gets the character's proportions at the main person's scale, about their own
    root: their first root position is mapped onto the output canvas as the frame is
    (uniform scale, centred), so they stay where they were in the picture instead of
    being carried off it by the main person's scale and offset. Root motion is scaled by
    the body ratio, less (one factor per person, logged) if that would take their root
    off the output canvas: a wide walk on a portrait reference stays in the picture.

    Args:
        driving: the sequence to retarget (every person slot is retargeted to the same reference).
        reference_keypoints, reference_scores: the character's pose ``[133, 2]``, ``[133]``, in
            pixels of the reference image.
        orientation_only: keep only bone directions; every bone gets the reference length.
        min_score: points at or below this score count as missing when measuring.
        reference_size: (width, height) of the reference image; the output sequence uses
            this canvas (default: the driving canvas).
        main: the index, in order of track id, of the person who becomes the character
            (see above).

    Returns:
        The aligned sequence (canvas ``reference_size``) and the measured :class:`Alignment`.
    """
    if driving.layout is not COCO_WHOLEBODY:
        raise HoldposeError(f"alignment works on coco_wholebody sequences, got {driving.layout.name}")
    ref_p, ref_s = with_virtual_joints(np.asarray(reference_keypoints, np.float32),
                                       np.asarray(reference_scores, np.float32), min_score)
    ref_present = ref_s > min_score
    if ref_present[:17].sum() < 3 or not (ref_present[NECK] or ref_present[PELVIS]):
        raise HoldposeError("the reference pose needs at least its shoulders or hips and one more body point; "
                            "use a photo where the character's upper body is visible")
    out = driving.copy()
    if reference_size is not None:
        out.size = tuple(int(v) for v in reference_size)
    people = _people_masks(driving)
    if not people:
        raise HoldposeError("the driving sequence has nobody in it")
    # Gather each person's frames into one track [T, 133, ...] (a person may change slot).
    frames = np.arange(driving.num_frames)
    tracks = []
    for mask in people:
        slots = mask.argmax(1)
        present = mask.any(1)
        tracks.append((mask, slots, np.where(present[:, None, None], driving.keypoints[frames, slots], 0),
                       np.where(present[:, None], driving.scores[frames, slots], 0)))
    seen = [int((sc[:, :17] > min_score).sum()) for _, _, _, sc in tracks]
    main = int(np.argmax(seen)) if main is None else main
    order = [main] + [i for i in range(len(tracks)) if i != main]
    frame_scale, frame_shift = _canvas_map(driving.size, out.size)
    alignment = None
    for i in order:
        mask, slots, points, scores = tracks[i]
        options = {"canvas": out.size} if alignment is None else dict(
            scale=alignment.body_ratio, place=lambda anchor: anchor * frame_scale + frame_shift, canvas=out.size)
        present = mask.any(1)
        try:
            kp, sc, found = _align_person(points, scores, ref_p, ref_s, ref_present, orientation_only, min_score,
                                          **options)
        except HoldposeError as err:
            if alignment is None:
                raise
            # someone never seen well enough to rebuild (no shoulders or hips): left out, and said so
            logger.warning("align: person %s left out (%s)", driving.track_ids[present.argmax(), slots[present.argmax()]],
                           err)
            out.scores[frames[present], slots[present]] = 0
            out.track_ids[frames[present], slots[present]] = -1
            continue
        alignment = alignment or found
        out.keypoints[frames[present], slots[present]] = kp[present]
        out.scores[frames[present], slots[present]] = sc[present]
    return out, alignment


def _people_masks(seq: PoseSequence) -> list[np.ndarray]:
    """bool ``[T, P]`` per person: each track id, and each slot's frames that have points but no id."""
    occupied = (seq.scores > 0).any(-1)
    masks = [occupied & (seq.track_ids == i) for i in np.unique(seq.track_ids[occupied & (seq.track_ids >= 0)])]
    loose = occupied & (seq.track_ids < 0)
    masks += [loose & (np.arange(seq.num_people) == p) for p in np.flatnonzero(loose.any(0))]
    return masks


def _canvas_map(source: tuple[int, int], target: tuple[int, int]) -> tuple[float, np.ndarray]:
    """Scale and shift that fit the ``source`` canvas inside ``target`` (uniform, centred)."""
    scale = min(target[0] / source[0], target[1] / source[1])
    shift = (np.array(target, np.float64) - scale * np.array(source, np.float64)) / 2
    return scale, shift


def _fitting_scale(origin: np.ndarray, offsets: np.ndarray, canvas: tuple[int, int]) -> float:
    """The largest s >= 0 with ``origin + s * offsets`` ``[N, 2]`` inside the canvas (inf if any s is)."""
    origin = np.clip(origin, 0, canvas)
    room = np.where(offsets > 0, np.array(canvas) - origin, origin)  # [N, 2] distance to the edge it heads for
    with np.errstate(divide="ignore", invalid="ignore"):
        limits = np.where(np.abs(offsets) > 1e-9, room / np.abs(offsets), np.inf)
    return float(limits.min()) if limits.size else np.inf


def _align_person(points, scores, ref_p, ref_s, ref_present, orientation_only, min_score, *, scale=None, place=None,
                  canvas=None):
    """Retarget one person ``[T, 133, 2]`` to the reference; see :func:`align_to_reference`.
    ``scale``: the body ratio to use (default: this person's own, which gives them the
    character's size); ``place(anchor [2]) -> [2]``: where their first root position goes
    (default: the reference's root); ``canvas`` (width, height): the root motion is scaled
    less than the body where that is needed to keep the root on it."""
    drv_p, drv_s = with_virtual_joints(points.astype(np.float64), scores, min_score)
    drv_present = drv_s > min_score
    driving_lengths = bone_lengths(drv_p, drv_present)  # [T, B]
    with np.errstate(all="ignore"):
        typical = _nan_percentile(driving_lengths, LENGTH_PERCENTILE)  # [B]
        ratios = bone_lengths(ref_p, ref_present) / typical
    body_ratio = _body_ratio(ratios)
    ratios = np.where(np.isfinite(ratios), ratios, body_ratio)
    if scale is not None:  # the character's proportions at another overall scale
        ratios, body_ratio = ratios * (scale / body_ratio), scale

    # The root is the pelvis when the driver's hips are usually seen, else the neck.
    root = PELVIS if drv_present[:, PELVIS].mean() >= 0.5 and ref_present[PELVIS] else NECK
    if not ref_present[root]:
        root = PELVIS if ref_present[PELVIS] else NECK
    anchor_frames = np.flatnonzero(drv_present[:, root])
    if len(anchor_frames) == 0:
        raise HoldposeError("the driving sequence never shows the shoulders or hips; cannot place the character")
    anchor = drv_p[anchor_frames[0], root]
    origin = ref_p[root] if place is None else place(anchor)
    motion_scale = body_ratio
    if canvas is not None:  # root motion scaled by the body, unless that walks the person off the canvas
        motion_scale = min(body_ratio, _fitting_scale(origin, drv_p[anchor_frames, root] - anchor, canvas))
        if motion_scale < body_ratio:
            logger.warning("align: root motion scaled %.3g times instead of the body's %.3g, so the person stays "
                           "on the %dx%d canvas", motion_scale, body_ratio, *canvas)

    num_frames = len(points)
    frames = np.arange(num_frames)

    def scaled(joint):  # where a joint lands when nothing above it is placed: scaled root motion
        return origin + motion_scale * (drv_p[:, joint] - anchor)

    out = np.zeros((num_frames, NUM_JOINTS, 2), np.float64)
    placed = np.zeros((num_frames, NUM_JOINTS), bool)
    hang_from = np.full((num_frames, NUM_JOINTS), -1)  # nearest placed joint on the path to the root
    out[:, root] = scaled(root)
    placed[:, root] = drv_present[:, root]
    hang_from[:, root] = np.where(placed[:, root], root, -1)
    for parent, child, bone in rooted_tree(root):
        ancestor = np.where(placed[:, parent], parent, hang_from[:, parent])  # [T], -1: none placed
        safe = np.maximum(ancestor, 0)
        offset = drv_p[:, child] - drv_p[frames, safe]
        length = np.linalg.norm(offset, axis=-1)
        direction = offset / np.maximum(length, 1e-6)[:, None]
        if orientation_only:  # the reference's own length (typical * ratio is exactly that)
            direct_length = np.full(num_frames, typical[bone] * ratios[bone])
        else:  # the driver's length, foreshortening included, in the character's proportions
            direct_length = length * ratios[bone]
        # A child whose parent is missing hangs from a further ancestor at the body ratio.
        target = np.where(ancestor == parent, direct_length, length * body_ratio)
        hung = out[frames, safe] + direction * target[:, None]
        out[:, child] = np.where((ancestor >= 0)[:, None], hung, scaled(child))
        placed[:, child] = drv_present[:, child]
        hang_from[:, child] = np.where(placed[:, child], child, ancestor)
    result = np.where(placed[:, :133, None], out[:, :133], 0).astype(np.float32)
    result_scores = np.where(placed[:, :133], scores, 0).astype(np.float32)
    return result, result_scores, Alignment(ratios=ratios, body_ratio=body_ratio, root=root)


def _body_ratio(ratios: np.ndarray) -> float:
    """How much bigger the character is than the driver, from the per-bone ``ratios [B]`` (NaN: a
    bone the reference or the driver lacks): the median over the torso bones when both show the
    spine (neck to mid-hip). Else the torso shares at most the shoulders' halves (a photo cut at
    the chest, a driver seen from the waist up), which a character turned three quarters to the
    camera shows at half their length: alone they would shrink the target, and the puppet with
    it, to a fraction of the character. Then the larger of that median and the median over the
    long bones near the body both show (:data:`SCALE_BONES`: shoulders, head, upper arms, hips,
    thighs); a photo only ever shortens a bone, so the larger estimate is the nearer."""
    torso = [ALL_BONES.index(b) for b in TORSO_BONES]
    if np.isfinite(ratios[ALL_BONES.index((PELVIS, NECK))]):
        return float(np.nanmedian(ratios[torso]))
    estimates = [float(np.nanmedian(ratios[bones])) for bones in (torso, [ALL_BONES.index(b) for b in SCALE_BONES])
                 if np.isfinite(ratios[bones]).any()]
    if estimates:
        return max(estimates)
    if np.isfinite(ratios[:len(BODY_BONES)]).any():
        return float(np.nanmedian(ratios[:len(BODY_BONES)]))
    raise HoldposeError("the reference and the driving poses share no body bone; cannot measure proportions")


def _nan_percentile(values: np.ndarray, q: float) -> np.ndarray:
    """Per-column percentile ignoring NaN; NaN for all-NaN columns (without warnings)."""
    out = np.full(values.shape[1], np.nan)
    has = np.isfinite(values).any(0)
    if has.any():
        out[has] = np.nanpercentile(values[:, has], q, axis=0)
    return out


# --- PoseCrafter: which training frame is nearest the target poses -----------------


def normalised_body(points: np.ndarray, scores: np.ndarray, min_score: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Body points ``[..., 17, 2]`` centred on their mean and divided by their RMS radius,
    so poses compare regardless of position and size; and their presence ``[..., 17]``."""
    body = points[..., :17, :].astype(np.float64)
    present = scores[..., :17] > min_score
    count = np.maximum(present.sum(-1, keepdims=True), 1)
    center = (body * present[..., None]).sum(-2, keepdims=True) / count[..., None]
    centred = (body - center) * present[..., None]
    radius = np.sqrt((centred ** 2).sum((-1, -2), keepdims=True) / count[..., None])
    return centred / np.maximum(radius, 1e-6), present


def pose_distances(training: PoseSequence, target: PoseSequence, person: int = 0) -> np.ndarray:
    """``[T_train, T_target]`` mean L2 distance between normalised body poses over shared points
    (inf where they share fewer than 3 points)."""
    a, a_present = normalised_body(training.keypoints[:, person], training.scores[:, person])
    b, b_present = normalised_body(target.keypoints[:, person], target.scores[:, person])
    shared = a_present[:, None] & b_present[None]  # [Ta, Tb, 17]
    dist = np.linalg.norm(a[:, None] - b[None], axis=-1)
    count = shared.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (dist * shared).sum(-1) / count
    return np.where(count >= 3, mean, np.inf)


REFERENCE_METRICS = ("paper", "normalized")


def paper_pose_distances(training: PoseSequence, target: PoseSequence, person: int = 0) -> np.ndarray:
    """``[T_train, T_target]`` Euclidean norm ``‖p_i − p̂_j‖₂`` of the whole keypoint vectors in
    pixels, over the keypoints present in both poses (PoseCrafter Eq. 5); inf where none is."""
    a, b = training.keypoints[:, person].astype(np.float64), target.keypoints[:, person].astype(np.float64)
    shared = (training.scores[:, person] > 0)[:, None] & (target.scores[:, person] > 0)[None]  # [Ta, Tb, K]
    squared = ((a[:, None] - b[None]) ** 2).sum(-1)  # [Ta, Tb, K]
    dist = np.sqrt(np.where(shared, squared, 0.0).sum(-1))
    return np.where(shared.any(-1), dist, np.inf)


def select_reference_frame(training: PoseSequence, target: PoseSequence, person: int = 0, *,
                           metric: str = "normalized") -> tuple[int, np.ndarray]:
    """PoseCrafter's reference-frame choice: the training frame whose pose is nearest the target
    poses over the whole target sequence; ties go to the lowest index.

    ``metric="paper"``: Eq. 5, ``argmin_i Σ_j ‖p_i − p̂_j‖₂`` on raw pixel coordinates of all the
    keypoints present in both (:func:`paper_pose_distances`). ``"normalized"``: the mean L2
    distance between position- and size-normalised body poses (:func:`pose_distances`), which
    does not prefer training frames merely for standing where the targets stand.

    Returns the frame index and the per-training-frame score ``[T_train]`` (inf: not comparable)."""
    if metric not in REFERENCE_METRICS:
        raise HoldposeError(f"reference metric {metric!r} is unknown; choose one of {', '.join(REFERENCE_METRICS)}")
    dist = (paper_pose_distances if metric == "paper" else pose_distances)(training, target, person)
    finite = np.where(np.isfinite(dist), dist, np.nan)
    with np.errstate(all="ignore"):
        score = np.nansum(finite, axis=1) if metric == "paper" else np.nanmean(finite, axis=1)
    score = np.where(np.isfinite(finite).any(1), score, np.inf)
    if not np.isfinite(score).any():
        raise HoldposeError("no training frame shares enough keypoints with the target poses")
    return int(np.argmin(score)), score


def video_sim(training: PoseSequence, target: PoseSequence, person: int = 0) -> float:
    """Video-SIM (PoseCrafter): sum over target frames of the distance to the nearest training pose
    (lower is more similar). Target frames with no comparable training pose are skipped."""
    nearest = pose_distances(training, target, person).min(axis=0)
    return float(nearest[np.isfinite(nearest)].sum())
