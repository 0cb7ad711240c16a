"""evaluate/verdicts: per-frame verdicts with known answers, and on a real photo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.evaluate.verdicts import LIMBS, FrameJudge, Thresholds, judge_pose
from holdpose.skeleton import COCO_WHOLEBODY

IDX = COCO_WHOLEBODY.index


def standing(height: float = 200.0, x: float = 100.0, y: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """A front-facing person ``[1, 133, 2]`` whose body box is ``height`` tall (nose to ankles)."""
    kp = np.zeros((1, 133, 2))
    s = height / 200.0
    body = {"nose": (0, 3), "left_eye": (5, 0), "right_eye": (-5, 0), "left_ear": (10, 3), "right_ear": (-10, 3),
            "left_shoulder": (25, 30), "right_shoulder": (-25, 30), "left_elbow": (35, 70), "right_elbow": (-35, 70),
            "left_wrist": (40, 105), "right_wrist": (-40, 105), "left_hip": (15, 110), "right_hip": (-15, 110),
            "left_knee": (17, 155), "right_knee": (-17, 155), "left_ankle": (18, 200), "right_ankle": (-18, 200)}
    for name, (dx, dy) in body.items():
        kp[0, IDX(name)] = (x + dx * s, y + dy * s)
    for k in range(91, 133):  # hands around the wrists
        wrist = kp[0, IDX("left_wrist" if k < 112 else "right_wrist")]
        kp[0, k] = wrist + ((k % 5) - 2, (k % 7) - 3)
    scores = np.zeros((1, 133))
    scores[0, :17] = 1.0
    scores[0, 91:133] = 1.0
    return kp, scores


def rotate_about(points: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - centre) @ rot.T + centre


def test_the_same_pose_holds():
    kp, sc = standing()
    v = judge_pose(kp, sc, kp, sc)
    assert not v.drift and v.reason == "" and v.pck == 1.0 and v.limb_error == 0.0 and v.hand_error == 0.0
    assert v.detected == "1/1"


def test_a_forearm_turned_45_degrees_is_a_45_degree_limb_error():
    kp, sc = standing()
    det = kp.copy()
    elbow = kp[0, IDX("left_elbow")]
    moved = [IDX("left_wrist")] + list(range(91, 112))  # the wrist and its hand turn with the forearm
    det[0, moved] = rotate_about(kp[0, moved], elbow, 45)
    v = judge_pose(det, sc, kp, sc, Thresholds(min_pck=0.0, max_limb_error=30))
    assert v.worst_limb == "left_forearm" and v.limb_error == pytest.approx(45, abs=1e-9)
    assert v.drift and "left_forearm off by 45 degrees" in v.reason
    assert not judge_pose(det, sc, kp, sc, Thresholds(min_pck=0.0, max_limb_error=50)).drift
    # PCK: 16 of 17 body points within 0.05 of the height; the wrist is ~27 px away (> 10 px)
    assert v.pck == pytest.approx(16 / 17)


def test_pck_threshold_is_0_05_of_the_body_height():
    kp, sc = standing(height=200.0)
    assert judge_pose(kp + (9.9, 0), sc, kp, sc).pck == 1.0  # 9.9 px < 0.05 * 200
    v = judge_pose(kp + (10.1, 0), sc, kp, sc)
    assert v.pck == 0.0 and v.drift and v.reason == "PCK@0.05 0.00 < 0.9"
    assert v.limb_error == pytest.approx(0, abs=1e-9)  # a shift turns no bone


def test_hand_error_in_person_heights():
    kp, sc = standing(height=200.0)
    det = kp.copy()
    det[0, 91:133] += (0, 20)  # 0.1 of the height
    v = judge_pose(det, sc, kp, sc, Thresholds(max_part_error=0.05))
    assert v.hand_error == pytest.approx(0.1) and math.isnan(v.face_error)
    assert v.drift and "hands off by 0.10 person heights" in v.reason
    assert not judge_pose(det, sc, kp, sc).drift  # hands are not judged unless asked


def test_missing_people_drift():
    kp, sc = standing()
    v = judge_pose(np.zeros((0, 133, 2)), np.zeros((0, 133)), kp, sc)
    assert v.drift and v.reason == "nobody detected" and v.detected == "0/1"
    two_kp = np.concatenate([kp, kp + (300, 0)])
    two_sc = np.concatenate([sc, sc])
    v = judge_pose(kp, sc, two_kp, two_sc)
    assert v.drift and v.reason == "a target person not detected" and v.detected == "1/2"
    # both present, one of them off: the frame takes the worse person
    det = np.concatenate([kp, kp + (320, 0)])
    v = judge_pose(det, two_sc, two_kp, two_sc)
    assert v.detected == "2/2" and v.pck == 0.0 and v.drift


def test_a_frame_without_a_target_person_holds():
    kp, sc = standing()
    v = judge_pose(kp, sc, np.zeros((1, 133, 2)), np.zeros((1, 133)))
    assert not v.drift and math.isnan(v.pck) and v.detected == "0/0"
    assert v.to_json()["pck"] is None


def test_every_limb_is_a_bone_of_the_body():
    assert len(LIMBS) == 8 and all(a < 17 and b < 17 for a, b in LIMBS.values())


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_pck=1.5), "min_pck"), (dict(min_pck=float("nan")), "min_pck"),
    (dict(max_limb_error=0), "max_limb_error"), (dict(max_limb_error=float("inf")), "max_limb_error"),
    (dict(max_part_error=-1), "max_part_error"),
])
def test_bad_thresholds_are_refused(kwargs, message):
    with pytest.raises(HoldposeError, match=message):
        Thresholds(**kwargs)


def test_real_photo_holds_its_own_pose_and_drifts_from_another(astronaut):
    from holdpose.detect.mediapipe import MediaPipeDetector

    # the photo's pose as the judge's detector sees it (a character's reference pose keeps dimmer points)
    with MediaPipeDetector() as detector:
        keypoints, scores = detector.detect_one(astronaut)
    with FrameJudge(detector="mediapipe") as judge:
        assert not judge(astronaut, keypoints[None], scores[None]).drift
        raised = keypoints.copy()
        for side in ("left", "right"):  # both arms swung up by 120 degrees about the shoulders
            shoulder = keypoints[IDX(f"{side}_shoulder")]
            arm = [IDX(f"{side}_elbow"), IDX(f"{side}_wrist")] + list(range(91, 112) if side == "left"
                                                                       else range(112, 133))
            raised[arm] = rotate_about(keypoints[arm], shoulder, 120 if side == "left" else -120)
        v = judge(astronaut, raised[None], scores[None])
        assert v.drift and v.pck < 0.9
