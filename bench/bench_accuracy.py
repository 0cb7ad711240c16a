"""Benchmark: body-keypoint accuracy of holdpose's MediaPipe detector on real COCO images.

The figure it checks: "Detection: on the COCO fixture images, mean body OKS of the
multi-person (bottom-up) detector at least 1.3x that of plain MediaPipe Pose, and no
worse than it on the one-person image."

Data: ../shared/fixtures/images (COCO val2017 images 785, one skier, and 197388, five
skiers) with their COCO ground truth (annotations.json). Only the 17 COCO body keypoints
are scored; holdpose detectors return COCO-WholeBody 133, whose first 17 are these.

Three ways of finding people:
- top-down: ``MediaPipeDetector().detect_in_boxes(image, gt_boxes)`` with the ground-truth
  boxes (so it cannot miss or invent people; box i is scored against person i);
- bottom-up: ``MediaPipeDetector(max_people=8)(image)`` on the whole image;
- baseline: plain MediaPipe Pose run once on the whole image
  (``mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)``), its 33
  landmarks mapped to COCO 17 (``holdpose.skeleton.MEDIAPIPE_POSE_FOR_COCO_BODY``),
  visibility as score. It finds at most one person.
For bottom-up and baseline, predicted people are matched one-to-one to the ground truth
by maximal total OKS (``holdpose.evaluate.keypoints.match_people``); a person left
unmatched scores OKS 0 and PCK 0.

Per person:
- OKS as COCO defines it (segment ``area`` of the annotation, COCO sigmas, over the
  labelled points, v > 0);
- PCK@0.2: fraction of labelled points within 0.2 x the longer side of the person's
  ground-truth bbox. Bbox, not torso: several people here have a hip or shoulder
  unlabelled, and the bbox always exists. It is a lenient threshold (e.g. 69 px for the
  skier in image 785), so read it beside OKS.
Every predicted body point is used, whatever its score (COCO's convention); a point with
score 0 (not found at all) counts as missing.

Over both images: mean OKS and PCK over the 6 people, and COCO OKS AP / AR
(``coco_keypoint_ap``, identical to pycocotools' area "all") with each predicted person's
score = the mean of its 17 body keypoint scores.

    .venv/bin/python bench/bench_accuracy.py [--fixtures ../shared/fixtures] [--check]

Prints markdown tables and writes bench/results/accuracy.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, rel  # noqa: E402
from holdpose.evaluate.detector import ap_predictions, body, load_ground_truth, score_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
FIXTURES = REPO.parent / "shared" / "fixtures"
BODY = 17
PCK_ALPHA = 0.2
TARGET_RATIO = 1.3
METHODS = ("top-down", "bottom-up", "bottom-up search", "baseline")
METHOD_CODE = {
    "top-down": "MediaPipeDetector().detect_in_boxes(image, gt_boxes_xyxy)",
    "bottom-up": "MediaPipeDetector(max_people=8)(image) (finder: the person detector when ai-edge-litert is installed)",
    "bottom-up search": "MediaPipeDetector(max_people=8, finder='search')(image) (paint-and-search, the fallback)",
    "baseline": "mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1), 33 -> COCO 17",
}


class Baseline:
    """Plain MediaPipe Pose, once per image: at most one person, COCO 17 body points."""

    def __init__(self):
        import mediapipe as mp

        self.pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from holdpose.skeleton import MEDIAPIPE_POSE_FOR_COCO_BODY

        h, w = image.shape[:2]
        result = self.pose.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return np.zeros((0, BODY, 2)), np.zeros((0, BODY))
        lm = result.pose_landmarks.landmark
        xy = np.array([(p.x * w, p.y * h) for p in lm], np.float64)[MEDIAPIPE_POSE_FOR_COCO_BODY]
        vis = np.clip([p.visibility for p in lm], 0, 1)[MEDIAPIPE_POSE_FOR_COCO_BODY]
        return xy[None], np.asarray(vis, np.float64)[None]

    def close(self):
        self.pose.close()


def run_detectors(images: list[dict]) -> dict:
    """Per method and image: predicted body points ``[P, 17, 2]``, scores ``[P, 17]``, seconds."""
    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.io.video import read_image

    top_down, bottom_up, baseline = MediaPipeDetector(), MediaPipeDetector(max_people=8), Baseline()
    search = MediaPipeDetector(max_people=8, finder="search")
    out = {m: {} for m in METHODS}
    try:
        for img in images:
            image = read_image(img["file"])
            calls = {
                "top-down": lambda: top_down.detect_in_boxes(image, img["boxes"]),
                "bottom-up": lambda: bottom_up(image),
                "bottom-up search": lambda: search(image),
                "baseline": lambda: baseline(image),
            }
            for method, call in calls.items():
                start = time.perf_counter()
                kp, sc = call()
                seconds = time.perf_counter() - start
                kp, sc = body(np.asarray(kp), np.asarray(sc))
                out[method][img["id"]] = {"keypoints": kp, "scores": sc, "seconds": seconds}
    finally:
        for det in (top_down, bottom_up, search, baseline):
            det.close()
    return out


# --- report --------------------------------------------------------------------------



def image_table(img: dict, scores: dict, preds: dict) -> list[str]:
    num_gt = len(img["areas"])
    lines = [f"### image {img['id']} ({num_gt} {'person' if num_gt == 1 else 'people'} in GT; found: "
             + ", ".join(f"{m} {scores[m]['num_predictions']}" for m in METHODS) + ")", "",
             "| GT person (ann id) | area px² | labelled | " + " | ".join(
                 f"{m} OKS | {m} PCK@{PCK_ALPHA:g}" for m in METHODS) + " |",
             "|---|---:|---:|" + "---:|---:|" * len(METHODS)]
    for j, ann_id in enumerate(img["annotation_ids"]):
        cells = " | ".join(f"{scores[m]['oks'][j]:.3f} | {scores[m]['pck'][j]:.3f}"
                           + ("" if scores[m]["match"][j] is not None else " (missed)") for m in METHODS)
        lines.append(f"| {ann_id} | {img['areas'][j]:,.0f} | {int(img['visible'][j].sum())} | {cells} |")
    means = " | ".join(f"**{scores[m]['oks'].mean():.3f}** | **{scores[m]['pck'].mean():.3f}**" for m in METHODS)
    lines.append(f"| **mean** | | | {means} |")
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{m} {preds[m][img['id']]['seconds']:.2f}" for m in METHODS))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "accuracy.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when the figure's targets are missed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    annotations = args.fixtures / "images" / "annotations.json"
    if not annotations.is_file():
        print(f"SKIP: {annotations} not found (real-image fixtures absent)")
        return 0

    from holdpose.evaluate.keypoints import coco_keypoint_ap

    # 1. Ground truth and detections.
    gt_dict, images = load_ground_truth(annotations)
    preds = run_detectors(images)

    # 2. Per-person OKS / PCK.
    per_image = {img["id"]: {m: score_image(img, preds[m][img["id"]], top_down=m == "top-down", pck_alpha=PCK_ALPHA)
                            for m in METHODS} for img in images}

    # 3. Overall: means over all people, COCO AP.
    overall = {}
    for m in METHODS:
        oks_all = np.concatenate([per_image[i][m]["oks"] for i in per_image])
        pck_all = np.concatenate([per_image[i][m]["pck"] for i in per_image])
        ap = coco_keypoint_ap(ap_predictions(images, preds[m]), gt_dict)
        overall[m] = {"mean_oks": float(oks_all.mean()), "mean_pck": float(pck_all.mean()),
                      "ap": ap.ap, "ap50": ap.ap50, "ap75": ap.ap75, "ar": ap.ar,
                      "people_found": int(sum((preds[m][i]["scores"] > 0).any(1).sum() for i in per_image)),
                      "people_matched": int(sum(sum(x is not None for x in per_image[i][m]["match"])
                                                for i in per_image)),
                      "seconds": float(sum(preds[m][i]["seconds"] for i in per_image))}
    one_person = min(images, key=lambda img: len(img["areas"]))["id"]
    ratio = overall["bottom-up"]["mean_oks"] / max(overall["baseline"]["mean_oks"], 1e-12)
    single_bu = float(per_image[one_person]["bottom-up"]["oks"].mean())
    single_base = float(per_image[one_person]["baseline"]["oks"].mean())
    meets = {"ratio": ratio >= TARGET_RATIO, "one_person": single_bu >= single_base}

    # 4. Report.
    import mediapipe

    report = {
        "benchmark": "accuracy",
        "figure": "Detection: on the COCO fixture images, mean body OKS of the multi-person (bottom-up) detector "
                  "at least 1.3x that of plain MediaPipe Pose, and no worse than it on the one-person image.",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "mediapipe": mediapipe.__version__},
        "data": {"annotations": rel(annotations), "images": [{"id": img["id"], "file": rel(img["file"]),
                                                               "people": len(img["areas"])} for img in images]},
        "metrics": {"oks": "COCO OKS over labelled (v>0) body points, annotation segment area, COCO sigmas",
                    "pck": f"PCK@{PCK_ALPHA:g}: labelled body points within {PCK_ALPHA:g} x the longer side "
                           "of the GT bbox",
                    "matching": "bottom-up and baseline: one-to-one by maximal total OKS (Hungarian); "
                                "unmatched GT people score 0. top-down: box i scored against person i",
                    "ap": "COCO OKS AP/AR (area all, 20 per image), person score = mean body keypoint score"},
        "methods": METHOD_CODE,
        "per_image": {
            str(img["id"]): {m: {"annotation_ids": img["annotation_ids"],
                                 "oks": per_image[img["id"]][m]["oks"].tolist(),
                                 "pck": per_image[img["id"]][m]["pck"].tolist(),
                                 "matched_prediction": per_image[img["id"]][m]["match"],
                                 "num_predictions": per_image[img["id"]][m]["num_predictions"],
                                 "mean_oks": float(per_image[img["id"]][m]["oks"].mean()),
                                 "mean_pck": float(per_image[img["id"]][m]["pck"].mean()),
                                 "seconds": preds[m][img["id"]]["seconds"]} for m in METHODS}
            for img in images},
        "overall": overall,
        "bottom_up_over_baseline_mean_oks": ratio,
        "one_person_image": {"id": one_person, "bottom_up_oks": single_bu, "baseline_oks": single_base},
        "targets": {"ratio": TARGET_RATIO, "one_person": "bottom-up >= baseline"},
        "meets_targets": meets,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\nBody-keypoint accuracy (17 COCO points) on {rel(annotations)}; OKS per GT person, "
          f"PCK@{PCK_ALPHA:g} of the GT bbox's longer side\n")
    for img in images:
        print("\n".join(image_table(img, per_image[img["id"]], preds)))
        print()
    print(f"### overall ({sum(len(img['areas']) for img in images)} people, {len(images)} images)\n")
    print(f"| method | mean OKS | mean PCK@{PCK_ALPHA:g} | OKS AP | AP50 | AP75 | AR | people found / matched | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in METHODS:
        o = overall[m]
        note = " (GT boxes)" if m == "top-down" else ""
        print(f"| {m}{note} | {o['mean_oks']:.3f} | {o['mean_pck']:.3f} | {o['ap']:.3f} | {o['ap50']:.3f} | "
              f"{o['ap75']:.3f} | {o['ar']:.3f} | {o['people_found']} / {o['people_matched']} | {o['seconds']:.2f} |")
    print(f"\nmean OKS bottom-up / baseline: **{ratio:.2f}x** (target >= {TARGET_RATIO:g}x: "
          f"{'met' if meets['ratio'] else 'MISSED'}); one-person image {one_person}: bottom-up {single_bu:.3f} vs "
          f"baseline {single_base:.3f} ({'met' if meets['one_person'] else 'MISSED'})")
    print(f"wrote {rel(args.output)}")
    return 1 if args.check and not all(meets.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
