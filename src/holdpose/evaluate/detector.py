"""Detector accuracy on COCO-style keypoint annotations: OKS AP/AR, mean OKS and PCK.

Only the 17 COCO body keypoints are scored; holdpose detectors return COCO-WholeBody 133,
whose first 17 are these. Two ways of finding people:

- **top-down**: ``detector.detect_in_boxes(image, gt_boxes)`` with the ground-truth boxes
  (it cannot miss or invent people; box i is scored against person i);
- **bottom-up**: ``detector(image)`` on the whole image (MediaPipe with ``max_people``,
  default 8, by painting over each person found).

Per person: OKS as COCO defines it (the annotation's segment ``area``, COCO sigmas, over
the labelled points, v > 0), and PCK@``pck_alpha``: labelled points within ``pck_alpha``
times the longer side of the person's ground-truth bbox (bbox, not torso: a person often
lacks a labelled hip or shoulder). Bottom-up predictions are matched one-to-one to the
ground truth by maximal total OKS (:func:`holdpose.evaluate.keypoints.match_people`); an
unmatched person scores OKS 0 and PCK 0. Over all images: mean OKS and PCK over people,
and COCO OKS AP/AR (:func:`holdpose.evaluate.keypoints.coco_keypoint_ap`, identical to
pycocotools, area "all"), each predicted person scored by its mean body keypoint score.
Every predicted body point is used whatever its score (COCO's convention); a point with
score 0 (not found at all) counts as missing.

The scoring functions (:func:`load_ground_truth`, :func:`body`, :func:`score_image`,
:func:`ap_predictions`) are the ones ``bench/bench_accuracy.py`` uses.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError

logger = logging.getLogger(__name__)

BODY = 17
PCK_ALPHA = 0.2
MODES = ("top-down", "bottom-up")


# --- ground truth ------------------------------------------------------------------


def _check_coco(data: dict, path: Path) -> None:
    """Every image and annotation has what scoring reads, as finite numbers; else one error naming it."""
    from holdpose.limits import finite

    for info in data["images"]:
        if not isinstance(info, dict) or not isinstance(info.get("id"), int) \
                or not isinstance(info.get("file_name"), str):
            raise HoldposeError(f"{path}: each image needs an integer 'id' and a 'file_name', got {info!r:.80}")
    for a in data["annotations"]:
        where = f"{path}: annotation {a.get('id') if isinstance(a, dict) else a!r:.40}"
        if not isinstance(a, dict) or "image_id" not in a:
            raise HoldposeError(f"{where}: needs 'image_id', 'keypoints', 'bbox' and 'area'")
        if a.get("iscrowd", 0):
            continue
        for key, count in (("keypoints", 3 * BODY), ("bbox", 4)):
            values = a.get(key)
            if not isinstance(values, list) or len(values) != count:
                raise HoldposeError(f"{where}: '{key}' must be a list of {count} numbers (COCO body keypoints "
                                    "x, y, v and a bbox x, y, w, h)")
            for value in values:
                finite(value, f"{where}: {key} value")
        a.setdefault("area", float(a["bbox"][2]) * float(a["bbox"][3]))
        finite(a["area"], f"{where}: area")


def load_ground_truth(annotations: str | os.PathLike, images_dir: str | os.PathLike | None = None
                      ) -> tuple[dict, list[dict]]:
    """Read a COCO keypoint annotation file.

    Returns the COCO dict and, per image (sorted by id), a dict with ``id``, ``file``
    (under ``images_dir``, default the annotation file's folder), ``annotation_ids``,
    ``keypoints [M, 17, 2]``, ``visible [M, 17]``, ``areas [M]``, ``boxes [M, 4]`` (x0, y0,
    x1, y1) and ``box_sizes [M]`` (longer bbox side), crowd annotations left out.
    """
    annotations = Path(annotations)
    images_dir = Path(images_dir) if images_dir is not None else annotations.parent
    try:
        data = json.loads(annotations.read_text())
    except (OSError, ValueError) as err:
        raise HoldposeError(f"{annotations}: cannot read the COCO annotations ({err})") from err
    except RecursionError as err:
        raise HoldposeError(f"{annotations}: cannot read the COCO annotations (nested too deeply)") from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise HoldposeError(f"{annotations}: not a COCO keypoint annotation file (needs 'images' and 'annotations')")
    _check_coco(data, annotations)
    images = []
    for info in sorted(data["images"], key=lambda i: i["id"]):
        anns = [a for a in data["annotations"] if a["image_id"] == info["id"] and not a.get("iscrowd", 0)]
        flat = np.array([np.asarray(a["keypoints"], np.float64).reshape(BODY, 3) for a in anns]).reshape(-1, BODY, 3)
        boxes = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        x, y, w, h = boxes.T
        images.append({
            "id": info["id"], "file": images_dir / info["file_name"],
            "annotation_ids": [a["id"] for a in anns],
            "keypoints": flat[..., :2], "visible": flat[..., 2] > 0,
            "areas": np.array([a["area"] for a in anns], np.float64),
            "boxes": np.stack([x, y, x + w, y + h], 1),
            "box_sizes": np.maximum(w, h),
        })
    return data, images


def body(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First 17 points of ``[P, K, 2]`` / ``[P, K]``; points with score 0 become NaN (missing)."""
    kp = np.asarray(keypoints)[:, :BODY].astype(np.float64)
    sc = np.asarray(scores)[:, :BODY].astype(np.float64)
    kp[sc <= 0] = np.nan
    return kp, sc


def score_image(image: dict, prediction: dict, *, top_down: bool, pck_alpha: float = PCK_ALPHA) -> dict:
    """Per ground-truth person of one image: ``oks``, ``pck`` and ``match`` (index of the
    prediction, or None), plus ``num_predictions``.

    ``prediction`` holds ``keypoints [P, 17, 2]`` (NaN: missing) and ``scores [P, 17]``.
    Top-down predictions come one per ground-truth box, in order, and are not matched.
    """
    from holdpose.evaluate.keypoints import match_people, oks_matrix, pck

    kp, num_gt = prediction["keypoints"], len(image["areas"])
    sim = oks_matrix(kp, image["keypoints"], image["visible"], image["areas"]) if len(kp) else np.zeros((0, num_gt))
    sim = np.nan_to_num(sim, nan=0.0)
    if top_down:
        pairs = np.stack([np.arange(num_gt), np.arange(num_gt)], 1)
        pairs = pairs[prediction["scores"].max(1) > 0] if len(kp) else pairs[:0]
    else:
        pairs = match_people(sim).pairs
    oks_per_gt, pck_per_gt, match = np.zeros(num_gt), np.zeros(num_gt), [None] * num_gt
    for i, j in pairs:
        oks_per_gt[j] = sim[i, j]
        pck_per_gt[j] = pck(kp[i][None], image["keypoints"][j][None], image["visible"][j][None],
                            image["box_sizes"][j][None], pck_alpha)
        match[j] = int(i)
    return {"oks": oks_per_gt, "pck": pck_per_gt, "match": match,
            "num_predictions": int((prediction["scores"] > 0).any(1).sum()) if len(kp) else 0}


def ap_predictions(images: list[dict], predictions: dict) -> list[dict]:
    """COCO-style predictions from ``{image_id: {"keypoints", "scores"}}``; score = mean body keypoint score."""
    out = []
    for image in images:
        p = predictions[image["id"]]
        for kp, sc in zip(p["keypoints"], p["scores"]):
            if not (sc > 0).any():
                continue  # a top-down box where nobody was found
            out.append({"image_id": image["id"], "keypoints": kp, "score": float(sc.mean())})
    return out


# --- the evaluation ---------------------------------------------------------------------


@dataclass
class DetectorEvaluation:
    """Result of :func:`evaluate_detector`.

    Attributes:
        overall: mode -> ``ap``, ``ap50``, ``ap75``, ``ar``, ``mean_oks``, ``mean_pck``,
            ``people``, ``people_found``, ``people_matched``, ``seconds``.
        per_image: image id -> mode -> per-person ``oks``, ``pck``, ``match`` lists.
        images: the ground truth per image (from :func:`load_ground_truth`).
        predictions: mode -> image id -> ``keypoints [P, 17, 2]``, ``scores [P, 17]``.
        detector: its name; pck_alpha: the PCK threshold.
    """

    overall: dict[str, dict[str, float]]
    per_image: dict[int, dict[str, dict]]
    images: list[dict]
    predictions: dict[str, dict[int, dict]]
    detector: str
    pck_alpha: float
    annotations: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        def clean(v):
            if isinstance(v, (float, np.floating)):
                return float(v) if np.isfinite(v) else None
            if isinstance(v, np.ndarray):
                return [clean(x) for x in v.tolist()]
            if isinstance(v, list):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            if isinstance(v, np.integer):
                return int(v)
            return v

        doc = {f"{mode}/{k}": v for mode, values in self.overall.items() for k, v in values.items()}
        doc.update({"overall": self.overall, "detector": self.detector, "annotations": self.annotations,
                    "pck": f"PCK@{self.pck_alpha:g} of the longer side of the ground-truth bbox",
                    "oks": "COCO OKS over labelled (v>0) body points, annotation segment area, COCO sigmas",
                    "ap": "COCO OKS AP/AR (area all, 20 per image), person score = mean body keypoint score",
                    "per_image": {str(image_id): {mode: {k: v for k, v in scores.items()} for mode, scores in modes.items()}
                                  for image_id, modes in self.per_image.items()},
                    "notes": self.notes})
        return clean(doc)


def _people_arrays(keypoints, scores) -> tuple[np.ndarray, np.ndarray]:
    """A detector's ``(keypoints [N, K, 2], scores [N, K])`` as arrays, also when it found nobody (N = 0)."""
    scores = np.asarray(scores, np.float64)
    if len(scores) == 0:
        return np.zeros((0, 133, 2)), np.zeros((0, 133))
    return np.asarray(keypoints).reshape(len(scores), -1, 2), scores.reshape(len(scores), -1)


def evaluate_detector(images_dir: str | os.PathLike, annotations: str | os.PathLike, *, detector="mediapipe",
                      pose_model=None, det_model=None, max_people: int = 8, pck_alpha: float = PCK_ALPHA,
                      modes=MODES) -> DetectorEvaluation:
    """Score a holdpose detector on COCO-annotated images, top-down and bottom-up (see the module docstring).

    Args:
        images_dir: folder of the images named in the annotations' ``file_name``.
        annotations: COCO keypoint annotation JSON (17 body keypoints).
        detector: "mediapipe", "dwpose" (with ``pose_model``) or a DetectorConfig.
        max_people: most people per image bottom-up.
        pck_alpha: PCK threshold, fraction of the bbox's longer side.
        modes: any of "top-down", "bottom-up".
    """
    from holdpose.detect.extract import DetectorConfig
    from holdpose.evaluate.keypoints import coco_keypoint_ap
    from holdpose.io.video import read_image

    # 1. Check inputs.
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise HoldposeError(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    if not Path(images_dir).is_dir():
        raise HoldposeError(f"{images_dir}: not a folder of images")
    coco, images = load_ground_truth(annotations, images_dir)
    for image in images:
        if not Path(image["file"]).exists():
            raise HoldposeError(f"{image['file']}: image {image['id']} of the annotations is missing")
    if isinstance(detector, DetectorConfig):
        name, options = detector.name, dict(detector.options)
    else:
        name = detector
        options = {"pose_model": str(pose_model), "det_model": str(det_model) if det_model else None} \
            if detector == "dwpose" else {}
        if detector == "dwpose" and not pose_model:
            raise HoldposeError("the dwpose detector needs its weights: pass pose_model= (CLI: --pose-model PATH)")
    builders = {"top-down": DetectorConfig(name, 1, options), "bottom-up": DetectorConfig(name, max_people, options)}

    # 2. Detect.
    predictions = {m: {} for m in modes}
    seconds = {m: 0.0 for m in modes}
    for mode in modes:
        with builders[mode].build(video=False) as det:
            for image in images:
                pixels = read_image(image["file"])
                start = time.perf_counter()
                if mode == "top-down":
                    kp, sc = det.detect_in_boxes(pixels, image["boxes"]) if len(image["boxes"]) else (
                        np.zeros((0, BODY, 2)), np.zeros((0, BODY)))
                else:
                    kp, sc = det(pixels)
                    kp, sc = kp[:max_people], sc[:max_people]
                seconds[mode] += time.perf_counter() - start
                kp, sc = body(*_people_arrays(kp, sc))
                predictions[mode][image["id"]] = {"keypoints": kp, "scores": sc}

    # 3. Score.
    per_image: dict[int, dict[str, dict]] = {image["id"]: {} for image in images}
    overall = {}
    for mode in modes:
        oks_all, pck_all, found, matched = [], [], 0, 0
        for image in images:
            s = score_image(image, predictions[mode][image["id"]], top_down=mode == "top-down", pck_alpha=pck_alpha)
            per_image[image["id"]][mode] = {"annotation_ids": image["annotation_ids"], "oks": s["oks"],
                                            "pck": s["pck"], "match": s["match"],
                                            "num_predictions": s["num_predictions"]}
            oks_all.append(s["oks"])
            pck_all.append(s["pck"])
            found += s["num_predictions"]
            matched += sum(m is not None for m in s["match"])
        ap = coco_keypoint_ap(ap_predictions(images, predictions[mode]), coco)
        oks_all, pck_all = np.concatenate(oks_all), np.concatenate(pck_all)
        overall[mode] = {"ap": ap.ap, "ap50": ap.ap50, "ap75": ap.ap75, "ar": ap.ar,
                         "mean_oks": float(oks_all.mean()) if len(oks_all) else float("nan"),
                         "mean_pck": float(np.nanmean(pck_all)) if np.isfinite(pck_all).any() else float("nan"),
                         "people": int(len(oks_all)), "people_found": found, "people_matched": matched,
                         "seconds": seconds[mode]}
    return DetectorEvaluation(overall=overall, per_image=per_image, images=images, predictions=predictions,
                              detector=name, pck_alpha=pck_alpha, annotations=str(annotations))


def write_detector_report(result: DetectorEvaluation, output_dir: str | os.PathLike) -> dict[str, Path]:
    """``metrics.json``, ``index.html`` and one picture per image (ground truth as white
    dots, each mode's people drawn OpenPose-style) into ``output_dir``."""
    from holdpose.evaluate import report as rep
    from holdpose.io.video import read_image, write_image

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out / "metrics.json", "html": out / "index.html"}
    rep.write_json(files["metrics"], result.to_json())
    modes = list(result.overall)
    keys = ["ap", "ap50", "ap75", "ar", "mean_oks", "mean_pck", "people", "people_found", "people_matched", "seconds"]
    head = "".join(f"<th>{html.escape(k if k != 'mean_pck' else f'mean PCK@{result.pck_alpha:g}')}</th>" for k in keys)
    rows = "".join(f"<tr><td class=\"name\">{html.escape(m)}</td>"
                   + "".join(f"<td>{rep.format_value(result.overall[m][k])}</td>" for k in keys) + "</tr>"
                   for m in modes)
    body = [f"<h1>holdpose detector accuracy: {html.escape(result.detector)}</h1>",
            f"<p>annotations: <code>{html.escape(result.annotations)}</code>; {len(result.images)} images, "
            f"17 COCO body keypoints</p>",
            f"<table><tr><th class=\"name\">mode</th>{head}</tr>{rows}</table>",
            "<p class=\"muted\">OKS AP/AR as COCO (pycocotools) computes them, area \"all\"; mean OKS and PCK over "
            f"ground-truth people (a missed person scores 0); PCK@{result.pck_alpha:g} of the longer side of the "
            "person's bbox. top-down gets the ground-truth boxes.</p>"]
    for image in result.images:
        pixels = read_image(image["file"])
        panels = []
        for mode in modes:
            p = result.predictions[mode][image["id"]]
            panels.append((f"{mode}", _draw_people(pixels, image, p)))
        path = out / "images" / f"{image['id']}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        # 240 px a row: a report of dozens of images stays a page one scrolls, not ~12 000 px
        write_image(path, rep.labelled_row(panels, height=min(240, pixels.shape[0])))
        files[f"image_{image['id']}"] = path
        cells = "".join(
            f"<tr><td class=\"name\">{ann}</td>"
            + "".join(f"<td>{rep.format_value(result.per_image[image['id']][m]['oks'][j])}</td>"
                      f"<td>{rep.format_value(result.per_image[image['id']][m]['pck'][j])}</td>" for m in modes)
            + "</tr>" for j, ann in enumerate(image["annotation_ids"]))
        mhead = "".join(f"<th>{html.escape(m)} OKS</th><th>{html.escape(m)} PCK</th>" for m in modes)
        body.append(f"<h2>{html.escape(Path(image['file']).name)} <span class=\"muted\">(image id {image['id']})"
                    f"</span></h2><table><tr><th class=\"name\">person (annotation)</th>{mhead}</tr>"
                    f"{cells}</table>")
        body.append(rep._figure(path, out, "white dots: ground truth; coloured skeletons: the detector's people"))
    rep.write_text(files["html"], rep.page(f"holdpose detector accuracy: {result.detector}", "\n".join(body)))
    return files


def _draw_people(pixels: np.ndarray, image: dict, prediction: dict) -> np.ndarray:
    import cv2

    from holdpose.evaluate import report as rep

    kp = np.nan_to_num(prediction["keypoints"])
    wholebody = np.zeros((len(kp), 133, 2), np.float32)
    scores = np.zeros((len(kp), 133), np.float32)
    wholebody[:, :BODY] = kp
    scores[:, :BODY] = np.where(np.isfinite(prediction["keypoints"]).all(-1), np.maximum(prediction["scores"], 1e-3), 0)
    h, w = pixels.shape[:2]
    out = rep.overlay_pose(pixels, wholebody, scores, (w, h), threshold=0.0) if len(kp) else pixels.copy()
    radius = max(2, round(max(h, w) / 250))
    for person, visible in zip(image["keypoints"], image["visible"]):
        for (x, y), v in zip(person, visible):
            if v:
                cv2.circle(out, (int(round(x)), int(round(y))), radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
                cv2.circle(out, (int(round(x)), int(round(y))), radius, (255, 255, 255), -1, cv2.LINE_AA)
    return out


__all__ = ["MODES", "PCK_ALPHA", "DetectorEvaluation", "ap_predictions", "body", "evaluate_detector",
           "load_ground_truth", "score_image", "write_detector_report"]
