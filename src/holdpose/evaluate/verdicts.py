"""Per-frame verdicts: does this one frame hold its target pose?

:func:`judge_pose` compares the poses re-detected on a frame with the frame's target
people and says, per frame, whether the pose *drifted*:

- PCK@0.05: the fraction of the target's visible body points (COCO 0-16) that the matched
  detection places within 0.05 x the target person's height;
- the worst limb angle: for each of the eight limb bones (upper arms, forearms, thighs,
  shins) present in both, the angle between the target's bone and the detected one, in
  degrees; the largest is the frame's;
- hands and face: the mean distance of their points present in both, in person heights
  (reported; a threshold is optional, since hands are small and detectors miss them).

A frame drifts when a target person is not detected at all, when its PCK@0.05 is below
``min_pck`` (default 0.9), or when a threshold given for the limb angle or hands/face is
exceeded. With several target people the frame takes the worst person's values.
:class:`FrameJudge` holds a detector (the same choice as ``holdpose evaluate``) and
judges frames one at a time, in any order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.evaluate.adherence import BODY, DEFAULT_MIN_SCORE, box_area_height, match_frame, person_boxes
from holdpose.evaluate.keypoints import oks_matrix
from holdpose.skeleton import COCO_WHOLEBODY

PCK_ALPHA = 0.05
LIMBS = {  # bone name -> (proximal, distal) COCO-WholeBody indices
    name: (COCO_WHOLEBODY.index(a), COCO_WHOLEBODY.index(b))
    for name, (a, b) in {
        "left_upper_arm": ("left_shoulder", "left_elbow"), "right_upper_arm": ("right_shoulder", "right_elbow"),
        "left_forearm": ("left_elbow", "left_wrist"), "right_forearm": ("right_elbow", "right_wrist"),
        "left_thigh": ("left_hip", "left_knee"), "right_thigh": ("right_hip", "right_knee"),
        "left_shin": ("left_knee", "left_ankle"), "right_shin": ("right_knee", "right_ankle"),
    }.items()
}
HANDS = slice(91, 133)
FACE = slice(23, 91)


@dataclass(frozen=True)
class Thresholds:
    """When a frame drifts. ``min_pck``: PCK@0.05 below this drifts (0 turns it off);
    ``max_limb_error``: a limb bone more than this many degrees off drifts (None: off);
    ``max_part_error``: hands or face points off by more than this many person heights on
    average drift (None: off)."""

    min_pck: float = 0.9
    max_limb_error: float | None = None
    max_part_error: float | None = None

    def __post_init__(self):
        if not (math.isfinite(self.min_pck) and 0 <= self.min_pck <= 1):
            raise HoldposeError(f"min_pck (--min-pck) must be in [0, 1], got {self.min_pck}")
        if self.max_limb_error is not None and not (math.isfinite(self.max_limb_error)
                                                    and 0 < self.max_limb_error <= 180):
            raise HoldposeError(f"max_limb_error (--max-limb-error) must be in (0, 180] degrees, got "
                                f"{self.max_limb_error}")
        if self.max_part_error is not None and not (math.isfinite(self.max_part_error) and self.max_part_error > 0):
            raise HoldposeError(f"max_part_error must be > 0 person heights, got {self.max_part_error}")


@dataclass
class Verdict:
    """One frame's verdict (NaN where there was nothing to measure).

    Attributes:
        drift: the frame does not hold its pose (see :class:`Thresholds`).
        reason: why it drifts, one phrase ("" when it holds).
        pck: PCK@0.05 of the body; limb_error: the worst limb's angle error in degrees,
        worst_limb: its name; hand_error, face_error: mean error in person heights;
        detected: target people found / target people.
    """

    drift: bool
    reason: str
    pck: float
    limb_error: float
    worst_limb: str | None
    hand_error: float
    face_error: float
    detected: str

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def judge_pose(det_keypoints: np.ndarray, det_scores: np.ndarray, tgt_keypoints: np.ndarray,
               tgt_scores: np.ndarray, thresholds: Thresholds = Thresholds(), *,
               min_score: float = DEFAULT_MIN_SCORE) -> Verdict:
    """The verdict on one frame: detections ``[N, 133, 2]`` / ``[N, 133]`` against target
    people ``[P, 133, 2]`` / ``[P, 133]`` (pixels of the same canvas)."""
    tgt_present = np.asarray(tgt_scores) > min_score
    keep = tgt_present[:, BODY].any(-1)
    tgt_kp, tgt_present = np.asarray(tgt_keypoints, np.float64)[keep], tgt_present[keep]
    if not len(tgt_kp):
        return Verdict(False, "", math.nan, math.nan, None, math.nan, math.nan, "0/0")
    det_present = np.asarray(det_scores) > min_score
    det_keep = det_present[:, BODY].any(-1) if len(det_present) else np.zeros(0, bool)
    det_kp = np.where(det_present[det_keep, :, None], np.asarray(det_keypoints, np.float64)[det_keep], np.nan)
    boxes = person_boxes(tgt_kp, tgt_present)
    areas = np.array([box_area_height(b)[0] for b in boxes])
    heights = np.array([box_area_height(b)[1] for b in boxes])
    sim = (np.nan_to_num(oks_matrix(det_kp[:, BODY], tgt_kp[:, BODY], tgt_present[:, BODY], areas), nan=0.0)
           if len(det_kp) else np.zeros((0, len(tgt_kp))))
    matched = {int(j): int(i) for i, j in match_frame(sim).pairs}
    people = [_person_errors(det_kp[matched[j]], tgt_kp[j], tgt_present[j], heights[j])
              for j in range(len(tgt_kp)) if j in matched]
    found = f"{len(people)}/{len(tgt_kp)}"
    if len(people) < len(tgt_kp):
        worst = min((p["pck"] for p in people), default=math.nan)
        return Verdict(True, f"{'nobody' if not people else 'a target person not'} detected", worst, math.nan, None,
                       math.nan, math.nan, found)
    pck = min(p["pck"] for p in people)
    limb = max(people, key=lambda p: -1 if math.isnan(p["limb_error"]) else p["limb_error"])
    hand = _nanmax([p["hand_error"] for p in people])
    face = _nanmax([p["face_error"] for p in people])
    reasons = []
    if pck < thresholds.min_pck:
        reasons.append(f"PCK@0.05 {pck:.2f} < {thresholds.min_pck:g}")
    if thresholds.max_limb_error is not None and limb["limb_error"] > thresholds.max_limb_error:
        reasons.append(f"{limb['worst_limb']} off by {limb['limb_error']:.0f} degrees")
    if thresholds.max_part_error is not None:
        for name, value in (("hands", hand), ("face", face)):
            if value > thresholds.max_part_error:
                reasons.append(f"{name} off by {value:.2f} person heights")
    return Verdict(bool(reasons), "; ".join(reasons), pck, limb["limb_error"], limb["worst_limb"], hand, face, found)


def _person_errors(det: np.ndarray, tgt: np.ndarray, visible: np.ndarray, height: float) -> dict:
    """PCK, worst limb angle, hand and face errors of one matched person."""
    dist = np.linalg.norm(det - tgt, axis=-1)  # NaN where the detection lacks the point
    body_visible = visible[BODY]
    hits = body_visible & (np.nan_to_num(dist[BODY], nan=np.inf) <= PCK_ALPHA * height)
    pck = hits.sum() / body_visible.sum() if body_visible.any() else math.nan
    worst, worst_limb = math.nan, None
    for name, (a, b) in LIMBS.items():
        if not (visible[a] and visible[b]) or not np.isfinite(det[[a, b]]).all():
            continue
        error = angle_between(tgt[b] - tgt[a], det[b] - det[a])
        if math.isnan(worst) or error > worst:
            worst, worst_limb = error, name
    return {"pck": float(pck), "limb_error": worst, "worst_limb": worst_limb,
            "hand_error": _mean_error(dist[HANDS], visible[HANDS], height),
            "face_error": _mean_error(dist[FACE], visible[FACE], height)}


def angle_between(u: np.ndarray, v: np.ndarray) -> float:
    """Unsigned angle between two 2-D vectors, degrees in [0, 180]; 0 for a zero-length one."""
    if not np.any(u) or not np.any(v):
        return 0.0
    return float(abs(math.degrees(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1]))))


def _mean_error(dist: np.ndarray, visible: np.ndarray, height: float) -> float:
    both = visible & np.isfinite(dist)
    return float(dist[both].mean() / height) if both.any() else math.nan


def _nanmax(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else math.nan


class FrameJudge:
    """Judges frames one at a time against their target poses, with a detector built once.

    ``detector``: "auto" / "mediapipe" / "dwpose" / a DetectorConfig (as ``holdpose evaluate``
    chooses it), or any callable ``image -> (keypoints [N, 133, 2], scores [N, 133])``.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, thresholds: Thresholds = Thresholds(), *, detector="auto", max_people: int = 1,
                 pose_model=None, det_model=None, min_score: float = DEFAULT_MIN_SCORE):
        self.thresholds = thresholds
        self.min_score = min_score
        if callable(detector) and not isinstance(detector, str):
            self._detector, self._owned = detector, False
        else:
            from holdpose.evaluate.adherence import choose_detector

            config, self.note = choose_detector(detector, max_people=max_people, pose_model=pose_model,
                                                det_model=det_model)
            self._detector, self._owned = config.build(video=False), True  # frames come in any order

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The people on ``frame``: ``keypoints [N, 133, 2]``, ``scores [N, 133]``."""
        return self._detector(frame)

    def __call__(self, frame: np.ndarray, tgt_keypoints: np.ndarray, tgt_scores: np.ndarray) -> Verdict:
        keypoints, scores = self.detect(frame)
        return judge_pose(keypoints, scores, tgt_keypoints, tgt_scores, self.thresholds, min_score=self.min_score)

    def close(self) -> None:
        if self._owned and hasattr(self._detector, "close"):
            self._detector.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
