"""The one interface every pose detector implements.

A detector maps an RGB image to the people in it, in COCO-WholeBody 133:

    keypoints, scores = detector(image)            # whole image, bottom-up
    keypoints, scores = detector.detect_in_boxes(image, boxes)   # top-down

``image`` is ``uint8 [H, W, 3]`` RGB; ``keypoints`` float32 ``[P, 133, 2]`` in pixels
of ``image``; ``scores`` float32 ``[P, 133]`` in [0, 1] (0: not found); ``boxes``
float ``[N, 4]`` as (x0, y0, x1, y1) pixels, and the result has one row per box.
Detectors are set up once (models loaded in ``__init__``) and called per frame;
``close()`` frees native resources.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from holdpose.errors import require

NUM_KEYPOINTS = 133


def no_people() -> tuple[np.ndarray, np.ndarray]:
    """The empty detection result."""
    return np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32)


def expand_box(box, factor: float, size: tuple[int, int] | None = None, *, square: bool = False) -> np.ndarray:
    """Scale an (x0, y0, x1, y1) box about its centre; optionally make it square and clip to ``size``."""
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w, half_h = (x1 - x0) * factor / 2, (y1 - y0) * factor / 2
    if square:
        half_w = half_h = max(half_w, half_h)
    out = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    if size is not None:
        out = np.clip(out, 0, [size[0], size[1], size[0], size[1]])
    return out


# A character's photo is not a driving pose: a limb it shows dimly (an arm behind a held helmet, a hand
# at the photo's edge) is still where the detector puts it, and the puppet needs it to move that limb;
# MediaPipe's visibility for such a wrist varies from 0.1 to 0.35 with the photo's size. Points outside
# the photo stay missing (nothing of them can be moved).
REFERENCE_MIN_VISIBILITY = 0.1


def drop_unseen(keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int], *, min_score: float) -> np.ndarray:
    """Scores ``[..., K]`` with every point the image does not show set to 0 (missing).

    A point is unseen when it lies outside the image (``size`` = (width, height) px;
    x in [0, width), y in [0, height)) or its score is below ``min_score``. Models
    extrapolate such points (MediaPipe places shoulders and elbows below a talking
    head's frame with confidence); kept as present they become limbs nobody moved.
    ``keypoints`` ``[..., K, 2]`` px are left as they are.
    """
    width, height = size
    x, y = keypoints[..., 0], keypoints[..., 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return np.where(inside & (scores >= min_score), scores, 0).astype(np.float32)


class PoseDetector:
    """Base class: subclasses implement :meth:`__call__` and :meth:`detect_in_boxes`."""

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def detect_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def import_mediapipe():
    """Import mediapipe without the 0.8 s it spends importing matplotlib.pyplot.

    ``mediapipe.python.solutions.drawing_utils`` imports pyplot at module level for a 3-D
    plotting helper holdpose never calls; that is more than half of mediapipe's import
    time, paid by every extraction worker. A placeholder module stands in for pyplot
    while mediapipe loads and is removed afterwards, so a later ``import
    matplotlib.pyplot`` (holdpose's own plots) loads the real one.
    """
    if "mediapipe" in sys.modules:
        return sys.modules["mediapipe"]
    placeholder = None
    if "matplotlib.pyplot" not in sys.modules:
        placeholder = types.ModuleType("matplotlib.pyplot")
        placeholder.__doc__ = "placeholder: holdpose does not use mediapipe's plotting helpers"
        sys.modules["matplotlib.pyplot"] = placeholder
    try:
        return require("mediapipe", package="mediapipe==0.10.21")
    finally:
        if placeholder is not None and sys.modules.get("matplotlib.pyplot") is placeholder:
            del sys.modules["matplotlib.pyplot"]


def square_windows(width: int, height: int, overlap: float = 0.5) -> list[tuple[int, int, int, int]]:
    """Square windows with the image's short side, sliding along the long side with ``overlap``."""
    side = min(width, height)
    long_side = max(width, height)
    if long_side <= side * 1.1:
        return []
    count = int(np.ceil((long_side - side) / (side * (1 - overlap)))) + 1
    starts = np.linspace(0, long_side - side, count).round().astype(int)
    if width >= height:
        return [(int(s), 0, int(s) + side, height) for s in starts]
    return [(0, int(s), width, int(s) + side) for s in starts]
