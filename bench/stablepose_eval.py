"""Stable-Pose's evaluation protocol on your own folder of generated images, printed beside the paper.

The paper (Table 1) re-detects poses on the generated images with HigherHRNet and reports
pose AP (COCO OKS), CAP (the same AP with cosine similarity of the keypoints), PCE (person-count
error), FID on 64-d Inception features and KID against the real images, and the CLIP score
(text-image). This script runs the same metrics through ``holdpose.evaluate.evaluate_video``:

- the detector is holdpose's own (MediaPipe, or DWPose with ``--pose-model``), or yours: give its
  detections as a COCO results file (``--predictions``: ``image_id``, ``keypoints`` as 17 ``[x, y, s]``,
  ``score``), e.g. the paper's HigherHRNet run through MMPose; with holdpose's detectors AP/CAP are
  comparable with the paper's only in trend (say which detector you used);
- FID-64 needs pytorch-fid's Inception weights (``--fid64``), KID a feature extractor
  (``--fid-features``, see ``holdpose evaluate --help``), the CLIP score a local CLIP folder
  (``--clip-model``) and one prompt (``--prompt``; per-image prompts are not supported).

Inputs: ``--generated`` holds the images made from the poses of ``--annotations`` (a COCO keypoint
file in the generated images' pixels, e.g. written by ``holdpose extract REAL_DIR --coco`` on the
real images resized to the generated size), all of one size and named as in the annotations;
``--real`` the real images under the same names. Only the paper's AP and CAP are known here; its
other Table 1 values were not in the material this was built from, so they print as "-".

    .venv/bin/python bench/stablepose_eval.py --generated gen/ --annotations val.json --real real/ \
        --fid64 --clip-model clip-vit-base-patch16/ --prompt "a person" -o results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# data -> metric -> value, from the paper (seed article 001; SEED_MODULES §1)
PAPER = {"Human-Art": {"AP": 48.87, "CAP": 71.04}, "LAION-Human": {"AP": 57.41, "CAP": 68.06}}
ROWS = (("AP", "oks_ap", 100.0), ("CAP", "cap", 100.0), ("PCE", "pce", 1.0), ("FID-64", "fid64", 1.0),
        ("KID", "kid", 1.0), ("CLIP score", "clip_t", 100.0))


def target_sequence(annotations: Path, generated: Path):
    """The annotated poses as a PoseSequence with one frame per image, in file-name order (the
    order an image folder is read in)."""
    from holdpose.errors import HoldposeError
    from holdpose.io.coco import read_coco_keypoints
    from holdpose.sequence import PoseSequence

    images = sorted(read_coco_keypoints(annotations), key=lambda image: image.file_name)
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise HoldposeError(f"{annotations}: images of {len(sizes)} sizes; the generated images share one size")
    missing = [image.file_name for image in images if not (generated / image.file_name).is_file()]
    if missing:
        raise HoldposeError(f"{generated}: {len(missing)} annotated images missing (first: {missing[0]})")
    people = max(1, max(len(image.keypoints) for image in images))
    seq = PoseSequence.empty(len(images), people, size=sizes.pop(), fps=1.0)
    for t, image in enumerate(images):
        count = len(image.keypoints)
        seq.keypoints[t, :count], seq.scores[t, :count] = image.keypoints, image.scores
        seq.track_ids[t, :count] = np.arange(count)
    return seq


def scores_from_predictions(predictions: Path, annotations: Path) -> dict:
    """AP, CAP and PCE of a detector's COCO results file against the annotations."""
    from holdpose.evaluate.adherence import cap_similarity
    from holdpose.evaluate.keypoints import coco_keypoint_ap

    truth = json.loads(annotations.read_text())
    results = json.loads(predictions.read_text())
    records = [{"image_id": r["image_id"], "keypoints": np.asarray(r["keypoints"], np.float64).reshape(-1, 3)[:17, :2],
                "score": float(r.get("score", 1.0))} for r in results]
    people = {image["id"]: 0 for image in truth["images"]}
    for annotation in truth["annotations"]:
        if not annotation.get("iscrowd", 0):
            people[annotation["image_id"]] += 1
    found = {image_id: 0 for image_id in people}
    for record in records:
        found[record["image_id"]] = found.get(record["image_id"], 0) + 1
    return {"oks_ap": coco_keypoint_ap(records, truth).ap,
            "cap": coco_keypoint_ap(records, truth, similarity=cap_similarity).ap,
            "pce": float(np.mean([abs(found[i] - people[i]) for i in people]))}


def table(metrics: dict) -> str:
    lines = [f"{'metric':<11}{'ours':>10}" + "".join(f"{name:>14}" for name in PAPER)]
    for label, key, scale in ROWS:
        ours = metrics.get(key)
        cell = "-" if ours is None or not np.isfinite(ours) else f"{ours * scale:.2f}"
        paper = "".join(f"{PAPER[d].get(label, '-')!s:>14}" for d in PAPER)
        lines.append(f"{label:<11}{cell:>10}{paper}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generated", required=True, type=Path, help="folder of generated images")
    parser.add_argument("--annotations", required=True, type=Path, help="COCO keypoints of the target poses")
    parser.add_argument("--real", type=Path, help="folder of the real images (FID-64, KID)")
    parser.add_argument("--detector", default="auto", help="auto, mediapipe or dwpose")
    parser.add_argument("--predictions", type=Path, help="your detector's COCO keypoint results on the generated "
                        "images: AP, CAP and PCE come from them instead of holdpose's detector")
    parser.add_argument("--pose-model", help="DWPose .onnx")
    parser.add_argument("--det-model", help="YOLOX .onnx for DWPose")
    parser.add_argument("--fid64", action="store_true", help="FID on 64-d Inception features (pytorch-fid weights)")
    parser.add_argument("--fid-features", help="feature extractor for KID (see holdpose evaluate --help)")
    parser.add_argument("--clip-model", help="local CLIP folder (the paper: ViT-B/16)")
    parser.add_argument("--prompt", help="the prompt the images were made with (CLIP score)")
    parser.add_argument("-o", "--output", type=Path, help="write the metrics as JSON here")
    args = parser.parse_args()

    from holdpose.errors import HoldposeError
    from holdpose.evaluate.run import evaluate_video

    try:
        evaluation = evaluate_video(args.generated, target=target_sequence(args.annotations, args.generated),
                                    ground_truth=args.real, detector=None if args.predictions else args.detector,
                                    pose_model=args.pose_model,
                                    det_model=args.det_model, fid64=args.fid64, fid_features=args.fid_features,
                                    clip_model=args.clip_model, prompt=args.prompt)
    except HoldposeError as err:
        sys.exit(f"stablepose_eval: error: {err}")
    metrics = dict(evaluation.metrics)
    if args.predictions:
        metrics.update(scores_from_predictions(args.predictions, args.annotations))
    print(table(metrics))
    for name, why in evaluation.skipped.items():
        if name in ("fid", "fid64", "clip"):  # the paper's metrics; the video ones do not apply to images
            print(f"  {name}: not computed ({why})")
    if args.output:
        args.output.write_text(json.dumps({"metrics": metrics, "skipped": evaluation.skipped,
                                           "notes": evaluation.notes, "paper": PAPER}, indent=1, default=float))


if __name__ == "__main__":
    main()
