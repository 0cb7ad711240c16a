"""HumanSD-style pose images (the ``humansd`` style), as HumanSD and Stable-Pose train on them.

COCO-17 body points only, on a black canvas; 16 limbs, each a ``cv2.line`` of width 10 and a
filled disk of radius 5 at both ends, drawn limb by limb in order, so a later limb covers an
earlier one where they cross. Limb ``i`` has seaborn's ``"hls"`` palette colour:
``hls_to_rgb((i/16 + 0.01) mod 1, 0.6, 0.65)`` scaled by 255 and truncated. A limb is drawn
when both its points score above 0.02; pixel positions are truncated (``int``), as in
Stable-Pose's ``ldm/data/dataset_pose.py``. There is no shoulder-shoulder or hip-hip limb.
The network sees the image scaled to [-1, 1] (:func:`pose_image_tensor_values`).
"""

from __future__ import annotations

import colorsys
from typing import Iterator

import numpy as np

from holdpose.sequence import PoseSequence

# COCO-17 index pairs (nose 0, eyes 1-2, ears 3-4, shoulders 5-6, elbows 7-8, wrists 9-10, hips 11-12,
# knees 13-14, ankles 15-16), in drawing order
HUMANSD_LIMBS = ((0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10), (5, 11),
                 (6, 12), (11, 13), (12, 14), (13, 15), (14, 16))
LINE_WIDTH = 10
DISK_RADIUS = LINE_WIDTH // 2
SCORE_THRESHOLD = 0.02
MAX_PEOPLE = 10  # the official data loader draws at most this many people
BODY_POINTS = 17


def hls_palette(count: int, hue_offset: float = 0.01, lightness: float = 0.6, saturation: float = 0.65) -> np.ndarray:
    """seaborn's ``color_palette("hls", count)`` as ``float [count, 3]`` RGB in [0, 1]."""
    hues = (np.arange(count) / count + hue_offset) % 1.0
    return np.array([colorsys.hls_to_rgb(h, lightness, saturation) for h in hues])


LIMB_COLORS = tuple(tuple(int(255 * c) for c in rgb) for rgb in hls_palette(len(HUMANSD_LIMBS)))


def draw_humansd(keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int], *,
                 threshold: float = SCORE_THRESHOLD, max_people: int = MAX_PEOPLE) -> np.ndarray:
    """One pose image ``uint8 [H, W, 3]`` (``size`` = (width, height)) of people ``[P, K, 2]``
    pixels with scores ``[P, K]``; only the first 17 points (COCO body) are read, and at most
    ``max_people`` people with any point above ``threshold``."""
    import cv2

    width, height = size
    canvas = np.zeros((height, width, 3), np.uint8)
    drawn_people = 0
    for points, point_scores in zip(np.asarray(keypoints)[:, :BODY_POINTS], np.asarray(scores)[:, :BODY_POINTS]):
        present = point_scores > threshold
        if not present.any():
            continue
        if drawn_people == max_people:
            break
        drawn_people += 1
        pixels = [(int(x), int(y)) for x, y in points.tolist()]
        for (a, b), color in zip(HUMANSD_LIMBS, LIMB_COLORS):
            if present[a] and present[b]:
                cv2.line(canvas, pixels[a], pixels[b], color, LINE_WIDTH)
                cv2.circle(canvas, pixels[a], DISK_RADIUS, color, -1)
                cv2.circle(canvas, pixels[b], DISK_RADIUS, color, -1)
    return canvas


def render_humansd_maps(seq: PoseSequence, size: tuple[int, int] | None = None, *,
                        threshold: float = SCORE_THRESHOLD) -> Iterator[np.ndarray]:
    """One HumanSD pose image per frame of ``seq``, on ``size`` (default: its canvas; the
    keypoints are scaled to it). Empty person slots draw nothing."""
    size = tuple(size or seq.size)
    scale = np.array(size, np.float64) / np.array(seq.size, np.float64)
    for t in range(seq.num_frames):
        scores = np.where(seq.track_ids[t, :, None] >= 0, seq.scores[t], 0)
        yield draw_humansd(seq.keypoints[t] * scale, scores, size, threshold=threshold)


def pose_image_tensor_values(image: np.ndarray) -> np.ndarray:
    """``uint8 [..., 3]`` pose image -> float32 in [-1, 1] (black background is -1), the
    network's input."""
    return np.asarray(image, np.float32) / 255 * 2 - 1  # the official loader's arithmetic
