"""COCO keypoint annotation files (``person_keypoints_*.json``): read for training data, written
by ``holdpose extract FOLDER --coco``.

A file holds ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations`` (one per
person: ``image_id``, ``keypoints`` as 17 flat ``[x, y, v]`` triplets in image pixels, ``v`` 0
for unlabelled, 1 labelled but hidden, 2 visible; ``num_keypoints``, ``bbox`` ``[x, y, w, h]``,
``area``, ``iscrowd``, ``category_id`` 1) and ``categories`` (the person category with its
keypoint names and skeleton). COCO-WholeBody adds ``foot_kpts`` (6), ``face_kpts`` (68),
``lefthand_kpts`` and ``righthand_kpts`` (21 each), read and written when present.

Detections carry confidences, which ``v`` cannot hold: the writer stores them in
``keypoint_scores`` (as MMPose's results do) and the reader prefers them; without them a
point is present with score 1 when ``v > 0``. Points are in holdpose's COCO-WholeBody layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.io.atomic import atomic_path
from holdpose.skeleton import COCO_WHOLEBODY

# WholeBody field -> slice of the 133 points
WHOLEBODY_FIELDS = {"keypoints": slice(0, 17), "foot_kpts": slice(17, 23), "face_kpts": slice(23, 91),
                    "lefthand_kpts": slice(91, 112), "righthand_kpts": slice(112, 133)}
COCO_KEYPOINT_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                       "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                       "right_knee", "left_ankle", "right_ankle")
COCO_SKELETON = ((16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9), (8, 10),
                 (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7))  # 1-based, as COCO writes it


@dataclass
class CocoImage:
    """One image's people: ``keypoints`` float32 ``[P, 133, 2]`` image pixels, ``scores`` ``[P, 133]``
    (0 = missing)."""

    file_name: str
    size: tuple[int, int]  # (width, height)
    keypoints: np.ndarray
    scores: np.ndarray
    image_id: int = 0


def _people_points(annotation: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    points = np.zeros((COCO_WHOLEBODY.num_keypoints, 2), np.float32)
    scores = np.zeros(COCO_WHOLEBODY.num_keypoints, np.float32)
    for field, part in WHOLEBODY_FIELDS.items():
        values = annotation.get(field)
        if values is None:
            continue
        count = part.stop - part.start
        try:
            triplets = np.asarray(values, np.float32).reshape(count, 3)
        except ValueError as err:
            raise HoldposeError(f"{where}: {field} holds {len(values)} numbers, expected {count} [x, y, v] "
                                "triplets") from err
        points[part] = triplets[:, :2]
        scores[part] = (triplets[:, 2] > 0).astype(np.float32)
    if "keypoint_scores" in annotation:
        given = np.asarray(annotation["keypoint_scores"], np.float32)
        scores[:len(given)] = np.where(scores[:len(given)] > 0, given, 0)
    return points, scores


def read_coco_keypoints(path: str | os.PathLike) -> list[CocoImage]:
    """The images of a COCO keypoint file, in file order, each with its people (crowd
    annotations skipped)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        images = data["images"]
        annotations = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise HoldposeError(f"{path}: not a COCO keypoint file ({err}); give a JSON file with 'images' and "
                            "'annotations'") from err
    people: dict[int, list] = {}
    for n, annotation in enumerate(annotations):
        if annotation.get("iscrowd", 0) or "keypoints" not in annotation:
            continue
        people.setdefault(annotation["image_id"], []).append(_people_points(annotation, f"{path}: annotation {n}"))
    out = []
    for image in images:
        found = people.get(image["id"], [])
        keypoints = np.stack([p for p, _ in found]) if found else np.zeros((0, COCO_WHOLEBODY.num_keypoints, 2),
                                                                               np.float32)
        scores = np.stack([s for _, s in found]) if found else np.zeros((0, COCO_WHOLEBODY.num_keypoints), np.float32)
        out.append(CocoImage(image["file_name"], (int(image["width"]), int(image["height"])), keypoints, scores,
                             int(image["id"])))
    return out


def _annotation(points: np.ndarray, scores: np.ndarray, threshold: float, image_id: int, ann_id: int) -> dict:
    present = scores > threshold
    record = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0}
    for field, part in WHOLEBODY_FIELDS.items():
        xy = np.where(present[part, None], points[part], 0.0)
        v = np.where(present[part], 2, 0)
        record[field] = [float(round(c, 2)) if i % 3 < 2 else int(c) for i, c in
                         enumerate(np.column_stack([xy, v]).ravel().tolist())]
    record["keypoint_scores"] = [round(float(s), 4) if p else 0.0 for s, p in zip(scores[:17], present[:17])]
    record["num_keypoints"] = int(present[:17].sum())
    if present.any():
        lo, hi = points[present].min(0), points[present].max(0)
        record["bbox"] = [round(float(lo[0]), 2), round(float(lo[1]), 2), round(float(hi[0] - lo[0]), 2),
                          round(float(hi[1] - lo[1]), 2)]
        record["area"] = round(float((hi[0] - lo[0]) * (hi[1] - lo[1])), 2)
    else:
        record["bbox"], record["area"] = [0.0, 0.0, 0.0, 0.0], 0.0
    return record


def write_coco_keypoints(images: list[CocoImage], path: str | os.PathLike, *, threshold: float = 0.0) -> Path:
    """Write ``images`` as a COCO keypoint file (atomically); points with score <= ``threshold``
    are written as unlabelled (``v = 0``) and people with no point left are dropped."""
    records, annotations = [], []
    for index, image in enumerate(images):
        image_id = image.image_id or index + 1
        records.append({"id": image_id, "file_name": image.file_name, "width": int(image.size[0]),
                        "height": int(image.size[1])})
        for points, scores in zip(image.keypoints, image.scores):
            if (scores > threshold).any():
                annotations.append(_annotation(points, scores, threshold, image_id, len(annotations) + 1))
    data = {"images": records, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": list(COCO_KEYPOINT_NAMES), "skeleton": [list(e) for e in COCO_SKELETON]}]}
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data))
    return path


def sequence_to_coco_images(seq, files: list, source_sizes: list[tuple[int, int]]) -> list[CocoImage]:
    """The frames of ``seq`` extracted from an image folder (letterboxed onto its canvas) as
    :class:`CocoImage` s in each image's own pixels; ``files`` and ``source_sizes`` in frame order."""
    from holdpose.io.video import canvas_to_image

    if len(files) != seq.num_frames:
        raise HoldposeError(f"{len(files)} images for {seq.num_frames} pose frames")
    out = []
    for t, (file, size) in enumerate(zip(files, source_sizes)):
        slots = seq.track_ids[t] >= 0
        points = canvas_to_image(seq.keypoints[t, slots], size, seq.size).astype(np.float32)
        out.append(CocoImage(Path(file).name, tuple(size), points, seq.scores[t, slots], t + 1))
    return out


def export_image_folder(seq, folder: str | os.PathLike, output: str | os.PathLike, *, threshold: float = 0.3) -> Path:
    """Write the poses ``seq`` extracted from the image folder ``folder`` (one frame per image,
    in name order) as a COCO keypoint file ``output``, in each image's own pixels."""
    from holdpose.io.video import FrameSource, read_image

    files = FrameSource(folder).files
    sizes = [read_image(file).shape[1::-1] for file in files]  # as extraction read them (EXIF orientation applied)
    return write_coco_keypoints(sequence_to_coco_images(seq, files, sizes), output, threshold=threshold)
