"""Benchmark: one person per image, holdpose's default detector against the plain model it wraps.

The figure (issue 17): "Single-person images: mean OKS >= plain MediaPipe Pose on the same
images (measure on the fixtures and on composites you build)".

Images:
- the fixture: COCO val2017 image 785 (one skier), ``../shared/fixtures/images``;
- composites: each of the six COCO people of the fixtures (the skier and the five skiers of
  image 197388) cut out along their COCO segmentation polygon and pasted, one per image, onto
  three 960x540 backgrounds (grey textured floor, random coloured clutter, the snow of image
  785 with its skier inpainted away) at three heights (180, 320 and 460 px) and a seeded random
  place along the floor: 54 images. Their ground truth is COCO's, moved and scaled with the
  person (segment area scaled too). People who are cut off or hidden behind others in the
  original stay so: their polygon holds only what showed.

Methods, body points only (COCO 17), OKS as COCO defines it (missing points count 0):
- "holdpose": ``MediaPipeDetector()``, what ``holdpose extract`` runs on an image;
- "holdpose --keep-offscreen": the same keeping MediaPipe's guesses (score = visibility);
- "plain MediaPipe Pose": ``mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)``,
  every landmark kept (bench_accuracy's baseline).

    .venv/bin/python bench/bench_single_person.py

Writes bench/results/single_person.json and bench/out/single_person_worst.png (the images where
holdpose trails the plain model most, both skeletons drawn). Skips when the fixtures are absent.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, load, rel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
OUT = REPO / "bench" / "out"
CANVAS = (960, 540)
HEIGHTS = (180, 320, 460)
METHODS = ("holdpose", "holdpose --keep-offscreen", "plain MediaPipe Pose")


def people_cutouts(annotations: dict) -> list[dict]:
    """Every COCO person of the fixtures: RGB crop, mask, keypoints ``[17, 2]`` and labels
    ``[17]`` relative to the crop, segment area."""
    import cv2

    from holdpose.io.video import read_image

    files = {info["id"]: FIXTURES / "images" / info["file_name"] for info in annotations["images"]}
    people = []
    for ann in annotations["annotations"]:
        image = read_image(files[ann["image_id"]])
        mask = np.zeros(image.shape[:2], np.uint8)
        for polygon in ann["segmentation"]:
            cv2.fillPoly(mask, [np.asarray(polygon, np.float64).reshape(-1, 2).round().astype(np.int32)], 1)
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        points = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)
        people.append({"id": ann["id"], "image": image[y0:y1, x0:x1], "mask": mask[y0:y1, x0:x1].astype(bool),
                       "keypoints": points[:, :2] - [x0, y0], "visible": points[:, 2] > 0, "area": ann["area"]})
    return people


def backgrounds(annotations: dict) -> dict[str, np.ndarray]:
    """Three 960x540 RGB backgrounds with nobody on them."""
    import cv2

    from holdpose.io.video import read_image

    w, h = CANVAS
    rng = np.random.default_rng(0)
    floor = np.clip(rng.normal(0, 6, (h, w, 1)) + np.linspace(150, 110, h)[:, None, None], 0, 255)
    clutter = np.full((h, w, 3), 200, np.uint8)
    for _ in range(40):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(clutter, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 200))), colour, -1)
        else:
            cv2.ellipse(clutter, (x, y), (int(rng.integers(10, 90)), int(rng.integers(10, 90))), 0, 0, 360, colour, -1)
    ann = next(a for a in annotations["annotations"] if a["image_id"] == 785)
    snow = read_image(FIXTURES / "images" / "coco_000000000785.jpg")
    mask = np.zeros(snow.shape[:2], np.uint8)
    for polygon in ann["segmentation"]:
        cv2.fillPoly(mask, [np.asarray(polygon, np.float64).reshape(-1, 2).round().astype(np.int32)], 255)
    snow = cv2.inpaint(snow, cv2.dilate(mask, np.ones((15, 15), np.uint8)), 9, cv2.INPAINT_TELEA)
    return {"floor": np.repeat(floor, 3, -1).astype(np.uint8), "clutter": clutter,
            "snow": cv2.resize(snow, CANVAS, interpolation=cv2.INTER_LINEAR)}


def composite(person: dict, background: np.ndarray, height: int, rng) -> dict:
    """``person`` pasted onto ``background``, ``height`` px tall, somewhere along the floor;
    the image with its ground truth in the layout of ``load_ground_truth``."""
    import cv2

    scale = height / person["image"].shape[0]
    size = (max(1, round(person["image"].shape[1] * scale)), height)
    image = cv2.resize(person["image"], size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(person["mask"].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    w, h = CANVAS
    x0 = int(rng.integers(0, max(1, w - size[0])))
    y0 = int(np.clip(0.95 * h - height + rng.integers(-20, 20), 0, h - height))
    canvas = background.copy()
    canvas[y0:y0 + height, x0:x0 + size[0]][mask] = image[mask]
    keypoints = person["keypoints"] * scale + [x0, y0]
    return {"image": canvas, **_ground_truth(keypoints, person["visible"], person["area"] * scale ** 2)}


def _ground_truth(keypoints: np.ndarray, visible: np.ndarray, area: float) -> dict:
    labelled = keypoints[visible]
    x0, y0 = labelled.min(0)
    x1, y1 = labelled.max(0)
    return {"keypoints": keypoints[None], "visible": visible[None], "areas": np.array([area]),
            "boxes": np.array([[x0, y0, x1, y1]]), "box_sizes": np.array([max(x1 - x0, y1 - y0)])}


def run(images: list[dict]) -> dict[str, np.ndarray]:
    """OKS ``[len(images)]`` per method, and the predictions kept for drawing."""
    from bench_accuracy import Baseline

    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.evaluate.detector import body, score_image

    detectors = {"holdpose": MediaPipeDetector(), "holdpose --keep-offscreen": MediaPipeDetector(keep_offscreen=True),
                 "plain MediaPipe Pose": Baseline()}
    oks = {m: np.zeros(len(images)) for m in METHODS}
    try:
        for i, img in enumerate(images):
            for method, detector in detectors.items():
                kp, sc = body(*detector(img["image"]))
                img.setdefault("predictions", {})[method] = kp
                oks[method][i] = score_image(img, {"keypoints": kp, "scores": sc}, top_down=False)["oks"][0]
    finally:
        for detector in detectors.values():
            detector.close()
    return oks


def worst_sheet(images: list[dict], oks: dict, path: Path, count: int = 6) -> None:
    """The images where holdpose trails the plain model most: holdpose in red, plain in blue,
    ground truth in green."""
    import cv2

    from holdpose.io.video import write_image

    gap = oks["holdpose"] - oks["plain MediaPipe Pose"]
    tiles = []
    for i in np.argsort(gap)[:count]:
        img = images[i]
        tile = img["image"].copy()
        for points, colour in ((img["keypoints"][0][img["visible"][0]], (0, 200, 0)),
                               (img["predictions"]["plain MediaPipe Pose"][0], (60, 60, 255)),
                               (img["predictions"]["holdpose"][0] if len(img["predictions"]["holdpose"]) else [],
                                (255, 40, 40))):
            for x, y in np.asarray(points).reshape(-1, 2):
                if np.isfinite(x):
                    cv2.circle(tile, (int(x), int(y)), 5, colour, -1)
        cv2.putText(tile, f"{img['name']}: holdpose {oks['holdpose'][i]:.2f} plain {oks['plain MediaPipe Pose'][i]:.2f}",
                    (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
        tiles.append(cv2.resize(tile, (480, 270)))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 2)
    rows = [np.concatenate(tiles[k:k + 2], 1) for k in range(0, len(tiles), 2)]
    write_image(path, np.concatenate(rows, 0))


def main() -> None:
    annotations_path = FIXTURES / "images" / "annotations.json"
    if not annotations_path.is_file():
        print(f"skipped: {annotations_path} is absent")
        return
    from holdpose.evaluate.detector import load_ground_truth

    annotations = json.loads(annotations_path.read_text())
    _, fixture_images = load_ground_truth(annotations_path)
    single = [dict(img, image=_read(img["file"]), name=f"fixture {img['id']}") for img in fixture_images
              if len(img["areas"]) == 1]
    rng = np.random.default_rng(17)
    people, scenes = people_cutouts(annotations), backgrounds(annotations)
    composites = [dict(composite(person, background, height, rng), name=f"{person['id']} {name} {height}px")
                  for person in people for name, background in scenes.items() for height in HEIGHTS]
    load_before = load()
    sets = {"fixture (COCO 785)": single, "composites": composites}
    results = {}
    for name, images in sets.items():
        oks = run(images)
        results[name] = {"images": len(images), "mean_oks": {m: round(float(oks[m].mean()), 4) for m in METHODS},
                         "holdpose_below_plain_by_0.05": int((oks["holdpose"] < oks["plain MediaPipe Pose"] - 0.05).sum()),
                         "holdpose_above_plain_by_0.05": int((oks["holdpose"] > oks["plain MediaPipe Pose"] + 0.05).sum()),
                         "per_image": {img["name"]: {m: round(float(oks[m][i]), 4) for m in METHODS}
                                       for i, img in enumerate(images)}}
        if name == "composites":
            OUT.mkdir(parents=True, exist_ok=True)
            worst_sheet(images, oks, OUT / "single_person_worst.png")
    report = {"benchmark": "single_person", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": git_state(), "load_average": {"before": load_before, "after": load()},
              "methods": {"holdpose": "MediaPipeDetector()", "holdpose --keep-offscreen": "MediaPipeDetector(keep_offscreen=True)",
                          "plain MediaPipe Pose": "mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)"},
              "sets": results, "command": "python bench/bench_single_person.py"}
    path = REPO / "bench" / "results" / "single_person.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print("| images | " + " | ".join(f"{m} mean OKS" for m in METHODS) + " | holdpose below / above plain by > 0.05 |")
    print("|---|" + "---|" * (len(METHODS) + 1))
    for name, r in results.items():
        print(f"| {name} ({r['images']}) | " + " | ".join(f"{r['mean_oks'][m]:.3f}" for m in METHODS)
              + f" | {r['holdpose_below_plain_by_0.05']} / {r['holdpose_above_plain_by_0.05']} |")
    print(f"wrote {rel(path)}")


def _read(path):
    from holdpose.io.video import read_image

    return read_image(path)


if __name__ == "__main__":
    main()
