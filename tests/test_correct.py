"""holdpose correct: which limbs are off, the pose the frame's puppet takes, and a real repair:
a photo animated with one forearm turned away on some frames, corrected against the true poses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.evaluate.correct import corrected_pose, off_limbs
from holdpose.skeleton import COCO_WHOLEBODY

from test_verdicts import rotate_about, standing

IDX = COCO_WHOLEBODY.index


def test_off_limbs_names_the_turned_bone_and_what_hangs_from_it():
    kp, sc = standing(height=200.0)
    det = kp[0].copy()
    moved = [IDX("right_wrist")] + list(range(112, 133))
    det[moved] = rotate_about(det[moved], det[IDX("right_elbow")], 30)
    present = sc[0] > 0.3
    assert off_limbs(det, present, kp[0], present, 200.0, limb_tolerance=15) == {"right_forearm"}
    assert off_limbs(det, present, kp[0], present, 200.0, limb_tolerance=40) == {"right_forearm"}  # the wrist: 18 px
    assert off_limbs(kp[0], present, kp[0], present, 200.0, limb_tolerance=15) == set()
    lost = present.copy()
    lost[IDX("left_knee")] = False  # a bone the frame lost cannot be moved: its puppet has no such part
    det[IDX("left_ankle")] += (0, 30)
    assert off_limbs(det, lost, kp[0], present, 200.0, limb_tolerance=15) == {"right_forearm"}

    pose, pose_present = corrected_pose(det, present, kp[0], present, {"right_forearm"})
    np.testing.assert_allclose(pose[moved], kp[0, moved])  # the forearm's points go to the target
    keep = [k for k in range(133) if k not in moved and present[k]]
    np.testing.assert_allclose(pose[keep], det[keep])  # everything else stays where the frame has it
    assert (pose_present[present] == 1).all()


def test_turning_an_upper_arm_moves_the_whole_arm():
    kp, sc = standing()
    present = sc[0] > 0.3
    pose, _ = corrected_pose(kp[0] + 50, present, kp[0], present, {"left_upper_arm"})
    for name in ("left_elbow", "left_wrist"):
        np.testing.assert_allclose(pose[IDX(name)], kp[0, IDX(name)])
    np.testing.assert_allclose(pose[IDX("left_shoulder")], kp[0, IDX("left_shoulder")] + 50)


def test_a_hand_the_target_lacks_is_carried_with_its_forearm():
    """A body-only target turns the forearm: the frame's hand turns and moves with it, about the
    wrist, instead of staying where it was (which held the puppet's hand in place)."""
    kp, sc = standing(height=200.0)
    present = sc[0] > 0.3
    hand = list(range(112, 133))
    wrist, elbow = IDX("right_wrist"), IDX("right_elbow")
    det = kp[0].copy()
    det[[wrist, *hand]] = rotate_about(det[[wrist, *hand]], det[elbow], 60)
    body_only = present.copy()
    body_only[91:] = False
    pose, _ = corrected_pose(det, present, kp[0], body_only, {"right_forearm"})
    np.testing.assert_allclose(pose[wrist], kp[0, wrist])
    np.testing.assert_allclose(pose[hand], kp[0, hand], atol=1e-6)  # the hand's own shape, back on the wrist


@pytest.fixture(scope="module")
def drifted_clip(tmp_path_factory):
    """A real full-body photo animated by the warp puppet along the built-in wave, whose left
    forearm is turned 40 degrees on frames 2 and 3; the true poses are the target."""
    import cv2

    from holdpose.animate.character import Character
    from holdpose.animate.output import write_animation
    from holdpose.animate.warp import WarpAnimator
    from holdpose.io.video import read_image
    from holdpose.refine.keyframes import load_builtin_motion
    from holdpose.refine.timeline import resample

    from conftest import fixture_path

    photo = read_image(fixture_path("reference", "ref_animateanyone_anyone-11.png"))
    scale = 384 / photo.shape[0]
    size = (round(photo.shape[1] * scale / 2) * 2, 384)
    root = tmp_path_factory.mktemp("correct")
    character = Character(cv2.resize(photo, size, interpolation=cv2.INTER_AREA))
    target = character.align(resample(load_builtin_motion("wave"), 2))[:6]
    drifted = target.copy()
    moved = [IDX("left_wrist")] + list(range(91, 112))
    for t in (2, 3):
        kp = drifted.keypoints[t, 0]
        kp[moved] = rotate_about(kp[moved], kp[IDX("left_elbow")], 40)
    write_animation(WarpAnimator(character.rig)(character.image, drifted), drifted, root / "drifted.mp4",
                    progress=False)
    return root, target


def test_correct_repairs_the_drifted_frames_and_leaves_the_others(drifted_clip, tmp_path):
    from holdpose.evaluate.correct import correct_video
    from holdpose.evaluate.verdicts import Thresholds
    from holdpose.io.video import FrameSource

    root, target = drifted_clip
    result = correct_video(root / "drifted.mp4", target, tmp_path / "fixed.mkv", lossless=True,
                           thresholds=Thresholds(min_pck=0.9, max_limb_error=20), detector="mediapipe",
                           progress=False)
    records = [json.loads(line) for line in result.verdicts_path.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(6))
    drifting = {r["frame"] for r in records if r["before"]["drift"]}
    assert {2, 3} <= drifting  # the turned forearm is seen
    for r in records:
        if r["corrected"]:
            assert "left_forearm" in r["limbs"]
            assert r["after"]["limb_error"] < r["before"]["limb_error"]
    assert result.corrected >= 1
    # frames left alone are the input's decoded pixels exactly (lossless output)
    for t, (a, b) in enumerate(zip(FrameSource(root / "drifted.mp4"), FrameSource(tmp_path / "fixed.mkv"))):
        if not records[t]["corrected"]:
            np.testing.assert_array_equal(a, b)
        else:
            changed = np.abs(a.astype(int) - b.astype(int)).max(-1) > 0
            assert 0 < changed.mean() < 0.25  # only the arm's region was blended in


def _wider(poses):
    wider = poses.copy()
    wider.size = (poses.size[0] * 2, poses.size[1])
    return wider


@pytest.mark.parametrize("make, message", [
    (lambda root, target: (root / "drifted.mp4", target[:4], "out.mp4"), "has 6 frames and the poses 4"),
    (lambda root, target: (root / "drifted.mp4", target, "out.gif"), "correct writes an .mp4"),
    (lambda root, target: (root / "drifted.mp4", _wider(target), "out.mp4"), "differ in shape"),
    (lambda root, target: (root / "drifted.mp4", target, str(root / "drifted.mp4")), "would overwrite the input"),
])
def test_bad_inputs_are_one_clear_error(drifted_clip, tmp_path, make, message):
    from holdpose.evaluate.correct import correct_video

    root, target = drifted_clip
    video, poses, output = make(root, target)
    output = output if "/" in str(output) else tmp_path / output
    with pytest.raises(HoldposeError, match=message):
        correct_video(video, poses, output, progress=False)
    assert not any(p.suffix in (".mp4", ".gif", ".mkv") for p in tmp_path.iterdir())


def test_correct_cli_writes_video_verdicts_and_report(drifted_clip, tmp_path, capsys):
    from holdpose.cli import main
    from holdpose.io.posefile import save_poses

    root, target = drifted_clip
    save_poses(target, tmp_path / "target.npz")
    assert main(["-q", "correct", str(root / "drifted.mp4"), "--target", str(tmp_path / "target.npz"), "-o",
                 str(tmp_path / "fixed.mp4"), "--max-limb-error", "20", "--detector", "mediapipe",
                 "--report", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "drifted" in out and "corrected" in out
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert sum(metrics["closed_loop"]["counts"].values()) == 6
    assert not math.isnan(metrics["pck@0.05"])
