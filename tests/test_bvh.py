"""io/bvh: parsing, forward kinematics by hand, projection and orientation, the fixture motion."""

from __future__ import annotations

import numpy as np
import pytest

from holdpose.io.bvh import Camera, bvh_to_sequence, forward_kinematics, match_joints, read_bvh
from holdpose.refine.timeline import resample
from holdpose.skeleton import COCO_WHOLEBODY

from conftest import fixture_path

IDX = COCO_WHOLEBODY.index


TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Zrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 5
Frame Time: 0.5
0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 0 0
0 0 0 90 0 0 90 0 0
0 0 0 0 0 0 90 90 0
0 0 0 90 90 0 0 0 0
"""


def test_bvh_forward_kinematics_by_hand(tmp_path):
    path = tmp_path / "tiny.bvh"
    path.write_text(TINY_BVH)
    names, parents, offsets, channels, motion, frame_time = read_bvh(path)
    assert names == ["Hips", "Chest", "Chest_End"] and parents.tolist() == [-1, 0, 1]
    assert channels[1] == ("Xrotation", "Zrotation", "Yrotation") and channels[2] == ()
    assert motion.shape == (5, 9) and frame_time == 0.5
    pos = forward_kinematics(read_bvh(path))
    expected = [
        [(0, 0, 0), (0, 10, 0), (0, 15, 0)],  # rest
        [(1, 2, 3), (-9, 2, 3), (-14, 2, 3)],  # root moved, Rz(90): +y -> -x
        [(0, 0, 0), (-10, 0, 0), (-10, 0, 5)],  # Rz(90) @ Rx(90) on (0, 5, 0) = (0, 0, 5)
        [(0, 0, 0), (0, 10, 0), (-5, 10, 0)],  # chest Rx(90) @ Rz(90), in channel order
        [(0, 0, 0), (0, 0, 10), (0, 0, 15)],  # root Rz(90) @ Rx(90)
    ]
    assert np.allclose(pos, expected, atol=1e-9)


def test_bvh_projection_orientation(tmp_path):
    path = tmp_path / "figure.bvh"
    path.write_text("""HIERARCHY
ROOT Hips
{
 OFFSET 0 0 0
 CHANNELS 3 Xposition Yposition Zposition
 JOINT LeftUpLeg
 { OFFSET 1 0 0 CHANNELS 3 Zrotation Xrotation Yrotation End Site { OFFSET 0 -4 0 } }
 JOINT RightUpLeg
 { OFFSET -1 0 0 CHANNELS 3 Zrotation Xrotation Yrotation End Site { OFFSET 0 -4 0 } }
 JOINT Spine
 { OFFSET 0 3 0 CHANNELS 3 Zrotation Xrotation Yrotation
   JOINT Head { OFFSET 0 1 1 CHANNELS 3 Zrotation Xrotation Yrotation End Site { OFFSET 0 1 0 } } }
}
MOTION
Frames: 2
Frame Time: 0.1
0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
0 1 0 0 0 0 0 0 0 0 0 0 0 0 0
""")
    seq = resample(bvh_to_sequence(path, size=(200, 100)), 20)
    assert seq.num_frames == 4 and seq.fps == 20
    kp = seq.keypoints[:, 0]
    assert kp[0, IDX("left_hip"), 0] > kp[0, IDX("right_hip"), 0]  # facing the camera: its left on image right
    assert kp[0, IDX("nose"), 1] < kp[0, IDX("left_hip"), 1]  # Y up in BVH -> smaller image y
    assert kp[-1, IDX("left_hip"), 1] < kp[0, IDX("left_hip"), 1]  # the figure rises
    present = seq.scores[0, 0] > 0
    assert present.sum() == 3 and (seq.keypoints[:, 0][:, present] >= 0).all()
    assert (kp[:, present, 0] <= 200).all() and (kp[:, present, 1] <= 100).all()
    side = bvh_to_sequence(path, size=(200, 100), camera=Camera(azimuth=90)).keypoints[0, 0]
    assert abs(side[IDX("left_hip"), 0] - side[IDX("right_hip"), 0]) < 1e-3  # one behind the other
    assert side[IDX("nose"), 0] < side[IDX("left_hip"), 0]  # from its left, its front (the head) is on image left
    near = bvh_to_sequence(path, size=(200, 100), camera=Camera(azimuth=90, focal_length=150)).keypoints[0, 0]
    assert abs(near[IDX("left_hip"), 0] - near[IDX("right_hip"), 0]) > 0.5  # perspective: the nearer hip shows
    assert (near[[IDX("nose"), IDX("left_hip"), IDX("right_hip")]] >= 0).all()


def _turning_points(y, min_swing):
    """Indices where a signal turns, ignoring swings smaller than ``min_swing``."""
    turns, direction, anchor = [], 0, y[0]
    for i, v in enumerate(y):
        if direction >= 0 and v < anchor - min_swing or direction <= 0 and v > anchor + min_swing:
            if direction:
                turns.append(i)
            direction = 1 if v > anchor else -1
            anchor = v
        elif direction > 0 and v > anchor or direction < 0 and v < anchor:
            anchor = v
    return turns


def test_fixture_bvh_waves():
    path = fixture_path("motions", "bvh_fair1_wave_hello.bvh")
    bvh = read_bvh(path)
    assert bvh.num_frames == 839 and bvh.fps == pytest.approx(119.9, abs=0.1)
    assert len([n for n in bvh.names if not n.endswith("_End")]) == 27
    matched = match_joints(bvh.names)
    assert bvh.names[matched["right_shoulder"][0]] == "RightArm"  # not the clavicle
    seq = bvh_to_sequence(path)
    assert seq.num_frames == 839 and seq.size == (512, 512)
    present = seq.scores[:, 0] > 0
    assert (present.sum(-1) == 15).all()  # 12 limb joints, 2 toes, nose
    points = seq.keypoints[:, 0][present]
    assert (points >= 0).all() and (points <= 512).all()
    kp = seq.keypoints[:, 0]
    assert (kp[:, IDX("left_shoulder"), 0] > kp[:, IDX("right_shoulder"), 0]).all()  # faces the camera
    assert (kp[:, IDX("nose"), 1] < kp[:, IDX("left_ankle"), 1]).all()  # upright (Z-up file)
    wrist, shoulder = kp[:, IDX("right_wrist"), 1], kp[:, IDX("right_shoulder"), 1]
    raised = np.flatnonzero(wrist < shoulder)
    assert 50 < len(raised) < 300 and wrist[0] > shoulder[0] and wrist[-1] > shoulder[-1]
    wave = np.convolve(wrist[raised.min():raised.max() + 1], np.ones(9) / 9, "valid")
    assert len(_turning_points(wave, min_swing=5.0)) >= 4  # up, down, up, down...
