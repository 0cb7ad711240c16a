"""MediaPipe holistic: body, hands and face, offline (the models ship in the mediapipe wheel).

Only ``model_complexity=1`` is usable offline: 0 and 2 download their models on first use.

MediaPipe holistic finds one person per call. For several people, :meth:`__call__`
repeats it: find the most salient person, paint their box over with the image's
mean colour, look again, until ``max_people`` are found or nobody is left. Given
boxes (:meth:`detect_in_boxes`), it runs once per enlarged crop.

Presence: MediaPipe always returns all 33 pose landmarks, guessing the ones it cannot
see (below a talking head's frame, behind the body). By default a landmark whose
visibility (or presence, when the graph fills it in) is under ``min_visibility``, or
that falls outside the image, is returned missing (score 0); ``keep_offscreen=True``
(``holdpose extract --keep-offscreen``) keeps MediaPipe's guesses with their scores.
"""

from __future__ import annotations

import logging
import sys
import types

import numpy as np

from holdpose.convert import mediapipe_to_wholebody
from holdpose.detect.base import PoseDetector, drop_unseen, expand_box, no_people
from holdpose.errors import require
from holdpose.quiet import native_stderr_silenced
from holdpose.skeleton import MEDIAPIPE_POSE_FOR_COCO_BODY

logger = logging.getLogger(__name__)

BODY = slice(0, 17)


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


def _landmarks(landmark_list, width: int, height: int) -> np.ndarray | None:
    if landmark_list is None:
        return None
    return np.array([(p.x * width, p.y * height) for p in landmark_list.landmark], np.float32)


class MediaPipeDetector(PoseDetector):
    """MediaPipe holistic as a holdpose detector.

    Args:
        max_people: most people :meth:`__call__` returns per image.
        video: frames come from one video in order. With one person this uses
            MediaPipe's tracking mode (the landmarks of one frame seed the next,
            skipping person detection), which is faster and steadier.
        min_detection_confidence, min_tracking_confidence: MediaPipe's thresholds.
        erase_padding: how far beyond a found person's keypoint box (as a fraction
            of its size) is painted over before looking for the next person.
        keep_offscreen: keep landmarks that are outside the image or barely visible
            (MediaPipe's guesses) instead of returning them missing.
        min_visibility: a pose landmark with a lower visibility/presence is missing.
            :data:`holdpose.detect.base.REFERENCE_MIN_VISIBILITY` is the setting for a character's photo.
    """

    def __init__(self, *, max_people: int = 1, video: bool = False, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, erase_padding: float = 0.1, segmentation: bool = False,
                 keep_offscreen: bool = False, min_visibility: float = 0.5):
        if max_people < 1:
            raise ValueError(f"max_people must be at least 1, got {max_people}")
        mp = import_mediapipe()
        self.max_people = max_people
        self.erase_padding = erase_padding
        self.keep_offscreen, self.min_visibility = keep_offscreen, min_visibility
        self._holistic_cls = mp.solutions.holistic.Holistic
        self._options = dict(model_complexity=1, min_detection_confidence=min_detection_confidence,
                             min_tracking_confidence=min_tracking_confidence)
        self._tracking = video and max_people == 1
        # With several people, the segmentation mask says which pixels to paint over.
        with native_stderr_silenced():
            self._model = self._holistic_cls(static_image_mode=not self._tracking,
                                             enable_segmentation=segmentation or max_people > 1, **self._options)
        self.last_mask = None  # person mask [H, W] in 0..1 of the last call, when segmentation is on
        self.last_depth = None  # [133] MediaPipe z of the body points (smaller is nearer), NaN elsewhere

    def close(self) -> None:
        self._model.close()

    def detect_one(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The most salient person in ``image``: ``(keypoints [133, 2], scores [133])``, or None.
        Points ``image`` does not show are missing unless ``keep_offscreen``."""
        found = self._detect_raw(image)
        return None if found is None else (found[0], self._seen(*found, image))

    def _seen(self, keypoints: np.ndarray, scores: np.ndarray, image: np.ndarray) -> np.ndarray:
        """``scores`` with the points ``image`` does not show set to 0, unless ``keep_offscreen``."""
        if self.keep_offscreen:
            return scores
        # Hands and face carry score 1 (MediaPipe gives them no per-point confidence),
        # so the threshold acts on the body's visibility and the frame test on all.
        return drop_unseen(keypoints, scores, (image.shape[1], image.shape[0]), min_score=self.min_visibility)

    def _detect_raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`detect_one` with MediaPipe's guesses kept (scores = visibility)."""
        h, w = image.shape[:2]
        with native_stderr_silenced():
            result = self._model.process(np.ascontiguousarray(image))
        self.last_mask = result.segmentation_mask
        self.last_depth = None
        if result.pose_landmarks is None:
            return None
        visibility = np.array([_visibility(p) for p in result.pose_landmarks.landmark], np.float32)
        depth = np.full(133, np.nan, np.float32)
        depth[:17] = np.array([p.z for p in result.pose_landmarks.landmark], np.float32)[MEDIAPIPE_POSE_FOR_COCO_BODY]
        self.last_depth = depth
        return mediapipe_to_wholebody(
            pose=_landmarks(result.pose_landmarks, w, h), pose_scores=np.clip(visibility, 0, 1),
            left_hand=_landmarks(result.left_hand_landmarks, w, h),
            right_hand=_landmarks(result.right_hand_landmarks, w, h),
            face=_landmarks(result.face_landmarks, w, h),
        )

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.max_people == 1:
            found = self.detect_one(image)
            return no_people() if found is None else (found[0][None], found[1][None])
        h, w = image.shape[:2]
        work = image.copy()
        fill = image.reshape(-1, 3).mean(0).astype(np.uint8)
        keypoints, scores, boxes = [], [], []
        # Look in the whole image, then in overlapping square windows, where small
        # people fill more of the detector's input.
        for x0, y0, x1, y1 in [(0, 0, w, h)] + _windows(w, h):
            for _ in range(self.max_people):
                if len(keypoints) == self.max_people:
                    break
                found = self._detect_raw(work[y0:y1, x0:x1])
                if found is None:
                    break
                kp = found[0] + np.array([x0, y0], np.float32)
                box = _body_box(kp, found[1])
                if box is None:
                    break
                self._paint_over(work[y0:y1, x0:x1], box - [x0, y0, x0, y0], fill)
                if any(_iou(box, other) > 0.5 for other in boxes):
                    continue  # painting over missed part of someone already found
                keypoints.append(kp)
                scores.append(found[1])
                boxes.append(box)
        if not keypoints:
            return no_people()
        keypoints = np.stack(keypoints)
        return keypoints, self._seen(keypoints, np.stack(scores), image)

    def _paint_over(self, image: np.ndarray, box: np.ndarray, fill: np.ndarray) -> None:
        """Paint the person just found (segmentation mask, grown a little, inside their
        enlarged box) with ``fill`` so the next search finds someone else."""
        import cv2

        h, w = image.shape[:2]
        x0, y0, x1, y1 = expand_box(box, 1 + 2 * self.erase_padding, (w, h)).astype(int)
        region = np.zeros((h, w), bool)
        region[y0:y1, x0:x1] = True
        if self.last_mask is not None:
            grow = max(3, int(0.05 * max(x1 - x0, y1 - y0))) | 1
            mask = cv2.dilate((self.last_mask > 0.5).astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0
            region &= mask
        image[region] = fill

    def detect_in_boxes(self, image: np.ndarray, boxes: np.ndarray, *, padding: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
        """One person per box, searched in the box enlarged ``padding`` times (MediaPipe needs context)."""
        h, w = image.shape[:2]
        keypoints = np.zeros((len(boxes), 133, 2), np.float32)
        scores = np.zeros((len(boxes), 133), np.float32)
        for i, box in enumerate(np.asarray(boxes, np.float64)):
            x0, y0, x1, y1 = expand_box(box, padding, (w, h), square=True).round().astype(int)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            found = self._detect_raw(image[y0:y1, x0:x1])
            if found is not None:
                keypoints[i] = found[0] + np.array([x0, y0], np.float32)
                scores[i] = found[1]
        return keypoints, self._seen(keypoints, scores, image)


def _visibility(landmark) -> float:
    """A landmark's visibility, or its presence when that is lower (the legacy holistic
    graph leaves presence unset, 0, so it is used only when set)."""
    if landmark.HasField("presence"):
        return min(landmark.visibility, landmark.presence)
    return landmark.visibility


def _windows(width: int, height: int, overlap: float = 0.5) -> list[tuple[int, int, int, int]]:
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


def _body_box(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3) -> np.ndarray | None:
    """(x0, y0, x1, y1) around the present points, body points preferred."""
    present = scores > min_score
    if present[BODY].sum() >= 2:
        present[17:] = False
    if present.sum() < 2:
        return None
    xy = keypoints[present]
    return np.concatenate([xy.min(0), xy.max(0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
