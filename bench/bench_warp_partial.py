"""The warp animator on references that show only part of a person, or more than one person.

Users give photos where the person is cut at the knees, at the waist, with an arm out of frame,
small in a big frame, not the only person, at the frame's edge. This battery makes such photos
from the fixtures and drives each with the fixture dance, as `holdpose animate ref.png poses.json`
does (Character: rig, align, animate):

- crops of the fixture references (anyone-11, anyone-3) at the knees, the hips and the chest, with
  one side cut (the arm on the image's right out of frame), the person small in a canvas three
  times the photo's size (its border colour continued), and the two side by side (``pair``);
- scikit-image's astronaut (waist-up) as is and with one side cut;
- the COCO photos of ``fixtures/images``: a skier (coco_785) and four skiers, the front one cut
  by the frame's edge (coco_197388, the photo of the defect).

Per case:
- ``pck@0.05`` (and 0.1): holdpose's evaluation (``evaluate_video``, MediaPipe re-detection) of
  the output against the aligned target restricted to the joints the reference shows and the frame
  holds (a joint the photo lacks cannot be animated; one the dance takes out of the frame cannot be
  seen); the threshold is a fraction of the height of those joints' box, so a head-and-shoulders
  target is held to a few pixels; with several people in the photo the re-detection looks for them
  all and the animated one is matched to the target;
- ``area_ratio``: the animated person's silhouette (the puppet's coverage in the target pose)
  over its silhouette in the reference pose, median and range over the frames; alignment keeps
  the character's bone lengths, so a sane animation stays near 1 (a collapsed puppet, or a
  target shrunk to head height, falls far below);
- ``stretch``: how much the mesh stretches or squeezes the texture: per frame the 95th percentile,
  over the puppet's triangles, of ``exp |log(area in the pose / area in the photo)|`` (1: none), its
  median and maximum over the frames (a smear along a limb or a squashed body shows here);
- ``height_ratio``: the target's body height (joints the reference shows) over the reference's,
  median over the frames (the alignment's scale);
- ``reference_pck@0.05``: the rig's reference pose against the truth (the COCO annotation of the
  photo's largest person, or the detection on the whole photo a crop was cut from): the fraction of
  the true body points it places within 0.05 of the person's height; a skeleton mixed from two
  people, or a body made up inside a cut photo, scores low;
- ``body_ratio``: the alignment's scale; ``error``: the one-line message when the reference is
  refused.
A contact sheet per case, ``bench/out/warp_partial_<case>.png``: the reference, then frames
(top) over the same frames with the target pose drawn on them (bottom).

    python bench/bench_warp_partial.py [--stride 3] [--only NAME] [--no-adherence]

Writes bench/results/warp_partial.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, load, rel  # noqa: E402
from bench_animate import FIXTURES, OUT, RESULTS, driving_poses, fixtures_ready  # noqa: E402

SANE_AREA = (0.5, 2.0)  # animated silhouette over the reference's: outside this the puppet collapsed or blew up


# --- the battery -----------------------------------------------------------------------


def _body(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body points ``[17, 2]`` px and presence ``[17]`` of the person in a full fixture photo."""
    from holdpose.detect.extract import detect_reference_pose

    keypoints, scores = detect_reference_pose(image)
    return keypoints[:17].astype(np.float64), scores[:17] > 0.3


def _mean_y(points, present, joints) -> int:
    return int(round(np.mean([points[j, 1] for j in joints if present[j]])))


def _cut(image: np.ndarray, truth, width: int | None = None, height: int | None = None):
    """``image[:height, :width]`` and the true body points ``(points [17, 2], present [17])`` it still shows."""
    image = image[:height, :width]
    points, present = truth
    inside = (points[:, 0] < image.shape[1]) & (points[:, 1] < image.shape[0])
    return image, (points, present & inside)


def crops(name: str, image: np.ndarray) -> dict:
    """Partial views of a full-body photo: cut at the knees, the hips, the chest; with the arm on
    the image's right out of frame (cut just beyond that shoulder) and cut through the middle
    (one shoulder and one hip left: too little to rig, a clear refusal is the right answer).
    Each with the body points of the whole photo it still shows (the truth for its reference pose)."""
    truth = _body(image)
    points, present = truth
    knee, hip, shoulder = (_mean_y(points, present, j) for j in ((13, 14), (11, 12), (5, 6)))
    chest = (shoulder + hip) // 2
    side, half = side_cuts(points)
    return {f"{name}_knees": _cut(image, truth, height=knee), f"{name}_hips": _cut(image, truth, height=hip + (knee - hip) // 8),
            f"{name}_chest": _cut(image, truth, height=chest), f"{name}_side": _cut(image, truth, width=side),
            f"{name}_half": _cut(image, truth, width=half)}


def side_cuts(points: np.ndarray) -> tuple[int, int]:
    """Where to cut a photo's right side (x, px): just beyond the shoulder on that side (its arm out
    of frame), and a quarter of the shoulder width past the body's middle."""
    right, left = sorted(points[[5, 6], 0])
    return int(left + 0.1 * (left - right)), int((left + right) / 2 + 0.25 * (left - right))


def padded(image: np.ndarray, truth, factor: int = 3):
    """The photo small in a canvas ``factor`` times its size, its border colour continued."""
    import cv2

    h, w = image.shape[:2]
    dy, dx = (factor - 1) * h // 2, (factor - 1) * w // 2
    return cv2.copyMakeBorder(image, dy, dy, dx, dx, cv2.BORDER_REPLICATE), (truth[0] + [dx, dy], truth[1])


def side_by_side(left: np.ndarray, right: np.ndarray, truth):
    """Two photos at the same height, next to each other; the truth is the left one's."""
    import cv2

    height = min(left.shape[0], right.shape[0])
    resized = [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height), interpolation=cv2.INTER_AREA)
               for im in (left, right)]
    return np.concatenate(resized, axis=1), (truth[0] * height / left.shape[0], truth[1])


def coco_truth(stem: str):
    """The COCO annotation of the photo's largest person: ``(points [17, 2], present [17])``."""
    doc = json.loads((FIXTURES / "images" / "annotations.json").read_text())
    image_id = next(im["id"] for im in doc["images"] if im["file_name"] == f"{stem}.jpg")
    people = [a for a in doc["annotations"] if a["image_id"] == image_id]
    largest = max(people, key=lambda a: a["bbox"][2] * a["bbox"][3])
    keypoints = np.array(largest["keypoints"], np.float64).reshape(17, 3)
    return keypoints[:, :2], keypoints[:, 2] > 0


def battery() -> dict[str, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """Case name -> (reference photo ``uint8 [H, W, 3]`` RGB, true body points ``(points [17, 2] px,
    present [17])`` of the person meant: the COCO annotation, or the detection on the whole photo)."""
    from skimage import data

    from holdpose.io.video import read_image

    anyone = {short: read_image(FIXTURES / "reference" / f"ref_animateanyone_{short}.png")
              for short in ("anyone-11", "anyone-3")}
    cases = {}
    for short, image in anyone.items():
        truth = _body(image)
        cases[f"{short}_full"] = image, truth
        cases.update(crops(short, image))
        cases[f"{short}_small"] = padded(image, truth)
    cases["pair"] = side_by_side(anyone["anyone-11"], anyone["anyone-3"], cases["anyone-11_full"][1])
    astronaut = data.astronaut()
    truth = _body(astronaut)
    cases["astronaut"] = astronaut, truth
    side, half = side_cuts(truth[0])
    cases["astronaut_side"], cases["astronaut_half"] = _cut(astronaut, truth, width=side), _cut(astronaut, truth, width=half)
    for stem in ("coco_000000000785", "coco_000000197388"):
        cases[stem] = read_image(FIXTURES / "images" / f"{stem}.jpg"), coco_truth(stem)
    return {name: (np.ascontiguousarray(image), truth) for name, (image, truth) in cases.items()}


# --- measuring --------------------------------------------------------------------------


def body_height(points: np.ndarray, present: np.ndarray) -> float:
    """Height of the box around the present body points ``[17, 2]``, px (0 with fewer than 2)."""
    ys = points[:17, 1][present[:17]]
    return float(np.ptp(ys)) if len(ys) >= 2 else 0.0


def sheet(reference: np.ndarray, frames: list[np.ndarray], overlays: list[np.ndarray], height: int = 300) -> np.ndarray:
    """The reference beside the frames (top) over the frames with the target drawn (bottom)."""
    import cv2

    def fit(im):
        return cv2.resize(im, (max(1, round(im.shape[1] * height / im.shape[0])), height), interpolation=cv2.INTER_AREA)

    top = np.concatenate([fit(reference)] + [fit(f) for f in frames], axis=1)
    bottom = np.concatenate([np.zeros_like(fit(reference))] + [fit(o) for o in overlays], axis=1)
    return np.concatenate([top, bottom], axis=0)


def reference_pck(rig, truth, alpha: float = 0.05) -> float:
    """Fraction of the true body points the rig's reference pose places within ``alpha`` times the
    true person's height (a point the rig lacks counts as wrong): does it have the right person?"""
    points, present = truth
    height = body_height(points, present)
    error = np.linalg.norm(rig.points[:17] - points, axis=1)
    hits = (error <= alpha * height) & rig.present[:17]
    return float(hits[present].mean()) if present.any() else float("nan")


def run_case(name: str, image: np.ndarray, truth, dance, adherence: bool) -> dict:
    from holdpose.animate.character import Character
    from holdpose.animate.output import write_animation
    from holdpose.animate.warp import MIN_SCORE
    from holdpose.errors import HoldposeError
    from holdpose.io.video import write_image
    from holdpose.refine.align import align_to_reference
    from holdpose.render.openpose import overlay_pose_map, render_pose_maps

    row = {"case": name, "size": [int(image.shape[1]), int(image.shape[0])]}
    start = time.perf_counter()
    character = Character(image)
    try:
        rig = character.rig
        # what Character.align does, keeping the measured scale
        aligned, alignment = align_to_reference(dance, *character.pose, reference_size=character.size)
    except HoldposeError as err:
        row["error"] = str(err)
        print(json.dumps(row), flush=True)
        return row
    row["rig_seconds"] = time.perf_counter() - start
    row["body_ratio"] = alignment.body_ratio
    row["reference_pck@0.05"] = reference_pck(rig, truth)
    shown = rig.present.copy()  # joints the reference shows: the only ones that can be animated
    reference_area = float(rig.coverage(rig.points, rig.present.astype(np.float32)).sum())
    reference_height = body_height(rig.points, shown)
    areas, heights, stretches, frames, overlays = [], [], [], [], []
    wanted = set(np.linspace(0, aligned.num_frames - 1, 5).round().astype(int))
    maps = render_pose_maps(aligned, "openpose_full")
    video = OUT / f"warp_partial_{name}.mp4"
    rendered = []
    for t, pose_map in enumerate(maps):
        keypoints, scores = aligned.keypoints[t, 0], aligned.scores[t, 0]
        frame = rig.deform(keypoints, scores)
        rendered.append(frame)
        areas.append(float(rig.coverage(keypoints, scores).sum()) / max(reference_area, 1.0))
        heights.append(body_height(keypoints, (scores > MIN_SCORE) & shown) / max(reference_height, 1.0))
        _, ratios = rig.texture_scale(keypoints, scores)
        stretches.append(float(np.percentile(np.exp(np.abs(np.log(np.maximum(ratios, 1e-6)))), 95)))
        if t in wanted:
            frames.append(frame)
            overlays.append(overlay_pose_map(frame, pose_map, dim=0.5))
    write_image(OUT / f"warp_partial_{name}.png", sheet(image, frames, overlays))
    areas = np.array(areas)
    row.update(frames=aligned.num_frames, area_ratio_median=float(np.median(areas)),
               area_ratio_min=float(areas.min()), area_ratio_max=float(areas.max()),
               sane_frames=float(np.mean((areas >= SANE_AREA[0]) & (areas <= SANE_AREA[1]))),
               height_ratio_median=float(np.nanmedian(heights)), stretch_p95_median=float(np.median(stretches)),
               stretch_p95_max=float(np.max(stretches)), contact_sheet=rel(OUT / f"warp_partial_{name}.png"))
    if adherence:
        from holdpose.evaluate.run import evaluate_video

        write_animation(iter(rendered), aligned, video, progress=False)
        target = aligned.copy()
        # score only the joints the reference shows, where the frame shows them
        inside = ((target.keypoints >= 0) & (target.keypoints < np.array(target.size, np.float32))).all(-1)
        target.scores[:, :, ~shown] = 0
        target.scores[~inside] = 0
        # several people in the photo: the re-detection looks for them all and the animated one is matched
        from holdpose.detect.mediapipe import MediaPipeDetector

        with MediaPipeDetector(max_people=6, hands_and_face=False) as detector:
            people = max(1, len(detector(image)[0]))
        evaluation = evaluate_video(video, target=target, detector="mediapipe", max_people=people, progress=False)
        row["people_in_photo"] = people
        row.update({key: evaluation.metrics.get(key) for key in ("pck@0.05", "pck@0.1", "oks_ap")})
        from holdpose.skeleton import COCO_WHOLEBODY

        error = evaluation.keypoints["error_px"][:17]  # mean px error of each body joint, where detected
        row["body_error_px"] = {COCO_WHOLEBODY.keypoint_names[k]: round(float(error[k]), 1)
                                for k in range(17) if np.isfinite(error[k])}
    row["seconds"] = time.perf_counter() - start
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stride", type=int, default=3, help="animate every Nth frame of the dance")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--no-adherence", action="store_true", help="skip the re-detection (PCK)")
    parser.add_argument("--label", default="", help="suffix of the result file and contact sheets")
    args = parser.parse_args(argv)
    if not fixtures_ready():
        return 0
    dance = driving_poses(None)[::args.stride]
    rows = [run_case(name + args.label, image, truth, dance, not args.no_adherence)
            for name, (image, truth) in battery().items() if args.only in name]
    result = {"benchmark": "warp partial references", "git": git_state(), "load": load(), "stride": args.stride,
              "sane_area_ratio": SANE_AREA, "cases": rows}
    path = RESULTS / f"warp_partial{args.label}.json"
    path.write_text(json.dumps(result, indent=2))
    print("| case | size | PCK@0.05 | PCK@0.1 | silhouette area ratio, median (min-max) | sane frames | "
          "texture stretch p95, median / max | target height / reference's | body ratio | reference pose PCK@0.05 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['size'][0]}x{r['size'][1]} | refused: {r['error']} | | | | | | | |")
            continue
        pck = (f"{r['pck@0.05']:.3f} | {r['pck@0.1']:.3f}" if r.get("pck@0.05") is not None else "- | -")
        print(f"| {r['case']} | {r['size'][0]}x{r['size'][1]} | {pck} | {r['area_ratio_median']:.2f} "
              f"({r['area_ratio_min']:.2f}-{r['area_ratio_max']:.2f}) | {100 * r['sane_frames']:.0f} % | "
              f"{r['stretch_p95_median']:.2f} / {r['stretch_p95_max']:.2f} | {r['height_ratio_median']:.2f} | "
              f"{r['body_ratio']:.3f} | {r['reference_pck@0.05']:.2f} |")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
