"""Every person in a frame at once: MediaPipe's own person detector, run directly.

MediaPipe Pose finds one person per call: its graph runs the BlazePose person detector
(``pose_detection.tflite``, shipped in the mediapipe wheel), which scores thousands of
candidate boxes, and keeps only the best. Here the same model is run through a TFLite
interpreter from PyPI (``ai-edge-litert``, or ``tflite-runtime``), its raw output decoded
with the SSD anchors MediaPipe's graph configures (``mediapipe/modules/pose_detection/
pose_detection_cpu.pbtxt``) and a non-maximum suppression of its own, so all candidates of a
frame come out of one pass, each with the region of interest MediaPipe's pose landmark
model expects (``pose_detection_to_roi.pbtxt``).

Without an interpreter, :func:`interpreter_available` is False and callers fall back to
searching person by person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

INPUT_SIDE = 224  # the detector's square input, px
# SsdAnchorsCalculator options of pose_detection_cpu.pbtxt: five layers, the last three
# sharing stride 32; one aspect ratio plus the interpolated one, fixed anchor size.
STRIDES = (8, 16, 32, 32, 32)
ANCHORS_PER_LAYER = 2
NUM_KEYPOINTS = 4  # 0 mid-hip, 1 full-body size/rotation point, 2 mid-shoulder, 3 upper-body point
ROI_SCALE = 1.25  # RectTransformationCalculator: margin the landmark model was trained with


def _import_interpreter():
    """The TFLite ``Interpreter`` class of an installed runtime, or None."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return None
    return Interpreter


def interpreter_available() -> bool:
    """Whether a TFLite interpreter is installed (``pip install ai-edge-litert``)."""
    return _import_interpreter() is not None


def model_path() -> Path:
    """``pose_detection.tflite`` inside the installed mediapipe wheel."""
    from holdpose.detect.base import import_mediapipe

    return Path(import_mediapipe().__path__[0]) / "modules" / "pose_detection" / "pose_detection.tflite"


@lru_cache(maxsize=1)
def anchor_centres() -> np.ndarray:
    """SSD anchor centres ``[2254, 2]`` as (x, y) in [0, 1] of the detector input, in the
    model's output order: layer groups of equal stride, then rows, columns, anchors."""
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        group = 1
        while layer + group < len(STRIDES) and STRIDES[layer + group] == stride:
            group += 1
        side = int(np.ceil(INPUT_SIDE / stride))
        ys, xs = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], -1)
        centres.append(np.repeat(grid, ANCHORS_PER_LAYER * group, axis=0))
        layer += group
    return np.concatenate(centres).astype(np.float32)


@dataclass
class Candidates:
    """People found in one image: ``scores [N]``, face ``boxes [N, 4]`` (x0, y0, x1, y1) px and
    the detector's ``keypoints [N, 4, 2]`` px (mid-hip, body size/rotation point, mid-shoulder,
    upper-body point), best score first."""

    scores: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index) -> "Candidates":
        return Candidates(self.scores[index], self.boxes[index], self.keypoints[index])

    @staticmethod
    def concatenate(parts: list["Candidates"]) -> "Candidates":
        if not parts:
            return Candidates(np.zeros(0, np.float32), np.zeros((0, 4), np.float32),
                              np.zeros((0, NUM_KEYPOINTS, 2), np.float32))
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("scores", "boxes", "keypoints")))

    def rois(self) -> np.ndarray:
        """MediaPipe's pose region per candidate ``[N, 4]`` (see :func:`pose_regions`)."""
        return pose_regions(self.keypoints[:, 0], self.keypoints[:, 1])


def pose_regions(hip: np.ndarray, top: np.ndarray) -> np.ndarray:
    """MediaPipe's pose regions ``[N, 4]`` = (centre x, centre y, side, rotation) px and radians,
    from a mid-hip ``hip [N, 2]`` and the size/rotation point ``top [N, 2]`` px (the detector's
    keypoints 0 and 1, or the landmark model's two auxiliary landmarks): a square centred on the
    hip, 2 x 1.25 x their distance wide, turned so that hip-to-top points up."""
    delta = np.asarray(top, np.float32) - hip
    side = 2 * ROI_SCALE * np.hypot(delta[:, 0], delta[:, 1])
    rotation = np.pi / 2 - np.arctan2(-delta[:, 1], delta[:, 0])
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    return np.stack([hip[:, 0], hip[:, 1], side, rotation], -1).astype(np.float32)


def non_max_suppression(found: Candidates, face_tolerance: float = 0.03, hip_tolerance: float = 0.05) -> Candidates:
    """The best remaining candidate suppresses every other that is the same person: face box
    centre within ``face_tolerance`` and mid-hip within ``hip_tolerance`` x its region's side
    (about 1.5 x the body's height; a few px for one person seen in two passes, tens for two
    people one behind the other). Best first.

    MediaPipe's graph instead averages all candidates whose face boxes overlap by IoU 0.3
    into the best, which suits the one person it keeps but would blend two people standing
    close into one skeleton between them. Box overlap does not tell passes at different
    scales apart either: the decoded boxes keep one size in the detector's input whatever the
    scale, while their centres and the keypoints agree to a few pixels.
    """
    order = np.argsort(-found.scores, kind="stable")
    found = found.take(order)
    rois = found.rois()
    faces = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    side = rois[:, 2:3]
    same = ((np.linalg.norm(faces[:, None] - faces[None], axis=-1) < face_tolerance * side)
            & (np.linalg.norm(rois[:, None, :2] - rois[None, :, :2], axis=-1) < hip_tolerance * side))
    remaining = np.ones(len(order), bool)
    kept = []
    for i in range(len(order)):
        if remaining[i]:
            kept.append(i)
            remaining &= ~same[i]
    return found.take(np.array(kept, int))


class PersonDetector:
    """BlazePose's person detector through a TFLite interpreter: every candidate of an image.

    Args:
        min_score: candidates scoring lower are dropped. MediaPipe keeps its single best;
            0.3 keeps the people that score low in a crowd (the landmark model's own presence
            test then rejects what is not a person).
        windows: also look in overlapping square windows of an elongated image, where small
            people fill more of the 224-px input.
        threads: interpreter threads (extraction already runs one worker per core).
    """

    def __init__(self, *, min_score: float = 0.3, windows: bool = True, threads: int = 1):
        interpreter_class = _import_interpreter()
        if interpreter_class is None:
            raise RuntimeError("no TFLite interpreter installed; pip install ai-edge-litert")
        from holdpose.quiet import native_stderr_silenced

        with native_stderr_silenced():
            self._interpreter = interpreter_class(model_path=str(model_path()), num_threads=threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._regressors, self._classifiers = outputs[0]["index"], outputs[1]["index"]
        self.min_score, self.windows = min_score, windows

    def __call__(self, image: np.ndarray, *, windows: bool | None = None) -> Candidates:
        """Candidates in ``image`` (``uint8 [H, W, 3]`` RGB), merged over the whole image and, unless
        ``windows`` (default: as constructed) is False, its windows."""
        import cv2

        from holdpose.detect.base import square_windows

        h, w = image.shape[:2]
        windows = square_windows(w, h) if (self.windows if windows is None else windows) else []
        # One downscale serves every pass: windows are cut from it at their own scale, the
        # whole image is shrunk further from it.
        scale = min(1.0, INPUT_SIDE / (min(w, h) if windows else max(w, h)))
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        found = [self._detect_region(small, scale, (0, 0, w, h))]
        found += [self._detect_region(small, scale, window) for window in windows]
        return non_max_suppression(Candidates.concatenate(found))

    def _detect_region(self, small: np.ndarray, scale: float, region: tuple[int, int, int, int]) -> Candidates:
        """Candidates in ``region`` = (x0, y0, x1, y1) px of the image that ``small`` is ``scale``
        times; in pixels of that image."""
        import cv2

        x0, y0, x1, y1 = region
        crop = small[round(y0 * scale):round(y1 * scale), round(x0 * scale):round(x1 * scale)]
        shrink = min(1.0, INPUT_SIDE / max(crop.shape[:2]))
        if shrink < 1:
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * shrink)), max(1, round(crop.shape[0] * shrink))),
                              interpolation=cv2.INTER_AREA)
        to_input = scale * crop.shape[1] / max(1, round(x1 * scale) - round(x0 * scale))  # image px -> input px
        # Letterboxed in the centre, black borders, values in [-1, 1] (ImageToTensorCalculator).
        pad_x, pad_y = (INPUT_SIDE - crop.shape[1]) // 2, (INPUT_SIDE - crop.shape[0]) // 2
        tensor = np.full((1, INPUT_SIDE, INPUT_SIDE, 3), -1, np.float32)
        tensor[0, pad_y:pad_y + crop.shape[0], pad_x:pad_x + crop.shape[1]] = crop / 127.5 - 1
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._regressors)[0]
        logits = np.clip(self._interpreter.get_tensor(self._classifiers)[0, :, 0], -100, 100)
        keep = logits > np.log(self.min_score / (1 - self.min_score))  # sigmoid(logit) > min_score
        if not keep.any():
            return Candidates.concatenate([])
        raw, anchors = raw[keep], anchor_centres()[keep]
        to_image = lambda xy: (xy * INPUT_SIDE - [pad_x, pad_y]) / to_input + [x0, y0]  # noqa: E731
        centre = to_image(raw[:, 0:2] / INPUT_SIDE + anchors)
        half = raw[:, 2:4] / to_input / 2
        keypoints = to_image(raw[:, 4:12].reshape(-1, NUM_KEYPOINTS, 2) / INPUT_SIDE + anchors[:, None])
        return Candidates(1 / (1 + np.exp(-logits[keep])), np.concatenate([centre - half, centre + half], -1),
                          keypoints.astype(np.float32))
