"""Time operations, keyframes, part edits and BVH motion, against answers worked out by hand."""

import json

import numpy as np
import pytest

from holdpose.io.posefile import save_poses
from holdpose.refine.keyframes import (
    KeyframeError, from_keyframes, load_builtin_motion, load_keyframes, move, rotate, scale,
)
from holdpose.refine.timeline import concatenate, loop, resample, reverse, trim
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY

from conftest import random_sequence

IDX = COCO_WHOLEBODY.index


def constant_sequence(num_frames, x, fps=10.0, size=(512, 512)):
    """One person, every point present at (x, 2x)."""
    seq = PoseSequence.empty(num_frames, 1, size=size, fps=fps)
    seq.keypoints[..., 0] = x
    seq.keypoints[..., 1] = 2 * x
    seq.scores[:] = 1.0
    seq.track_ids[:] = 0
    return seq


# --- timeline ---------------------------------------------------------------------

def test_resample_30_to_15_keeps_even_frames():
    seq = random_sequence(num_frames=30, num_people=2)
    seq.fps = 30.0
    seq.interpolated[4, 1, :3] = True
    out = resample(seq, 15)
    assert out.num_frames == 15 and out.fps == 15.0
    assert np.array_equal(out.keypoints, seq.keypoints[::2])
    assert np.array_equal(out.scores, seq.scores[::2])
    assert np.array_equal(out.track_ids, seq.track_ids[::2])
    assert np.array_equal(out.interpolated, seq.interpolated[::2])
    assert out.duration == pytest.approx(seq.duration)


def test_resample_10_to_20_inserts_midpoints():
    seq = random_sequence(num_frames=5, num_people=2)
    seq.fps = 10.0
    out = resample(seq, 20)
    assert out.num_frames == 10
    assert np.array_equal(out.keypoints[::2], seq.keypoints)
    both = (seq.scores[:-1] > 0) & (seq.scores[1:] > 0)
    mid = (seq.keypoints[:-1] + seq.keypoints[1:]) / 2
    odd = out.keypoints[1:-1:2]
    assert np.allclose(odd[both], mid[both], atol=1e-3)
    assert (out.scores[1:-1:2][~both] == 0).all()  # missing at either neighbour stays missing
    assert np.array_equal(out.interpolated[1:-1:2], both)
    assert not out.interpolated[::2].any()
    assert np.array_equal(out.keypoints[-1], seq.keypoints[-1])  # past the last frame: held


def test_resample_does_not_blend_different_people_in_a_slot():
    a, b = constant_sequence(1, 0.0), constant_sequence(1, 100.0)
    b.track_ids[:] = 7
    seq = concatenate(a, b)
    out = resample(seq, 40)  # frames at 0, 0.25, 0.5, 0.75 (source positions)
    assert out.num_frames == 8
    assert np.allclose(out.keypoints[1, 0, 0], [0, 0]) and out.track_ids[1, 0] == 0
    assert np.allclose(out.keypoints[3, 0, 0], [100, 200]) and out.track_ids[3, 0] == 7
    assert not out.interpolated.any()


def test_trim_loop_reverse_lengths():
    seq = random_sequence(num_frames=10, num_people=1)
    seq.fps = 10.0
    part = trim(seq, 0.2, 0.5)
    assert part.num_frames == 3 and np.array_equal(part.keypoints, seq.keypoints[2:5])
    assert trim(seq, start=0.75).num_frames == 2
    assert trim(seq, end=99).num_frames == 10
    with pytest.raises(ValueError, match="start=0.5, end=0.2"):
        trim(seq, 0.5, 0.2)
    with pytest.raises(ValueError, match="holds no frame"):
        trim(seq, 5.0, 6.0)
    looped = loop(seq, 3)
    assert looped.num_frames == 30 and np.array_equal(looped.keypoints[10], seq.keypoints[0])
    assert loop(seq, 1.5).num_frames == 15
    back = reverse(seq)
    assert back.num_frames == 10 and np.array_equal(back.keypoints[0], seq.keypoints[-1])
    assert np.array_equal(reverse(back).keypoints, seq.keypoints)


def test_concatenate_cross_fades_linearly():
    a, b = constant_sequence(5, 0.0), constant_sequence(5, 60.0)
    assert concatenate(a, b).num_frames == 10
    out = concatenate(a, b, blend=0.2)  # 2 overlap frames at 10 fps: weights 1/3, 2/3
    assert out.num_frames == 8
    assert np.allclose(out.keypoints[:, 0, 0, 0], [0, 0, 0, 20, 40, 60, 60, 60], atol=1e-4)
    assert np.allclose(out.keypoints[:, 0, 0, 1], [0, 0, 0, 40, 80, 120, 120, 120], atol=1e-4)
    assert out.interpolated[3:5].all() and not out.interpolated[[0, 1, 2, 5, 6, 7]].any()


def test_concatenate_keeps_each_sides_file_neck_and_pads_it():
    """A neck read from an OpenPose file survives concatenation: each side's own, the nearer side's
    in a cross-fade, zeros (no file neck) in the slots the narrower side gains."""
    a, b = constant_sequence(5, 0.0), constant_sequence(5, 60.0)
    a.neck[..., :3], b.neck[..., :3] = [10, 20, 1], [70, 80, 1]
    wider = PoseSequence.empty(5, 2, size=b.size, fps=b.fps)
    wider.keypoints[:, :1], wider.scores[:, :1], wider.neck[:, :1] = b.keypoints, b.scores, b.neck
    out = concatenate(a, wider, blend=0.2)  # overlap weights 1/3 (a's neck), 2/3 (b's)
    assert out.neck.shape == (8, 2, 7)
    np.testing.assert_array_equal(out.neck[:, 0, 0], [10, 10, 10, 10, 70, 70, 70, 70])
    assert not out.neck[:, 1].any()


def test_concatenate_rejects_mismatches_naming_both_values():
    a = constant_sequence(5, 0.0, fps=10.0)
    with pytest.raises(ValueError, match=r"fps: 10\.0 \(first\) and 25\.0 \(second\)"):
        concatenate(a, constant_sequence(5, 0.0, fps=25.0))
    with pytest.raises(ValueError, match=r"size: \(512, 512\) \(first\) and \(640, 480\) \(second\)"):
        concatenate(a, constant_sequence(5, 0.0, size=(640, 480)))
    with pytest.raises(ValueError, match="longer than the sequences"):
        concatenate(a, a, blend=1.0)


# --- keyframes --------------------------------------------------------------------------

def two_keyframes(**extra):
    return {"size": [512, 512], "fps": 10, "keyframes": [
        {"time": 0.0, "pose": {"left_wrist": [100, 100], "nose": [200, 50], "right_wrist": [10, 10]}},
        {"time": 1.0, "pose": {"left_wrist": [300, 200], "nose": [220, 70]}, **extra},
    ]}


@pytest.mark.parametrize("easing, mid", [("ease_in_out", 0.5), ("linear", 0.5), ("ease_in", 0.25), ("ease_out", 0.75)])
def test_from_keyframes_hits_keyframes_and_eases(easing, mid):
    seq = from_keyframes(two_keyframes(), easing=easing)
    assert seq.num_frames == 11 and seq.fps == 10 and seq.size == (512, 512)
    wrist = seq.keypoints[:, 0, IDX("left_wrist")]
    assert np.allclose(wrist[0], [100, 100]) and np.allclose(wrist[10], [300, 200])
    assert np.allclose(wrist[5], [100 + mid * 200, 100 + mid * 100], atol=1e-3)
    assert not seq.interpolated[[0, 10]].any() and seq.interpolated[5, 0, IDX("left_wrist")]
    right = seq.scores[:, 0, IDX("right_wrist")]
    assert right[0] == 1 and (right[1:] == 0).all()  # missing in the second keyframe
    assert (seq.scores[:, 0, IDX("left_ankle")] == 0).all()  # never named: missing


def test_from_keyframes_duration_and_holding():
    seq = from_keyframes(two_keyframes(), fps=20, duration=2.0)
    assert seq.num_frames == 40
    assert np.allclose(seq.keypoints[25:, 0, IDX("nose")], [220, 70])


def test_keyframe_pose_from_a_pose_file(tmp_path):
    ref = constant_sequence(3, 42.0, size=(512, 512))
    save_poses(ref, tmp_path / "ref.npz")
    motion = two_keyframes()
    motion["keyframes"][1]["pose"] = {"file": "ref.npz", "frame": 2}
    (tmp_path / "motion.json").write_text(json.dumps(motion))
    seq = from_keyframes(load_keyframes(tmp_path / "motion.json"))
    assert np.allclose(seq.keypoints[10, 0, IDX("left_ankle")], [42, 84])
    assert np.allclose(seq.keypoints[5, 0, IDX("left_wrist")], [71, 92], atol=1e-3)  # mean of (100,100), (42,84)


def test_keyframe_errors_are_clear():
    bad = two_keyframes()
    bad["keyframes"][0]["pose"]["left_wirst"] = [1, 2]
    with pytest.raises(KeyframeError, match="did you mean left_wrist"):
        from_keyframes(bad)
    with pytest.raises(ValueError, match="does not come after"):
        from_keyframes({"size": [8, 8], "keyframes": [{"time": 1, "pose": {}}, {"time": 0.5, "pose": {}}]})
    with pytest.raises(ValueError, match="unknown easing"):
        from_keyframes(two_keyframes(easing="bouncy"))


def test_builtin_wave_motion():
    seq = load_builtin_motion("wave")
    assert seq.size == (512, 512) and seq.fps == 24 and seq.num_frames == 72
    first = seq.keypoints[0, 0]
    assert np.allclose(first[IDX("nose")], (225, 130), atol=10)
    assert np.allclose(first[IDX("right_shoulder")], (113, 240), atol=10)
    assert np.allclose(first[IDX("left_shoulder")], (306, 257), atol=10)
    wrist, shoulder = seq.keypoints[:, 0, IDX("right_wrist")], seq.keypoints[:, 0, IDX("right_shoulder")]
    raised = wrist[:, 1] < shoulder[:, 1]
    assert 30 <= raised.sum() <= 60 and not raised[0] and not raised[-1]
    assert np.ptp(wrist[raised, 0]) > 40  # the forearm swings
    body = seq.keypoints[:, 0, :17][seq.scores[:, 0, :17] > 0]
    assert (body >= 0).all() and (body <= 512).all()


# --- edits ------------------------------------------------------------------------------

def arm_sequence(num_frames=4):
    seq = PoseSequence.empty(num_frames, 1, size=(512, 512), fps=10.0)
    for name, xy in {"left_shoulder": (100, 50), "left_elbow": (100, 100), "left_wrist": (100, 150),
                     "left_hand_wrist": (100, 150), "left_hand_middle_4": (100, 190),
                     "right_shoulder": (40, 50), "left_hip": (100, 250), "right_hip": (40, 250)}.items():
        seq.keypoints[:, 0, IDX(name)] = xy
        seq.scores[:, 0, IDX(name)] = 1.0
    seq.track_ids[:] = 0
    return seq


def test_rotate_forearm_turns_wrist_about_elbow():
    seq = arm_sequence()
    out = rotate(seq, "left_forearm", 90, start=0.1, end=0.3)  # frames 1 and 2
    kp = out.keypoints[:, 0]
    # counter-clockwise on screen: pointing down (+y) turns to pointing right (+x)
    assert np.allclose(kp[1:3, IDX("left_wrist")], [150, 100], atol=1e-4)
    assert np.allclose(kp[1:3, IDX("left_hand_middle_4")], [190, 100], atol=1e-4)
    assert np.allclose(kp[:, IDX("left_elbow")], [100, 100])
    assert np.allclose(kp[:, IDX("left_shoulder")], [100, 50])
    assert np.array_equal(out.keypoints[[0, 3]], seq.keypoints[[0, 3]])  # outside the range
    assert (out.scores == seq.scores).all()  # missing points stay missing


def test_rotate_with_ramp_and_whole_body_about_centre():
    seq = arm_sequence(num_frames=5)
    out = rotate(seq, "left_forearm", 90, start=0.0, end=0.4, ramp=0.2)  # weights 0, .5, 1, .5, 0
    d = out.keypoints[:, 0, IDX("left_wrist")] - [100, 100]
    angles = np.degrees(np.arctan2(d[:, 1], d[:, 0]))  # image angle of elbow -> wrist
    assert np.allclose(angles, [90, 45, 0, 45, 90], atol=1e-3)
    turned = rotate(seq, "body", 30)
    torso = [IDX(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    assert np.allclose(turned.keypoints[:, 0, torso].mean(1), seq.keypoints[:, 0, torso].mean(1), atol=1e-3)


def test_scale_and_move():
    seq = arm_sequence()
    big = scale(seq, "left_arm", 2.0)
    assert np.allclose(big.keypoints[:, 0, IDX("left_wrist")], [100, 250])
    assert np.allclose(big.keypoints[:, 0, IDX("left_shoulder")], [100, 50])
    moved = move(seq, "left_hand", 5, -3, start=0.2)
    assert np.allclose(moved.keypoints[2:, 0, IDX("left_hand_middle_4")], [105, 187])
    assert np.allclose(moved.keypoints[2:, 0, IDX("left_wrist")], [105, 147])
    assert np.allclose(moved.keypoints[:, 0, IDX("left_elbow")], [100, 100])
    assert np.array_equal(moved.keypoints[:2], seq.keypoints[:2])
    with pytest.raises(ValueError, match="unknown part 'left_tail'"):
        move(seq, "left_tail", 1, 1)


# --- BVH -----------------------------------------------------------------------------------
