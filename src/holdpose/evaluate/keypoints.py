"""Keypoint accuracy metrics: OKS, PCK, person matching and COCO keypoint AP/AR.

Pure numpy (plus scipy for the optimal assignment); coordinates are pixels, (x, y).

OKS, object keypoint similarity, follows the COCO keypoint evaluation
(https://cocodataset.org/#keypoints-eval; pycocotools ``COCOeval.computeOks``)::

    OKS = mean over labelled ground-truth points i of exp(-d_i^2 / (2 * s^2 * k_i^2))

with ``d_i`` the distance between predicted and true point, ``s^2`` the object's
segment area, and ``k_i = 2 * sigma_i`` for the per-keypoint constants ``sigma_i``
(:data:`COCO_SIGMAS`). "Labelled" means COCO visibility ``v > 0``: occluded but
annotated points (``v = 1``) count as well as visible ones (``v = 2``).

:func:`coco_keypoint_ap` reproduces pycocotools' ``COCOeval(iouType="keypoints")``
for the "all" area range and 20 detections per image (the ``AP``, ``AP .5``, ``AP .75``,
``AR``, ``AR .5``, ``AR .75`` lines of its summary) without pycocotools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, NamedTuple

import numpy as np

# Per-keypoint OKS constants of the 17 COCO body keypoints (COCO order: nose, eyes,
# ears, shoulders, elbows, wrists, hips, knees, ankles; left before right).
COCO_SIGMAS = np.array(
    [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089]
)
# Per-keypoint OKS constants of the 133 COCO-WholeBody points (17 body, 6 feet, 68 face,
# 21 left hand, 21 right hand), as COCO-WholeBody's evaluation uses them
# (jin-s13/COCO-WholeBody evaluation/myeval_wholebody.py; mmpose
# configs/_base_/datasets/coco_wholebody.py). The first 17 are COCO_SIGMAS.
COCO_WHOLEBODY_SIGMAS = np.array([
    .026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089,
    .068, .066, .066, .092, .094, .094,
    .042, .043, .044, .043, .040, .035, .031, .025, .020, .023, .029, .032, .037, .038, .043, .041, .045,
    .013, .012, .011, .011, .012, .012, .011, .011, .013, .015, .009, .007, .007, .007, .012, .009, .008,
    .016, .010, .017, .011, .009, .011, .009, .007, .013, .008, .011, .012, .010, .034, .008, .008, .009,
    .008, .008, .007, .010, .008, .009, .009, .009, .007, .007, .008, .011, .008, .008, .008, .010, .008,
    .029, .022, .035, .037, .047, .026, .025, .024, .035, .018, .024, .022, .026, .017, .021, .021, .032,
    .020, .019, .022, .031,
    .029, .022, .035, .037, .047, .026, .025, .024, .035, .018, .024, .022, .026, .017, .021, .021, .032,
    .020, .019, .022, .031,
])
# OKS thresholds .50:.05:.95 and recall points 0:.01:1, built as pycocotools builds them.
OKS_THRESHOLDS = np.linspace(.5, .95, int(np.round((.95 - .5) / .05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(.0, 1.0, int(np.round((1.0 - .0) / .01)) + 1, endpoint=True)
_EPS = np.spacing(1)  # pycocotools adds it to the area


# --- OKS ---------------------------------------------------------------------------

def _sigmas(sigmas, num_keypoints: int) -> np.ndarray:
    sigmas = np.asarray(sigmas, np.float64)
    if sigmas.shape != (num_keypoints,):
        raise ValueError(f"sigmas has shape {sigmas.shape} but the keypoints have K={num_keypoints}; "
                         f"pass one sigma per keypoint (COCO_SIGMAS is for the 17 COCO body points)")
    return sigmas


def _missing_far(points: np.ndarray) -> np.ndarray:
    """NaN coordinates (a missing prediction) become infinitely far: they contribute 0."""
    return np.where(np.isnan(points), np.inf, points)


def oks_matrix(preds: np.ndarray, gts: np.ndarray, gt_visible: np.ndarray, areas: np.ndarray, *,
               sigmas=COCO_SIGMAS, gt_boxes: np.ndarray | None = None) -> np.ndarray:
    """OKS of every prediction against every ground-truth person.

    Args:
        preds: ``[N, K, 2]`` predicted points, pixels. A NaN point counts as missing
            (infinitely far, contributing exp(-inf) = 0).
        gts: ``[M, K, 2]`` ground-truth points, pixels.
        gt_visible: bool ``[M, K]``, the point is labelled (COCO ``v > 0``).
        areas: ``[M]`` ground-truth segment areas, pixels^2 (COCO ``area``, not the box area).
        sigmas: ``[K]`` per-keypoint constants.
        gt_boxes: optional ``[M, 4]`` COCO boxes (x, y, w, h). Only used for ground truth
            with no labelled point: then, as pycocotools does, each predicted point's
            distance is measured to the box grown to three times its size (zero inside it)
            and OKS is the mean over all K points. Without boxes such columns are NaN.

    Returns:
        float64 ``[N, M]`` OKS in [0, 1].
    """
    preds = np.asarray(preds, np.float64)
    gts = np.asarray(gts, np.float64)
    gt_visible = np.asarray(gt_visible, bool)
    areas = np.asarray(areas, np.float64)
    if preds.ndim != 3 or preds.shape[-1] != 2:
        raise ValueError(f"preds must have shape [N, K, 2], got {preds.shape}")
    if gts.ndim != 3 or gts.shape[1:] != preds.shape[1:]:
        raise ValueError(f"gts must have shape [M, K, 2] with K={preds.shape[1]}, got {gts.shape}")
    num_gt, num_kp = gts.shape[:2]
    if gt_visible.shape != (num_gt, num_kp):
        raise ValueError(f"gt_visible must have shape [M, K] = {(num_gt, num_kp)}, got {gt_visible.shape}")
    if areas.shape != (num_gt,):
        raise ValueError(f"areas must have shape [M] = ({num_gt},), got {areas.shape}")
    variances = (_sigmas(sigmas, num_kp) * 2) ** 2

    preds = _missing_far(preds)
    sq_dist = ((preds[:, None] - gts[None]) ** 2).sum(-1)  # [N, M, K]
    e = sq_dist / variances / (areas[None, :, None] + _EPS) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (np.exp(-e) * gt_visible[None]).sum(-1) / gt_visible.sum(-1)[None]

    unlabelled = ~gt_visible.any(-1)
    if unlabelled.any() and gt_boxes is not None:
        boxes = np.asarray(gt_boxes, np.float64)
        if boxes.shape != (num_gt, 4):
            raise ValueError(f"gt_boxes must have shape [M, 4] = ({num_gt}, 4), got {boxes.shape}")
        for j in np.flatnonzero(unlabelled):
            x, y, w, h = boxes[j]
            lo = np.array([x - w, y - h])
            hi = np.array([x + 2 * w, y + 2 * h])
            d = np.maximum(0, lo - preds) + np.maximum(0, preds - hi)  # [N, K, 2]
            e = (d ** 2).sum(-1) / variances / (areas[j] + _EPS) / 2
            out[:, j] = np.exp(-e).mean(-1)
    return out


def oks(pred: np.ndarray, gt: np.ndarray, gt_visible: np.ndarray, area: float, sigmas=COCO_SIGMAS) -> float:
    """OKS of one predicted person against one ground-truth person.

    Args:
        pred: ``[K, 2]`` predicted points, pixels (NaN: missing, contributes 0).
        gt: ``[K, 2]`` ground-truth points, pixels.
        gt_visible: bool ``[K]``, the point is labelled (COCO ``v > 0``).
        area: the person's segment area, pixels^2.
        sigmas: ``[K]`` per-keypoint constants.

    Returns:
        OKS in [0, 1]; NaN when no ground-truth point is labelled.
    """
    return float(oks_matrix(np.asarray(pred)[None], np.asarray(gt)[None], np.asarray(gt_visible)[None],
                            np.array([area], np.float64), sigmas=sigmas)[0, 0])


# --- PCK ---------------------------------------------------------------------------

def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, reference: np.ndarray, alpha: float) -> float:
    """Percentage of correct keypoints: the fraction of visible ground-truth points whose
    prediction lies within ``alpha * reference`` pixels (distance <= threshold).

    The reference length is the caller's choice and must be reported with the number:
    common ones are the person's bounding-box size (longer side, or the diagonal), the
    torso diameter (LSP's PCK), or the head segment (PCKh). PCK@0.2 of the bbox's longer
    side is far more lenient than PCK@0.2 of the torso.

    Args:
        pred: ``[N, K, 2]`` predicted points, pixels (NaN: missing, never correct).
        gt: ``[N, K, 2]`` ground-truth points, pixels.
        visible: bool ``[N, K]``, ground-truth points to score.
        reference: ``[N]`` reference length per person, pixels.
        alpha: threshold as a fraction of ``reference``.

    Returns:
        Fraction in [0, 1] over all visible points of all N people; NaN if none is visible.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    visible = np.asarray(visible, bool)
    reference = np.asarray(reference, np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 2 or gt.shape != pred.shape:
        raise ValueError(f"pred and gt must both have shape [N, K, 2]; got {pred.shape} and {gt.shape}")
    if visible.shape != pred.shape[:2]:
        raise ValueError(f"visible must have shape [N, K] = {pred.shape[:2]}, got {visible.shape}")
    if reference.shape != pred.shape[:1]:
        raise ValueError(f"reference must have shape [N] = ({pred.shape[0]},), got {reference.shape}")
    if not visible.any():
        return float("nan")
    dist = np.linalg.norm(_missing_far(pred) - gt, axis=-1)  # [N, K]; inf for missing
    correct = dist <= alpha * reference[:, None]
    return float(correct[visible].mean())


# --- matching people ---------------------------------------------------------------

class Matching(NamedTuple):
    """Result of :func:`match_people`.

    Attributes:
        pairs: int ``[P, 2]`` rows (prediction index, ground-truth index), by ground truth.
        gt_oks: float64 ``[M]`` OKS of each ground-truth person's match; 0 when missed.
        missed: int indices of ground-truth people with no match.
        unmatched: int indices of predictions matched to nobody (false positives).
    """

    pairs: np.ndarray
    gt_oks: np.ndarray
    missed: np.ndarray
    unmatched: np.ndarray


def match_people(oks_matrix: np.ndarray, min_oks: float = 0.0) -> Matching:
    """One-to-one assignment of predictions to ground-truth people maximising total OKS
    (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``).

    Pairs whose OKS is below ``min_oks`` are dropped; their ground truth counts as missed
    (OKS 0) and their prediction as unmatched.

    Args:
        oks_matrix: ``[N, M]`` OKS of N predictions against M ground-truth people
            (from :func:`oks_matrix`), finite.
        min_oks: smallest OKS that counts as a match.
    """
    from scipy.optimize import linear_sum_assignment

    sim = np.asarray(oks_matrix, np.float64)
    if sim.ndim != 2:
        raise ValueError(f"oks_matrix must have shape [N, M], got {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("oks_matrix contains NaN or infinite values (ground truth with no labelled point?); "
                         "drop those columns or pass gt_boxes to oks_matrix")
    num_pred, num_gt = sim.shape
    rows, cols = linear_sum_assignment(sim, maximize=True) if sim.size else (np.zeros(0, int), np.zeros(0, int))
    keep = sim[rows, cols] >= min_oks
    rows, cols = rows[keep], cols[keep]
    order = np.argsort(cols)
    rows, cols = rows[order], cols[order]
    gt_oks = np.zeros(num_gt)
    gt_oks[cols] = sim[rows, cols]
    return Matching(
        pairs=np.stack([rows, cols], axis=1).astype(np.int64).reshape(-1, 2),
        gt_oks=gt_oks,
        missed=np.setdiff1d(np.arange(num_gt), cols),
        unmatched=np.setdiff1d(np.arange(num_pred), rows),
    )


# --- COCO keypoint AP --------------------------------------------------------------

@dataclass(frozen=True)
class KeypointAP:
    """COCO keypoint AP and AR (area "all", at most ``max_detections`` per image).

    Attributes:
        ap: mean over OKS thresholds .50:.05:.95 of the 101-point interpolated precision.
        ap50, ap75: the same at OKS .50 and .75.
        ar: mean over the thresholds of the recall with all detections.
        ar50, ar75: recall at OKS .50 and .75.
        precision: ``[10, 101]`` interpolated precision per threshold and recall point.
        recall: ``[10]`` recall per threshold.
        num_gt: ground-truth people scored (not ignored).
        num_predictions: predictions evaluated (after the per-image cut).
    All are NaN when no ground-truth person is scored.
    """

    ap: float
    ap50: float
    ap75: float
    ar: float
    ar50: float
    ar75: float
    precision: np.ndarray
    recall: np.ndarray
    num_gt: int
    num_predictions: int


def _ground_truth(ground_truth) -> tuple[list[int], dict[int, list[dict]]]:
    """Image ids (sorted) and annotations per image from a COCO dict or (annotations, images)."""
    if isinstance(ground_truth, Mapping):
        if "annotations" not in ground_truth:
            raise ValueError("ground_truth must be a COCO annotation dict with an 'annotations' list "
                             f"(keys found: {sorted(ground_truth)})")
        anns, images = ground_truth["annotations"], ground_truth.get("images")
    elif isinstance(ground_truth, tuple) and len(ground_truth) == 2:
        anns, images = ground_truth
    else:
        raise TypeError("ground_truth must be a COCO annotation dict or a pair (annotations, images), "
                        f"got {type(ground_truth).__name__}")
    categories = {a.get("category_id", 1) for a in anns}
    if len(categories) > 1:
        raise ValueError(f"ground truth has several categories {sorted(categories)}; keep only the person "
                         "annotations (one category)")
    ids = {int(a["image_id"]) for a in anns} if images is None else {int(i["id"]) for i in images}
    per_image: dict[int, list[dict]] = {i: [] for i in ids}
    for a in anns:
        if int(a["image_id"]) not in per_image:
            raise ValueError(f"annotation {a.get('id')} refers to image {a['image_id']}, absent from the images")
        per_image[int(a["image_id"])].append(a)
    return sorted(ids), per_image


# A similarity for :func:`coco_keypoint_ap`: (predictions [D, K, 2], ground truth [G, K, 2],
# labelled [G, K], areas [G], boxes [G, 4] xywh, sigmas [K]) -> [D, G] in [0, 1].
Similarity = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _oks_similarity(dt_kp, gt_kp, gt_visible, areas, boxes, sigmas):
    return oks_matrix(dt_kp, gt_kp, gt_visible, areas, sigmas=sigmas, gt_boxes=boxes)


def _evaluate_image(dt_kp: np.ndarray, gts: list[dict], sigmas: np.ndarray, similarity: Similarity = _oks_similarity):
    """Greedy matching of one image's detections (sorted by score, highest first) at each
    OKS threshold, as pycocotools ``COCOeval.evaluateImg``.

    Returns ``(matched [T, D] bool, dt_ignore [T, D] bool, gt_ignore [G] bool)``.
    """
    num_kp = len(sigmas)
    labelled = [g["num_keypoints"] if "num_keypoints" in g else np.count_nonzero(np.asarray(g["keypoints"])[2::3])
                for g in gts]
    ignore = np.array([bool(g.get("iscrowd", 0)) or n == 0 for g, n in zip(gts, labelled)], bool).reshape(-1)
    # Ignored ground truth last (stable), as pycocotools orders it.
    order = np.argsort(ignore, kind="mergesort")
    gts = [gts[i] for i in order]
    ignore = ignore[order]
    crowd = np.array([bool(g.get("iscrowd", 0)) for g in gts], bool)
    num_t, num_d, num_g = len(OKS_THRESHOLDS), len(dt_kp), len(gts)
    matched = np.zeros((num_t, num_d), bool)
    dt_ignore = np.zeros((num_t, num_d), bool)
    if num_d == 0 or num_g == 0:
        return matched, dt_ignore, ignore

    flat = np.array([np.asarray(g["keypoints"], np.float64).reshape(num_kp, 3) for g in gts])
    sim = similarity(dt_kp, flat[..., :2], flat[..., 2] > 0, np.array([g["area"] for g in gts], np.float64),
                     np.array([g["bbox"] for g in gts], np.float64), sigmas)
    for t, threshold in enumerate(OKS_THRESHOLDS):
        gt_taken = np.zeros(num_g, bool)
        for d in range(num_d):
            best, m = min(threshold, 1 - 1e-10), -1
            for g in range(num_g):
                if gt_taken[g] and not crowd[g]:
                    continue
                if m > -1 and not ignore[m] and ignore[g]:
                    break  # matched a scored person; ignored ones come only after
                if sim[d, g] < best:
                    continue
                best, m = sim[d, g], g
            if m == -1:
                continue
            dt_ignore[t, d] = ignore[m]
            matched[t, d] = True
            gt_taken[m] = True
    return matched, dt_ignore, ignore


def coco_keypoint_ap(predictions: Iterable[Mapping], ground_truth, *, sigmas=COCO_SIGMAS,
                     max_detections: int = 20, similarity: Similarity | None = None) -> KeypointAP:
    """OKS-based average precision and recall, computed as the COCO keypoint challenge does.

    Per image, predictions are sorted by score (stable) and cut to ``max_detections``; at
    each OKS threshold t in .50:.05:.95 each prediction in turn takes the still-free
    ground-truth person with the highest OKS >= t. Crowd people (``iscrowd``) and people
    with no labelled keypoint (``num_keypoints == 0``) are ignored: a prediction matched
    to them is neither a true nor a false positive (crowds can absorb several). Then over
    all images, precision is made monotone and read at 101 recall points; AP is the mean
    over points and thresholds, AR the mean recall over thresholds. Matches pycocotools'
    ``COCOeval(iouType="keypoints")`` stats for area "all" (``stats[0:3]`` and ``[5:8]``).

    Args:
        predictions: dicts ``{"image_id": int, "keypoints": [K, 2] pixels, "score": float}``.
        ground_truth: a COCO keypoint annotation dict (``"annotations"``, optionally
            ``"images"``, whose ids then define the evaluated images), or a pair
            ``(annotations, images)`` with ``images`` possibly None. Annotations need
            ``image_id``, ``keypoints`` (flat ``[x, y, v] * K``), ``num_keypoints``,
            ``area``, ``bbox`` (x, y, w, h) and may have ``iscrowd`` (``num_keypoints``
            defaults to the count of labelled points).
        sigmas: ``[K]`` per-keypoint OKS constants.
        max_detections: predictions kept per image (COCO: 20).
        similarity: replaces OKS as the matching score, with the same thresholds and
            accumulation: a function ``(predictions [D, K, 2], ground truth [G, K, 2],
            labelled [G, K], areas [G], boxes [G, 4] xywh, sigmas [K]) -> [D, G]``.
            HumanSD's and Stable-Pose's cosine-similarity AP (CAP) is this AP with
            :func:`holdpose.evaluate.adherence.cosine_similarity_matrix`.
    """
    sigmas = np.asarray(sigmas, np.float64)
    num_kp = len(sigmas)
    image_ids, gts_per_image = _ground_truth(ground_truth)

    # 1. Group and check predictions (input order kept for the stable sorts).
    preds_per_image: dict[int, list[tuple[float, np.ndarray]]] = {i: [] for i in image_ids}
    for n, p in enumerate(predictions):
        image_id = int(p["image_id"])
        if image_id not in preds_per_image:
            raise ValueError(f"prediction {n} is for image {image_id}, which has no ground truth entry")
        kp = np.asarray(p["keypoints"], np.float64)
        if kp.shape != (num_kp, 2):
            raise ValueError(f"prediction {n}: keypoints must have shape [{num_kp}, 2], got {kp.shape}")
        preds_per_image[image_id].append((float(p["score"]), kp))

    # 2. Match per image.
    scores, matched, dt_ignore, gt_ignore = [], [], [], []
    for image_id in image_ids:
        preds = preds_per_image[image_id]
        order = np.argsort([-s for s, _ in preds], kind="mergesort")[:max_detections]
        dt_kp = np.array([preds[i][1] for i in order]).reshape(len(order), num_kp, 2)
        m, di, gi = _evaluate_image(dt_kp, gts_per_image[image_id], sigmas, similarity or _oks_similarity)
        scores.append(np.array([preds[i][0] for i in order], np.float64))
        matched.append(m)
        dt_ignore.append(di)
        gt_ignore.append(gi)

    # 3. Accumulate over images: precision/recall curves per threshold.
    scores = np.concatenate(scores)
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate(matched, axis=1)[:, order]
    dt_ignore = np.concatenate(dt_ignore, axis=1)[:, order]
    num_gt = int((~np.concatenate(gt_ignore)).sum())
    num_t, num_r = len(OKS_THRESHOLDS), len(RECALL_POINTS)
    if num_gt == 0:
        nan = float("nan")
        return KeypointAP(nan, nan, nan, nan, nan, nan, np.full((num_t, num_r), np.nan), np.full(num_t, np.nan),
                          0, len(scores))
    tp = np.cumsum(matched & ~dt_ignore, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~dt_ignore, axis=1).astype(np.float64)
    precision = np.zeros((num_t, num_r))
    recall = np.zeros(num_t)
    num_d = tp.shape[1]
    for t in range(num_t):
        if num_d == 0:
            continue
        rc = tp[t] / num_gt
        pr = tp[t] / (fp[t] + tp[t] + _EPS)
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope, monotone in recall
        recall[t] = rc[-1]
        at = np.searchsorted(rc, RECALL_POINTS, side="left")
        ok = at < num_d
        precision[t, ok] = pr[at[ok]]
    return KeypointAP(
        ap=float(precision.mean()), ap50=float(precision[0].mean()), ap75=float(precision[5].mean()),
        ar=float(recall.mean()), ar50=float(recall[0]), ar75=float(recall[5]),
        precision=precision, recall=recall, num_gt=num_gt, num_predictions=len(scores),
    )


__all__ = ["COCO_SIGMAS", "COCO_WHOLEBODY_SIGMAS", "OKS_THRESHOLDS", "RECALL_POINTS", "KeypointAP", "Matching",
           "Similarity", "coco_keypoint_ap", "match_people", "oks", "oks_matrix", "pck"]
