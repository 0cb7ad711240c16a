"""Pose adherence: does the person in the generated video hold the target pose?

As the pose-guided generation papers do (HumanSD, Ju et al., 2023; Stable-Pose, Wang et
al., 2024), a pose detector is run on the generated frames and its poses are scored
against the driving (target) poses, frame by frame, each frame being one "image":

- **OKS AP / AR**: COCO keypoint AP and AR (:func:`holdpose.evaluate.keypoints.coco_keypoint_ap`,
  identical to pycocotools) with the target people as ground truth. Their "area" is the
  area of the target person's body box (the box around its present body points), as
  HumanSD and Stable-Pose do (their ``pose_metrics.py`` uses the box of the keypoints).
  A detected person's score is the mean of its body keypoint scores.
- **CAP**: cosine-similarity AP, the same AP machinery with OKS replaced by the cosine
  similarity of the keypoint vectors (:func:`cosine_similarity_matrix`).
- **PCE**: person-count error, mean over frames of ``|#detected - #target|`` (HumanSD's
  "human number difference").
- **MSE-P**: mean squared keypoint error in px^2 over the matched people's points present
  in both the target and the detection.
- **PCK@a** for a in 0.05, 0.1, 0.2: the fraction of the target's present points that the
  matched detection places within ``a`` times the target person's height (the height of
  its body box). A missed person's points all count as wrong.

Per frame, detections are matched one-to-one to the target people by maximal total body
OKS (:func:`holdpose.evaluate.keypoints.match_people`); PCK, MSE-P, the per-frame OKS and
the per-keypoint errors follow that matching (AP does its own, COCO's, greedy matching).
Points count as present with a score above ``min_score`` (default 0.3, holdpose's
drawing threshold); a detected point below it counts as missing (never correct, OKS 0).

Per part (COCO-WholeBody groups: body 0-16, feet 17-22, face 23-90, hands 91-132): the
same metrics on that part's points (CAP only for the body, as the papers report it), with COCO-WholeBody's per-keypoint sigmas
(:data:`holdpose.evaluate.keypoints.COCO_WHOLEBODY_SIGMAS`) and the same person areas,
heights and matching. A target person with no present point in a part is ignored for that
part's AP. The headline values (``oks_ap``, ``pck@0.1``, ...) are the body's.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.evaluate.keypoints import COCO_WHOLEBODY_SIGMAS, Matching, coco_keypoint_ap, match_people, oks_matrix
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY

logger = logging.getLogger(__name__)

PARTS = {"body": (0, 17), "feet": (17, 23), "face": (23, 91), "hands": (91, 133)}
PCK_ALPHAS = (0.05, 0.1, 0.2)
DEFAULT_MIN_SCORE = 0.3
BODY = slice(0, 17)


# --- cosine similarity (CAP) ---------------------------------------------------------


def _unit_axis(values: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1], then scale to unit L2 norm (HumanSD's per-axis normalisation)."""
    span = values.max() - values.min()
    out = (values - values.min()) / (span if span > 0 else 1.0)
    norm = np.sqrt((out ** 2).sum())
    return out / norm if norm > 0 else out


def cosine_similarity_matrix(preds: np.ndarray, gts: np.ndarray, gt_visible: np.ndarray, *,
                             sigmas: np.ndarray | None = None) -> np.ndarray:
    """Pose similarity of every prediction to every ground-truth person by the cosine of
    their keypoint vectors, as HumanSD and Stable-Pose compute it for CAP.

    The definition follows ``COCOevalSimilarity.computeSimilarity`` in HumanSD
    (IDEA-Research/HumanSD ``utils/metrics/coco_similarity.py``) and Stable-Pose
    (ai-med/StablePose, same file), with its default strategy
    ``"weightedCosineSimilarity"``: over the ground truth's labelled points, the x and
    y coordinates of each pose are divided by the per-keypoint sigmas (weighted; pass
    ``sigmas=None`` for the unweighted variant), then each axis is min-max normalised
    and scaled to unit length on its own, and the similarity is the cosine of the
    concatenated ``[x..., y...]`` vectors. It ignores position and scale, and measures
    the shape of the pose, leniently: the normalised coordinates are all positive, so
    cosines stay high (a pose mirrored top to bottom still scores about 0.7 AP here);
    read CAP beside OKS AP. (HumanSD's copy has a typo, ``yd = xd / ...``, that Stable-Pose's
    fixes; this follows the fixed one.)

    holdpose's extension for missing predicted points (NaN), which MMPose's bottom-up
    models used there never produce: the cosine is taken over the points both poses
    have and multiplied by their fraction of the labelled points, so a missing point
    costs its share as it does in OKS. With fewer than two shared points the
    similarity is 0; with no labelled point, 0 (such people are ignored by AP anyway).

    Args:
        preds: ``[N, K, 2]`` pixels, NaN where missing.
        gts: ``[M, K, 2]`` pixels.
        gt_visible: bool ``[M, K]``.
        sigmas: ``[K]`` weights' sigmas, or None for plain coordinates.

    Returns:
        float64 ``[N, M]``, cosine similarity (at most 1).
    """
    preds = np.asarray(preds, np.float64)
    gts = np.asarray(gts, np.float64)
    gt_visible = np.asarray(gt_visible, bool)
    if preds.ndim != 3 or gts.ndim != 3 or preds.shape[1:] != gts.shape[1:] or preds.shape[-1] != 2:
        raise ValueError(f"preds and gts must be [N, K, 2] and [M, K, 2], got {preds.shape} and {gts.shape}")
    if gt_visible.shape != gts.shape[:2]:
        raise ValueError(f"gt_visible must have shape {gts.shape[:2]}, got {gt_visible.shape}")
    weight = np.ones(gts.shape[1]) if sigmas is None else 1.0 / np.asarray(sigmas, np.float64)
    out = np.zeros((len(preds), len(gts)))
    for j, (gt, visible) in enumerate(zip(gts, gt_visible)):
        labelled = int(visible.sum())
        if labelled == 0:
            continue
        for i, pred in enumerate(preds):
            both = visible & np.isfinite(pred).all(-1)
            if both.sum() < 2:
                continue
            g = np.concatenate([_unit_axis(gt[both, 0] * weight[both]), _unit_axis(gt[both, 1] * weight[both])])
            d = np.concatenate([_unit_axis(pred[both, 0] * weight[both]), _unit_axis(pred[both, 1] * weight[both])])
            denom = np.linalg.norm(g) * np.linalg.norm(d)
            if denom > 0:
                out[i, j] = float(g @ d / denom) * both.sum() / labelled
    return out


def cap_similarity(preds, gts, gt_visible, areas, boxes, sigmas) -> np.ndarray:
    """:func:`cosine_similarity_matrix` (weighted) in the form :func:`coco_keypoint_ap` takes."""
    return cosine_similarity_matrix(preds, gts, gt_visible, sigmas=sigmas)


# --- per-person geometry ---------------------------------------------------------------


def person_boxes(keypoints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Body boxes ``[P, 4]`` (x0, y0, x1, y1) of people ``[P, K, 2]``: the box of the present
    body points (COCO 0-16), or of all present points when fewer than two body points
    are present; NaN rows for people with no present point."""
    keypoints = np.asarray(keypoints, np.float64)
    present = np.asarray(present, bool)
    out = np.full((len(keypoints), 4), np.nan)
    for p, (kp, pr) in enumerate(zip(keypoints, present)):
        use = pr.copy()
        if use[BODY].sum() >= 2:
            use[BODY.stop:] = False
        if not use.any():
            continue
        xy = kp[use]
        out[p] = np.concatenate([xy.min(0), xy.max(0)])
    return out


def box_area_height(box: np.ndarray) -> tuple[float, float]:
    """COCO-style area (>= 1 px^2) and height (>= 1 px) of a body box."""
    w, h = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
    return float(w * h), float(h)


def match_frame(sim: np.ndarray) -> Matching:
    """:func:`match_people` (min_oks 0), without scipy when one side has at most one person:
    then the best pair is the optimal assignment (most frames of a one-person video)."""
    num_pred, num_gt = sim.shape
    if num_pred > 1 and num_gt > 1:
        return match_people(sim)
    pairs = np.zeros((0, 2), np.int64)
    if num_pred and num_gt:
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        pairs = np.array([[i, j]], np.int64)
    gt_oks = np.zeros(num_gt)
    gt_oks[pairs[:, 1]] = sim[pairs[:, 0], pairs[:, 1]]
    return Matching(pairs=pairs, gt_oks=gt_oks, missed=np.setdiff1d(np.arange(num_gt), pairs[:, 1]),
                    unmatched=np.setdiff1d(np.arange(num_pred), pairs[:, 0]))


def frame_oks(det_keypoints: np.ndarray, det_scores: np.ndarray, tgt_keypoints: np.ndarray,
              tgt_scores: np.ndarray, *, min_score: float = DEFAULT_MIN_SCORE) -> float:
    """Mean body OKS of one frame's target people after optimal matching (0 for a missed
    person); NaN when the frame has no target person. Arrays ``[P, 133, 2]`` / ``[P, 133]``."""
    tgt_present = np.asarray(tgt_scores) > min_score
    keep = tgt_present.any(-1)
    if not keep.any():
        return float("nan")
    tgt_kp, tgt_present = np.asarray(tgt_keypoints)[keep], tgt_present[keep]
    det_present = np.asarray(det_scores) > min_score
    det_keep = det_present.any(-1)
    if not det_keep.any():
        return 0.0
    det_kp = np.where(det_present[det_keep, :, None], np.asarray(det_keypoints)[det_keep], np.nan)
    areas = np.array([box_area_height(b)[0] for b in person_boxes(tgt_kp, tgt_present)])
    sim = oks_matrix(det_kp[:, BODY], tgt_kp[:, BODY], tgt_present[:, BODY], areas)
    sim = np.nan_to_num(sim, nan=0.0)  # target people with no body point
    return float(match_frame(sim).gt_oks.mean())


# --- scoring ------------------------------------------------------------------------


@dataclass
class AdherenceResult:
    """Pose adherence of a detected sequence to a target sequence.

    Attributes:
        metrics: headline metrics (body): ``oks_ap``, ``oks_ap50``, ``oks_ap75``, ``oks_ar``,
            ``cap``, ``cap_ar``, ``pce``, ``mse_p`` (px^2), ``pck@0.05``, ``pck@0.1``,
            ``pck@0.2``, ``mean_oks`` (mean per-frame OKS), ``mse_p_norm`` (MSE-P with x / width
            and y / height, PoseCrafter's scale).
        per_part: part name -> the same metrics on that part's points.
        per_frame: name -> ``[T]`` arrays: ``oks``, ``pck@a``, ``mse_p``, ``pce``,
            ``num_target``, ``num_detected`` (NaN where a frame has nothing to score).
        keypoint_error: ``[K]`` mean distance px of each keypoint over matched people
            (NaN where never scored); ``keypoint_error_rel`` the same divided by the
            target person's height; ``keypoint_count`` ``[K]`` how many.
        mean_pose: ``[K, 2]`` the target's mean pose in units of person height, centred
            on the body box (NaN where never present): where to draw the errors.
    """

    metrics: dict[str, float]
    per_part: dict[str, dict[str, float]]
    per_frame: dict[str, np.ndarray]
    keypoint_error: np.ndarray
    keypoint_error_rel: np.ndarray
    keypoint_count: np.ndarray
    mean_pose: np.ndarray
    notes: list[str] = field(default_factory=list)


def fit_target(target: PoseSequence, size: tuple[int, int], *,
               same_shape: str | None = None) -> tuple[PoseSequence, list[str]]:
    """``target`` with its keypoints scaled to a ``size`` (width, height) canvas, and notes
    on what was changed (a warning when the aspect ratios differ by more than 1 %; an error
    ending with the fix ``same_shape`` when that is given)."""
    if target.layout is not COCO_WHOLEBODY:
        raise HoldposeError(f"target poses use layout {target.layout.name}; adherence is scored on coco_wholebody")
    notes = []
    if tuple(target.size) != tuple(size):
        sx, sy = size[0] / target.size[0], size[1] / target.size[1]
        if abs(sx / sy - 1) > 0.01 and same_shape is not None:
            raise HoldposeError(f"the poses' canvas {target.size[0]}x{target.size[1]} and the video's "
                                f"{size[0]}x{size[1]} differ in shape; {same_shape}")
        if abs(sx / sy - 1) > 0.01:
            notes.append(f"target canvas {target.size[0]}x{target.size[1]} and video {size[0]}x{size[1]} differ in "
                         f"aspect ratio; target x scaled by {sx:.3f}, y by {sy:.3f}")
        target = target.copy()
        target.keypoints *= np.array([sx, sy], np.float32)
        target.size = (int(size[0]), int(size[1]))
    return target, notes


@dataclass
class _PartTally:
    """Running sums of one part's PCK hits and squared errors over matched people."""

    hits: np.ndarray  # [A] points within each alpha
    total: int = 0  # visible target points
    sq_sum: float = 0.0
    sq_count: int = 0

    def add(self, hits: np.ndarray, visible: np.ndarray, dist: np.ndarray, both: np.ndarray) -> None:
        self.hits += hits.sum(-1)
        self.total += int(visible.sum())
        self.sq_sum += float((dist[both] ** 2).sum())
        self.sq_count += int(both.sum())

    def mse(self) -> float:
        return self.sq_sum / self.sq_count if self.sq_count else float("nan")

    def pck(self) -> np.ndarray:
        return self.hits / self.total if self.total else np.full(len(self.hits), np.nan)


@dataclass
class _KeypointTally:
    """Per-keypoint running sums: error (px and in person heights) and the target's mean pose."""

    num_keypoints: int

    def __post_init__(self):
        k = self.num_keypoints
        self.err_sum, self.rel_sum, self.err_count = np.zeros(k), np.zeros(k), np.zeros(k, np.int64)
        self.pose_sum, self.pose_count = np.zeros((k, 2)), np.zeros(k, np.int64)

    def add_pose(self, keypoints: np.ndarray, present: np.ndarray, box: np.ndarray, height: float) -> None:
        rel = (keypoints - (box[:2] + box[2:]) / 2) / height  # in person heights from the box centre
        self.pose_sum[present] += rel[present]
        self.pose_count[present] += 1

    def add_errors(self, dist: np.ndarray, both: np.ndarray, height: float) -> None:
        self.err_sum[both] += dist[both]
        self.rel_sum[both] += dist[both] / height
        self.err_count[both] += 1

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(error px [K], error in heights [K], mean pose [K, 2])``, NaN where never seen."""
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.where(self.err_count > 0, self.err_sum / np.maximum(self.err_count, 1), np.nan)
            rel = np.where(self.err_count > 0, self.rel_sum / np.maximum(self.err_count, 1), np.nan)
            pose = np.where(self.pose_count[:, None] > 0, self.pose_sum / np.maximum(self.pose_count, 1)[:, None],
                            np.nan)
        return error, rel, pose


def score_adherence(detected: PoseSequence, target: PoseSequence, *, min_score: float = DEFAULT_MIN_SCORE,
                    alphas=PCK_ALPHAS, parts: dict[str, tuple[int, int]] | None = None) -> AdherenceResult:
    """Score poses detected on a generated video against the target poses (see the module docstring).

    Args:
        detected: poses re-detected on the generated frames, COCO-WholeBody.
        target: the driving poses; scaled to ``detected.size`` when the canvases differ
            (:func:`fit_target`; a target already on that canvas is used as it is).
        min_score: points with a higher score count as present.
        alphas: PCK thresholds as fractions of the target person's height.
        parts: part name -> (start, stop) keypoint range (default :data:`PARTS`).
    """
    # 1. Check and align inputs.
    parts = dict(PARTS if parts is None else parts)
    if "body" not in parts:
        raise ValueError("parts must include 'body' (people are matched by their body points)")
    if detected.layout is not COCO_WHOLEBODY:
        raise HoldposeError(f"detected poses use layout {detected.layout.name}; adherence is scored on coco_wholebody")
    notes = []
    if tuple(target.size) != tuple(detected.size):
        target, notes = fit_target(target, detected.size)
    if detected.num_frames != target.num_frames:
        notes.append(f"the video has {detected.num_frames} frames and the target {target.num_frames}; "
                     f"the first {min(detected.num_frames, target.num_frames)} are scored")
    num_frames = min(detected.num_frames, target.num_frames)
    det_present_all = (detected.scores > min_score) & (detected.track_ids >= 0)[..., None]
    tgt_present_all = (target.scores > min_score) & (target.track_ids >= 0)[..., None]

    # 2. Per frame: ground truth and predictions as COCO records, matching, distances.
    images = [{"id": t} for t in range(num_frames)]
    annotations = {name: [] for name in parts}
    predictions = {name: [] for name in parts}
    per_frame = {key: np.full(num_frames, np.nan) for key in
                 ["oks", "mse_p", "pce", "num_target", "num_detected"] + [f"pck@{a:g}" for a in alphas]}
    tallies = {name: _PartTally(np.zeros(len(alphas))) for name in parts}
    keypoint_tally = _KeypointTally(detected.num_keypoints)
    canvas = np.array(detected.size, np.float64)  # (W, H): MSE-P on normalised coordinates
    norm_sq_sum, norm_count = 0.0, 0
    for t in range(num_frames):
        tgt_slots = np.flatnonzero(tgt_present_all[t].any(-1))
        det_slots = np.flatnonzero(det_present_all[t].any(-1))
        tgt_kp = target.keypoints[t, tgt_slots].astype(np.float64)
        tgt_present = tgt_present_all[t, tgt_slots]
        det_kp = np.where(det_present_all[t, det_slots][..., None], detected.keypoints[t, det_slots], np.nan)
        det_kp = det_kp.astype(np.float64)
        det_score = detected.scores[t, det_slots][:, BODY].mean(-1) if len(det_slots) else np.zeros(0)
        boxes = person_boxes(tgt_kp, tgt_present)
        areas, heights = (np.array(v) for v in zip(*[box_area_height(b) for b in boxes])) if len(boxes) \
            else (np.zeros(0), np.zeros(0))
        per_frame["num_target"][t] = len(tgt_slots)
        per_frame["num_detected"][t] = len(det_slots)
        per_frame["pce"][t] = abs(len(det_slots) - len(tgt_slots))
        _add_coco_records(annotations, predictions, parts, t, tgt_kp, tgt_present, boxes, areas, det_kp, det_score)
        if not len(tgt_slots):
            continue
        for j in range(len(tgt_slots)):
            keypoint_tally.add_pose(tgt_kp[j], tgt_present[j], boxes[j], heights[j])
        sim = (np.nan_to_num(oks_matrix(det_kp[:, BODY], tgt_kp[:, BODY], tgt_present[:, BODY], areas), nan=0.0)
               if len(det_slots) else np.zeros((0, len(tgt_slots))))
        matching = match_frame(sim)
        per_frame["oks"][t] = matching.gt_oks.mean()
        frame = _PartTally(np.zeros(len(alphas)))  # this frame's body points
        matched = dict((int(j), int(i)) for i, j in matching.pairs)
        for j in range(len(tgt_slots)):
            visible = tgt_present[j]
            # NaN where the matched detection lacks the point, or for a target person nobody matched
            dist = (np.linalg.norm(det_kp[matched[j]] - tgt_kp[j], axis=-1) if j in matched
                    else np.full(detected.num_keypoints, np.nan))
            both = visible & np.isfinite(dist)
            keypoint_tally.add_errors(dist, both, heights[j])
            if j in matched:
                norm_sq = (((det_kp[matched[j]] - tgt_kp[j]) / canvas) ** 2).sum(-1)
                norm_sq_sum += float(norm_sq[BODY][both[BODY]].sum())
                norm_count += int(both[BODY].sum())
            hits = np.array([(both & (np.where(both, dist, np.inf) <= a * heights[j])) for a in alphas])  # [A, K]
            for name, (start, stop) in parts.items():
                tallies[name].add(hits[:, start:stop], visible[start:stop], dist[start:stop], both[start:stop])
            frame.add(hits[:, BODY], visible[BODY], dist[BODY], both[BODY])
        if frame.total:
            for a, value in zip(alphas, frame.pck()):
                per_frame[f"pck@{a:g}"][t] = value
        if frame.sq_count:
            per_frame["mse_p"][t] = frame.mse()

    # 3. AP per part, with OKS and with the cosine similarity.
    per_part = {name: _part_metrics(name, start, stop, annotations[name], predictions[name], images, tallies[name],
                                    alphas)
                for name, (start, stop) in parts.items()}

    # 4. Headline (body) metrics.
    metrics = dict(per_part["body"])
    metrics["pce"] = float(np.nanmean(per_frame["pce"])) if num_frames else float("nan")
    metrics["mean_oks"] = float(np.nanmean(per_frame["oks"])) if np.isfinite(per_frame["oks"]).any() else float("nan")
    metrics["mse_p_norm"] = norm_sq_sum / norm_count if norm_count else float("nan")
    keypoint_error, keypoint_error_rel, mean_pose = keypoint_tally.means()
    for note in notes:
        logger.warning("%s", note)
    return AdherenceResult(metrics=metrics, per_part=per_part, per_frame=per_frame, keypoint_error=keypoint_error,
                           keypoint_error_rel=keypoint_error_rel, keypoint_count=keypoint_tally.err_count,
                           mean_pose=mean_pose, notes=notes)


def _add_coco_records(annotations: dict, predictions: dict, parts: dict, t: int, tgt_kp, tgt_present, boxes, areas,
                      det_kp, det_score) -> None:
    """Frame ``t``'s target people as COCO ground truth and detections as COCO results, per part."""
    for name, (start, stop) in parts.items():
        for j in range(len(tgt_kp)):
            x0, y0, x1, y1 = boxes[j]
            flat = np.concatenate([tgt_kp[j, start:stop], 2.0 * tgt_present[j, start:stop, None]], -1)
            annotations[name].append({
                "id": len(annotations[name]), "image_id": t, "category_id": 1, "iscrowd": 0, "area": areas[j],
                "bbox": [x0, y0, x1 - x0, y1 - y0], "keypoints": flat.ravel(),
                "num_keypoints": int(tgt_present[j, start:stop].sum())})
        for i in range(len(det_kp)):
            predictions[name].append({"image_id": t, "keypoints": det_kp[i, start:stop], "score": float(det_score[i])})


def _part_metrics(name: str, start: int, stop: int, annotations: list, predictions: list, images: list,
                  tally: _PartTally, alphas) -> dict[str, float]:
    """OKS AP/AR (and CAP for the body, as HumanSD and Stable-Pose report it), MSE-P and PCK of one part."""
    sigmas = COCO_WHOLEBODY_SIGMAS[start:stop]
    ground_truth = (annotations, images)
    ap = coco_keypoint_ap(predictions, ground_truth, sigmas=sigmas)
    values = {"oks_ap": ap.ap, "oks_ap50": ap.ap50, "oks_ap75": ap.ap75, "oks_ar": ap.ar}
    if name == "body":
        cap = coco_keypoint_ap(predictions, ground_truth, sigmas=sigmas, similarity=cap_similarity)
        values.update(cap=cap.ap, cap_ar=cap.ar)
    values["mse_p"] = tally.mse()
    for a, value in zip(alphas, tally.pck()):
        values[f"pck@{a:g}"] = float(value)
    return values


# --- which detector --------------------------------------------------------------------


def choose_detector(detector="auto", *, max_people: int = 1, pose_model: str | os.PathLike | None = None,
                    det_model: str | os.PathLike | None = None, has_target: bool = True):
    """The detector that re-detects poses on generated frames, and a note on the choice.

    Scoring with the detector that made the target flatters the result: its own quirks
    agree with themselves. ``"auto"`` therefore prefers a different detector when one is
    available: DWPose (ONNX) when its weights are given (``pose_model``), since holdpose's
    targets are usually extracted with MediaPipe, the default. Offline with no weights,
    MediaPipe is the only detector, and ``"auto"`` falls back to it; the note says so and
    lands in the report.

    Args:
        detector: "auto", "mediapipe", "dwpose", or a :class:`holdpose.detect.extract.DetectorConfig`.
        max_people: most people per frame the detector reports.
        has_target: poses are scored against a target (the note on flattering applies only then).
        pose_model, det_model: DWPose ONNX weights (``det_model`` optional).

    Returns:
        ``(DetectorConfig, note)``.
    """
    from holdpose.detect.extract import DetectorConfig

    if isinstance(detector, DetectorConfig):
        return detector, f"detector: {detector.name} (given)"
    if detector not in ("auto", "mediapipe", "dwpose"):
        raise HoldposeError(f"unknown detector {detector!r}; choose auto, mediapipe or dwpose")
    if detector == "auto":
        detector = "dwpose" if pose_model else "mediapipe"
        if detector == "mediapipe" and not has_target:
            note = "detector: mediapipe (auto: no DWPose weights given)"
        elif detector == "mediapipe":
            note = ("detector: mediapipe (auto: no second detector is available offline, so the poses are re-detected "
                    "with MediaPipe, probably the detector that made the target; its own quirks agree with themselves, "
                    "which flatters adherence. Give DWPose weights (--pose-model) for an independent check)")
        else:
            note = "detector: dwpose (auto: a different detector from MediaPipe, holdpose's default extractor)"
    else:
        note = f"detector: {detector}"
    options = {}
    if detector == "dwpose":
        if not pose_model:
            raise HoldposeError("the dwpose detector needs its weights: pass pose_model= (CLI: --pose-model PATH)")
        options = {"pose_model": str(pose_model), "det_model": str(det_model) if det_model else None}
    return DetectorConfig(detector, max_people, options), note


def pose_adherence(video: str | os.PathLike, target: PoseSequence | str | os.PathLike, *, detector="auto",
                   max_people: int | None = None, min_score: float = DEFAULT_MIN_SCORE, workers: int | None = None,
                   progress: bool = True, pose_model=None, det_model=None) -> AdherenceResult:
    """Re-detect the poses in ``video`` and score them against ``target`` (a PoseSequence
    or a pose file). ``max_people`` defaults to the most target people in a frame.
    :func:`holdpose.evaluate.run.evaluate_video` does this and more in one pass."""
    from holdpose.detect.extract import extract_poses
    from holdpose.io.posefile import load_poses

    if not isinstance(target, PoseSequence):
        target = load_poses(target)
    if max_people is None:
        max_people = max(1, int(((target.scores > min_score).any(-1) & (target.track_ids >= 0)).sum(-1).max(initial=1)))
    config, note = choose_detector(detector, max_people=max_people, pose_model=pose_model, det_model=det_model)
    detected = extract_poses(video, detector=config, max_people=max_people, workers=workers, progress=progress)
    result = score_adherence(detected, target, min_score=min_score)
    result.notes.insert(0, note)
    return result


__all__ = ["DEFAULT_MIN_SCORE", "PARTS", "PCK_ALPHAS", "AdherenceResult", "cap_similarity", "choose_detector",
           "cosine_similarity_matrix", "fit_target", "frame_oks", "person_boxes", "pose_adherence", "score_adherence"]
