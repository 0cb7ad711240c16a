"""Stable-Pose's training data, in numpy: images with COCO keypoints, the paper's augmentations,
the HumanSD pose image, the coarse-to-fine masks and the loss weights (SEED_MODULES §1.7).

Augmentations (the official ``ldm/data/dataset_pose.py`` with albumentations): horizontal flip
(p 0.2), rotation (p 0.1, uniform in ±90°, reflected border), resize of the short side to the
resolution and a random square crop, colour jitter (p 0.4 one of a hue/saturation/value or an RGB
shift; p 0.2 brightness/contrast). One deliberate difference: a flip also swaps left and right
keypoint labels, so a flipped left arm keeps the left arm's colour (albumentations does not
relabel, which teaches the model that colours may lie).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.io.coco import read_coco_keypoints
from holdpose.render.humansd import draw_humansd
from holdpose.render.pose_masks import coarse_to_fine_masks
from holdpose.skeleton import COCO_WHOLEBODY

ALPHA = 5.0  # loss weight inside the fine mask
PROMPT_DROPOUT = 0.5
DEFAULT_PROMPT = "a photo of a person"


@dataclass
class Example:
    """One training image: ``image`` ``uint8 [H, W, 3]``, people ``[P, 133, 2]`` / ``[P, 133]``."""

    image: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    prompt: str
    name: str


def load_examples(images: str | os.PathLike, annotations: str | os.PathLike,
                  prompts: str | os.PathLike | None = None) -> list[Example]:
    """The annotated images of ``images`` (folder) listed in the COCO file ``annotations``;
    ``prompts`` is a JSON object ``{file_name: prompt}`` (missing names get :data:`DEFAULT_PROMPT`)."""
    from holdpose.io.video import read_image

    captions = {}
    if prompts is not None:
        try:
            captions = json.loads(Path(prompts).read_text())
            if not isinstance(captions, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            raise HoldposeError(f"{prompts}: not a prompt file ({err}); write a JSON object "
                                "{\"image.jpg\": \"a prompt\", ...}") from err
    out = []
    for record in read_coco_keypoints(annotations):
        path = Path(images) / record.file_name
        if not path.is_file():
            raise HoldposeError(f"{path}: listed in {annotations} but missing; give --images the folder that holds it")
        out.append(Example(read_image(path), record.keypoints, record.scores,
                           str(captions.get(record.file_name, DEFAULT_PROMPT)), record.file_name))
    if not out:
        raise HoldposeError(f"{annotations}: lists no images")
    return out


def _warp(image: np.ndarray, keypoints: np.ndarray, matrix: np.ndarray, size: tuple[int, int]):
    import cv2

    warped = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return warped, keypoints @ matrix[:, :2].T + matrix[:, 2]


def _color_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    out = image
    if rng.random() < 0.4:
        if rng.random() < 0.5:  # hue ±20, saturation ±30, value ±20 (OpenCV's 8-bit HSV units)
            hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.int16)
            hsv[..., 0] = (hsv[..., 0] + rng.integers(-20, 21)) % 180
            hsv[..., 1:] = np.clip(hsv[..., 1:] + [rng.integers(-30, 31), rng.integers(-20, 21)], 0, 255)
            out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        else:  # per-channel shift ±20
            out = np.clip(out.astype(np.int16) + rng.integers(-20, 21, 3), 0, 255).astype(np.uint8)
    if rng.random() < 0.2:  # brightness and contrast ±0.2
        alpha, beta = 1 + rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2) * 255
        out = np.clip(out.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    return out


def augment(example: Example, resolution: int, rng: np.random.Generator | None):
    """``(image uint8 [R, R, 3], keypoints [P, 133, 2], scores [P, 133])``: flipped, rotated,
    resized, cropped and colour-jittered with ``rng``; without ``rng`` only resized and
    centre-cropped (the evaluation view). Points that leave the crop get score 0."""
    import cv2

    image, points, scores = example.image, example.keypoints.astype(np.float64), example.scores.copy()
    height, width = image.shape[:2]
    if rng is not None and rng.random() < 0.2:
        image = image[:, ::-1]
        points = points[:, COCO_WHOLEBODY.flip_permutation()].copy()
        scores = scores[:, COCO_WHOLEBODY.flip_permutation()]
        points[..., 0] = width - 1 - points[..., 0]
    if rng is not None and rng.random() < 0.1:
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), rng.uniform(-90, 90), 1.0)
        image, points = _warp(np.ascontiguousarray(image), points, matrix, (width, height))
    scale = resolution / min(width, height)
    new_w, new_h = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    image = cv2.resize(np.ascontiguousarray(image), (new_w, new_h), interpolation=cv2.INTER_AREA)
    points = points * [new_w / width, new_h / height]
    if rng is None:
        x0, y0 = (new_w - resolution) // 2, (new_h - resolution) // 2
    else:
        x0, y0 = int(rng.integers(0, new_w - resolution + 1)), int(rng.integers(0, new_h - resolution + 1))
    image = image[y0: y0 + resolution, x0: x0 + resolution]
    points = points - [x0, y0]
    inside = (points >= 0).all(-1) & (points < resolution).all(-1)
    scores = np.where(inside, scores, 0).astype(np.float32)
    if rng is not None:
        image = _color_jitter(image, rng)
    return np.ascontiguousarray(image), points.astype(np.float32), scores


def pose_loss_weights(fine_masks: np.ndarray, alpha: float = ALPHA, channels: int = 4) -> np.ndarray:
    """``float32 [B, channels, h, w]`` = ``α·M + (1 − M)`` of fine masks ``[B, h, w]``: the
    weights of Stable-Pose's ε-loss (mean over everything = mean_b mean_chw, equal sizes)."""
    weights = alpha * fine_masks + (1.0 - fine_masks)
    return np.repeat(weights[:, None], channels, axis=1).astype(np.float32)


def training_view(example: Example, resolution: int, rng: np.random.Generator | None, *, cell: int,
                  mask_mode: str = "clean", prompt_dropout: float = PROMPT_DROPOUT) -> dict:
    """One example as the model trains on it: ``image`` ``uint8 [R, R, 3]``, ``pose`` (HumanSD image,
    ``uint8 [R, R, 3]``), ``masks`` ``float32 [2, R/cell, R/cell]`` (training threshold in the
    official mode) and ``prompt`` (dropped to "" with probability ``prompt_dropout`` when ``rng``)."""
    image, points, scores = augment(example, resolution, rng)
    pose = draw_humansd(points, scores, (resolution, resolution))
    masks = coarse_to_fine_masks(pose, mode=mask_mode, cell=cell, phase="train")
    prompt = "" if rng is not None and rng.random() < prompt_dropout else example.prompt
    return {"image": image, "pose": pose, "masks": masks, "prompt": prompt}

