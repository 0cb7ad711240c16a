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
import types

import numpy as np

from holdpose.convert import mediapipe_to_wholebody
from holdpose.detect.base import (PoseDetector, drop_unseen, expand_box, import_mediapipe,  # noqa: F401 (re-exported)
                                  no_people, square_windows)
from holdpose.errors import HoldposeError
from holdpose.quiet import native_stderr_silenced
from holdpose.skeleton import MEDIAPIPE_POSE_FOR_COCO_BODY

logger = logging.getLogger(__name__)

BODY = slice(0, 17)
FACE_LANDMARKS = slice(0, 11)  # MediaPipe pose landmarks of the face (nose, eyes, ears, mouth)
WINDOW_EVERY = 10  # frames between the person detector's looks into a video's windows
VIDEO_MIN_SCORE = 0.5  # least person-detector score of a new candidate in a video


def _landmark_region(result, width: int, height: int) -> np.ndarray:
    """The region ``(x0, y0, x1, y1)`` a person's own auxiliary landmarks give (mid-hip and the
    body's top), as MediaPipe's tracking takes it from one frame to the next."""
    from holdpose.detect.candidates import pose_regions

    hip, top = _landmarks(result.auxiliary_landmarks, width, height)[:2]
    return pose_regions(hip[None], top[None])[0]


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
        finder: how several people are found (and one person too small for MediaPipe's
            one-person graph, which shrinks the whole image to 224 px). "detector": MediaPipe's person detector once
            per image for every candidate, then holistic's landmark stages in each candidate's
            region (:mod:`holdpose.detect.candidates`; needs a TFLite interpreter, ``pip install
            ai-edge-litert``); "search": repeated paint-and-search with whole holistic calls;
            "auto" (default): "detector" when an interpreter is installed, else "search".
        hands_and_face: with the person detector, False finds the body alone, about three
            times faster per person (hands and face are then missing). Search always finds all.
    """

    def __init__(self, *, max_people: int = 1, video: bool = False, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, erase_padding: float = 0.1, segmentation: bool = False,
                 keep_offscreen: bool = False, min_visibility: float = 0.5, finder: str = "auto",
                 hands_and_face: bool = True):
        if max_people < 1:
            raise ValueError(f"max_people must be at least 1, got {max_people}")
        if finder not in ("auto", "detector", "search"):
            raise ValueError(f"finder must be auto, detector or search, got {finder!r}")
        mp = import_mediapipe()
        self.max_people = max_people
        self.erase_padding = erase_padding
        self.keep_offscreen, self.min_visibility = keep_offscreen, min_visibility
        self._holistic_cls = mp.solutions.holistic.Holistic
        self._options = dict(model_complexity=1, min_detection_confidence=min_detection_confidence,
                             min_tracking_confidence=min_tracking_confidence)
        self._tracking = video and max_people == 1
        self._segmentation = segmentation
        self._model = None  # holistic, built on first use
        self._finder = self._regions = None
        self._video, self._frames_seen = video, 0
        self._carried = np.zeros((0, 4), np.float32)  # regions of the previous frame's people (video)
        self._carried_faces = np.zeros((0, 2), np.float32)  # their face centres, px
        self._finder_choice, self._hands_and_face = finder, hands_and_face
        if max_people > 1:
            self._person_finder()
        self.last_mask = None  # person mask [H, W] in 0..1 of the last call, when segmentation is on
        self.last_depth = None  # [133] MediaPipe z of the body points (smaller is nearer), NaN elsewhere

    @property
    def finder(self) -> str:
        """How several people are found: "detector" or "search"."""
        return "search" if self._finder is None else "detector"

    def _person_finder(self) -> bool:
        """Build the person detector and region landmarker unless "search" was asked for or
        no TFLite interpreter is installed; whether they are there."""
        if self._finder is not None or self._finder_choice == "search":
            return self._finder is not None
        from holdpose.detect import candidates

        if not candidates.interpreter_available():
            if self._finder_choice == "detector":
                raise HoldposeError("finder 'detector' needs a TFLite interpreter; pip install ai-edge-litert")
            logger.info("no TFLite interpreter (pip install ai-edge-litert): finding people one at a time")
            self._finder_choice = "search"
            return False
        self._finder = candidates.PersonDetector()
        self._regions = RegionLandmarker(hands_and_face=self._hands_and_face)
        return True

    def _holistic(self):
        if self._model is None:
            # Searching for several people paints each one found over, where their mask says.
            with native_stderr_silenced():
                self._model = self._holistic_cls(
                    static_image_mode=not self._tracking,
                    enable_segmentation=self._segmentation or (self.max_people > 1 and self._finder is None),
                    **self._options)
        return self._model

    def close(self) -> None:
        for model in (self._model, self._regions):
            if model is not None:
                model.close()

    def detect_one(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The most salient person in ``image``: ``(keypoints [133, 2], scores [133])``, or None.
        Points ``image`` does not show are missing unless ``keep_offscreen``."""
        found = self._detect_raw(image)
        if found is None and self._person_finder():
            # MediaPipe's one-person graph looks at the whole image shrunk to 224 px and misses
            # people much smaller than the frame; the person detector's windows find them.
            people = self._find_by_detector(image, limit=1)
            found = people[0] if people else None
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
        with native_stderr_silenced():
            result = self._holistic().process(np.ascontiguousarray(image))
        self.last_mask = result.segmentation_mask
        return self._wholebody(result, image)

    def _wholebody(self, result, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """A holistic result as COCO-WholeBody ``(keypoints [133, 2], scores [133])`` px, or None;
        sets :attr:`last_depth`."""
        h, w = image.shape[:2]
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
        people = self._find_by_detector(image) if self._finder is not None else self._find_by_search(image)
        if not people:
            return no_people()
        keypoints = np.stack([kp for kp, _ in people])
        return keypoints, self._seen(keypoints, np.stack([sc for _, sc in people]), image)

    def _find_by_detector(self, image: np.ndarray, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Landmarks in the region of every candidate, best first, up to ``limit`` people (default
        ``max_people``); a candidate whose landmarks land on a person already found is dropped.

        In a video, the people of the previous frame come first, in the regions their own
        landmarks give (how MediaPipe tracks one person), and the detector's candidates are
        added where nobody was. The detector is asked only when the people followed fall short
        of ``limit`` (someone new may be there, or someone followed was lost): in the whole frame,
        and in its windows (for small people) every ``WINDOW_EVERY`` frames; only its candidates
        scoring ``VIDEO_MIN_SCORE`` or more are tried.
        """
        limit = limit or self.max_people
        windows = not self._video or self._frames_seen % WINDOW_EVERY == 0
        self._frames_seen += 1
        tries = 2 * limit  # duplicates are dropped; do not try forever
        followed = self._carried[:tries]
        people = self._people_in(image, followed, [], limit)
        # The detector is asked only when the people followed do not fill the frame: with as
        # many as asked for, none of its candidates would be tried.
        if len(people) < limit:
            candidates = self._finder(image, windows=windows)
            if self._video:  # people stay followed once found, so only clear candidates are worth a look
                candidates = candidates.take(candidates.scores >= VIDEO_MIN_SCORE)
            fresh = ~_claimed(candidates, self._carried, self._carried_faces)
            people = self._people_in(image, candidates.rois()[fresh][:tries - len(followed)], people, limit)
        # Drop blends before following anyone into the next frame: a region that slid onto two
        # people standing close gives a skeleton made of pieces of both, and following it
        # would carry the blend on for many frames.
        people = _without_blends(people)
        h, w = image.shape[:2]
        if self._video:  # the people found are followed into the next frame
            followed = [result for _, result in people if result.auxiliary_landmarks is not None]
            self._carried = np.array([_landmark_region(r, w, h) for r in followed], np.float32).reshape(-1, 4)
            self._carried_faces = np.array([_landmarks(r.pose_landmarks, w, h)[FACE_LANDMARKS].mean(0)
                                            for r in followed], np.float32).reshape(-1, 2)
        return [found for found, _ in people]

    def _people_in(self, image: np.ndarray, regions: np.ndarray, people: list, limit: int) -> list:
        """``people`` (``((keypoints [133, 2], scores [133]), result)`` pairs) with the person in each
        of ``regions [N, 4]`` (:func:`holdpose.detect.candidates.pose_regions`) added, in order,
        until there are ``limit``; a region whose landmarks land on someone already there adds
        nobody."""
        people = list(people)
        h, w = image.shape[:2]
        for roi in regions:
            if len(people) == limit:
                break
            result = self._regions(image, roi)
            # In a still image, the detector's region (its mid-hip is pulled toward whoever stands
            # behind) is redone once from the landmarks it gave, as MediaPipe's tracking does
            # from frame to frame; in a video the next frame does that.
            if not self._video and result.auxiliary_landmarks is not None:
                result = self._regions(image, _landmark_region(result, w, h))
            found = self._wholebody(result, image)
            if found is None or any(_same_person(found, other) for other, _ in people):
                continue
            people.append((found, result))
        return people

    def _find_by_search(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Find the most salient person, paint them over, look again: in the whole image,
        then in overlapping square windows, where small people fill more of the input."""
        h, w = image.shape[:2]
        work = image.copy()
        fill = image.reshape(-1, 3).mean(0).astype(np.uint8)
        people, boxes = [], []
        for x0, y0, x1, y1 in [(0, 0, w, h)] + square_windows(w, h):
            for _ in range(self.max_people):
                if len(people) == self.max_people:
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
                people.append((kp, found[1]))
                boxes.append(box)
        return people

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


# Holistic's landmark stages without its person detection: pose landmarks in a given
# region (PoseLandmarkByRoiCpu, the stage MediaPipe runs after its detector), then hands and
# face from the pose as holistic_landmark_cpu does. All subgraphs ship in the wheel.
_BODY_NODES = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
output_stream: "POSE_LANDMARKS:pose_landmarks"
output_stream: "AUXILIARY_LANDMARKS:auxiliary_landmarks"
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:pose_landmarks"
  output_stream: "AUXILIARY_LANDMARKS:auxiliary_landmarks"
  output_stream: "WORLD_LANDMARKS:world_landmarks"
  output_stream: "SEGMENTATION_MASK:segmentation_mask"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
}
"""
_HAND_AND_FACE_NODES = """
output_stream: "LEFT_HAND_LANDMARKS:left_hand_landmarks"
output_stream: "RIGHT_HAND_LANDMARKS:right_hand_landmarks"
output_stream: "FACE_LANDMARKS:face_landmarks"
node {
  calculator: "HandLandmarksLeftAndRightCpu"
  input_stream: "IMAGE:image"
  input_stream: "POSE_LANDMARKS:pose_landmarks"
  output_stream: "LEFT_HAND_LANDMARKS:left_hand_landmarks"
  output_stream: "RIGHT_HAND_LANDMARKS:right_hand_landmarks"
}
node {
  calculator: "SplitNormalizedLandmarkListCalculator"
  input_stream: "pose_landmarks"
  output_stream: "face_landmarks_from_pose"
  options { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges { begin: 0 end: 11 } } }
}
node {
  calculator: "FaceLandmarksFromPoseCpu"
  input_stream: "IMAGE:image"
  input_stream: "FACE_LANDMARKS_FROM_POSE:face_landmarks_from_pose"
  output_stream: "FACE_LANDMARKS:face_landmarks"
  input_side_packet: "REFINE_LANDMARKS:refine_face_landmarks"
}
"""
_HAND_AND_FACE_OUTPUTS = ["left_hand_landmarks", "right_hand_landmarks", "face_landmarks"]


class RegionLandmarker:
    """MediaPipe holistic's landmarks of the person in a given region: body, hands and face,
    or with ``hands_and_face=False`` the body alone (a third of the cost)."""

    def __init__(self, *, hands_and_face: bool = True):
        import_mediapipe()
        from mediapipe.python.solution_base import SolutionBase

        self._outputs = ["pose_landmarks", "auxiliary_landmarks"]
        graph, side_inputs = _BODY_NODES, {"model_complexity": 1, "enable_segmentation": False}
        if hands_and_face:
            self._outputs += _HAND_AND_FACE_OUTPUTS
            graph += _HAND_AND_FACE_NODES
            side_inputs["refine_face_landmarks"] = False
        with native_stderr_silenced():
            self._graph = SolutionBase(graph_config=graph, side_inputs=side_inputs, outputs=self._outputs)

    def __call__(self, image: np.ndarray, roi: np.ndarray) -> types.SimpleNamespace:
        """Landmarks of ``image`` (``uint8 [H, W, 3]`` RGB) in ``roi`` = (centre x, centre y, side,
        rotation) px and radians (:meth:`holdpose.detect.candidates.Candidates.rois`): an object
        with ``pose_landmarks``, ``left_hand_landmarks``, ``right_hand_landmarks``,
        ``face_landmarks`` normalised to the image, each None when not found or not asked for,
        and ``auxiliary_landmarks`` (mid-hip and size point, for the next frame's region)."""
        from mediapipe.framework.formats import rect_pb2

        h, w = image.shape[:2]
        cx, cy, side, rotation = (float(v) for v in roi)
        rect = rect_pb2.NormalizedRect(x_center=cx / w, y_center=cy / h, width=side / w, height=side / h,
                                       rotation=rotation)
        with native_stderr_silenced():
            result = self._graph.process({"image": np.ascontiguousarray(image), "roi": rect})
        found = {name: None for name in _HAND_AND_FACE_OUTPUTS}
        found.update({name: getattr(result, name) for name in self._outputs})
        return types.SimpleNamespace(**found)

    def close(self) -> None:
        self._graph.close()


def _claimed(candidates, regions: np.ndarray, faces: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """Which ``candidates`` are people already followed: ``regions [M, 4]`` with their ``faces
    [M, 2]`` px. A candidate is theirs when its region's centre (mid-hip) or its face box's
    centre lies within ``tolerance`` x their region's side of theirs (about 30 px for a person
    400 px tall: someone standing beside them is tried). Both are asked because the detector,
    shown two people one behind the other, puts the front one's face right but their hip
    between the two."""
    claimed = np.zeros(len(candidates), bool)
    if not len(regions) or not len(candidates):
        return claimed
    reach = tolerance * regions[None, :, 2]
    hips = np.linalg.norm(candidates.rois()[:, None, :2] - regions[None, :, :2], axis=-1)
    face_centres = (candidates.boxes[:, :2] + candidates.boxes[:, 2:]) / 2
    face_distance = np.linalg.norm(face_centres[:, None] - faces[None], axis=-1)
    return ((hips < reach) | (face_distance < reach)).any(1)


def _same_person(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], tolerance: float = 0.05) -> bool:
    """Whether two detections ``(keypoints [133, 2], scores [133])`` are one person: their body
    points seen in both lie within ``tolerance`` x the body's size of each other on average.
    One person's landmarks from two nearby regions differ by ~1 % of their size; two people,
    even one just behind the other, by more."""
    both = (a[1][BODY] > 0.5) & (b[1][BODY] > 0.5)
    if both.sum() < 3:
        return False
    pa, pb = a[0][BODY][both], b[0][BODY][both]
    size = max(np.ptp(pa, 0).max(), np.ptp(pb, 0).max(), 1.0)
    return float(np.linalg.norm(pa - pb, axis=1).mean()) < tolerance * size


def _without_blends(people: list, reach: float = 0.1, least: int = 2) -> list:
    """``people`` (``((keypoints [133, 2], scores [133]), result)`` pairs found in one image) less
    the blends of two others: skeletons with at least ``least`` seen body points within ``reach``
    x their size of the same point of one other person, and as many of a second one. Someone
    standing beside another shares a point or so with them (a crossed wrist); a skeleton the
    landmark model puts together from two people standing close shares several with each.
    The clearest blend goes first, then the rest are judged again: a real person shares points
    with a blend of them, which must not count once the blend is gone."""
    people = list(people)
    while len(people) >= 3:
        second = [_shared_points([p[0] for p in people], index, reach)[-2] for index in range(len(people))]
        worst = int(np.argmax(second))
        if second[worst] < least:
            break
        del people[worst]
    return people


def _shared_points(found: list, index: int, reach: float) -> list[int]:
    """How many seen body points of ``found[index]`` ``(keypoints [133, 2], scores [133])`` lie
    within ``reach`` x its size of the same point of each other one, fewest first."""
    keypoints, scores = found[index]
    seen = scores[BODY] > 0.5
    if seen.sum() < 3:
        return [0, 0]
    points = keypoints[BODY]
    size = max(float(np.ptp(points[seen], 0).max()), 1.0)
    return sorted(int((seen & (other[1][BODY] > 0.5)
                       & (np.linalg.norm(points - other[0][BODY], axis=1) < reach * size)).sum())
                  for number, other in enumerate(found) if number != index)


def _visibility(landmark) -> float:
    """A landmark's visibility, or its presence when that is lower (the legacy holistic
    graph leaves presence unset, 0, so it is used only when set)."""
    if landmark.HasField("presence"):
        return min(landmark.visibility, landmark.presence)
    return landmark.visibility


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
