"""Presence: points a detector guesses outside the frame or with low visibility are missing by default."""

import numpy as np
import pytest

from holdpose.detect.base import drop_unseen

from conftest import fixture_path

SHOULDERS_ELBOWS_WRISTS = [5, 6, 7, 8, 9, 10]


def test_drop_unseen_zeroes_points_outside_the_frame_or_below_the_threshold():
    keypoints = np.array([[10, 10], [-1, 5], [99.5, 5], [100, 5], [5, 50], [5, 49.9], [20, 20]], np.float32)
    scores = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.49], np.float32)
    kept = drop_unseen(keypoints, scores, (100, 50), min_score=0.5)
    np.testing.assert_array_equal(kept, np.array([0.9, 0, 0.9, 0, 0, 0.9, 0], np.float32))
    assert kept.dtype == np.float32
    # broadcasting over [T, P, K]
    assert drop_unseen(np.tile(keypoints, (3, 2, 1, 1)), np.tile(scores, (3, 2, 1)), (100, 50),
                       min_score=0.5).shape == (3, 2, 7)


def test_extract_cli_has_keep_offscreen():
    from holdpose.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["extract", "v.mp4", "-o", "p.json", "--keep-offscreen"]).keep_offscreen
    assert not parser.parse_args(["extract", "v.mp4", "-o", "p.json"]).keep_offscreen


def test_dwpose_low_scores_are_missing_unless_kept(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from test_dwpose import make_pose_model

    from holdpose.detect.dwpose import DWPoseDetector

    model = make_pose_model(tmp_path / "pose.onnx")
    # The tiny model scores a grey image by its normalised brightness (the crop's black
    # padding pulls it down): grey 160 scores under DWPose's 0.3, grey 190 well over it.
    dim, bright = np.full((64, 48, 3), 160, np.uint8), np.full((64, 48, 3), 190, np.uint8)
    with DWPoseDetector(model) as default, DWPoseDetector(model, keep_offscreen=True) as keeping:
        kept = keeping(dim)[1]
        assert ((kept > 0.1) & (kept < 0.3)).all()
        np.testing.assert_array_equal(default(dim)[1], 0.0)
        assert (default(bright)[1] > 0.5).all()


@pytest.fixture(scope="module")
def talking_head_frames():
    from holdpose.io.video import FrameSource

    path = fixture_path("videos", "talk_animateanyone_talkinghead_3.mp4")
    # The header says 142 frames but 141 decode; stop early so the truncation check stays out of it.
    return list(FrameSource(path, start=0, stop=40))[::4]


def _detect_all(frames, **options):
    from holdpose.detect.mediapipe import MediaPipeDetector

    with MediaPipeDetector(video=True, **options) as detector:
        found = [detector(frame) for frame in frames]
    assert all(len(scores) == 1 for _, scores in found)
    return np.stack([kp[0] for kp, _ in found]), np.stack([sc[0] for _, sc in found])


def test_talking_head_has_no_invented_shoulders_or_elbows(talking_head_frames):
    height, width = talking_head_frames[0].shape[:2]
    raw_kp, raw_sc = _detect_all(talking_head_frames, keep_offscreen=True)
    # What MediaPipe invents: shoulders below the 578-px frame, scored as visible, and arms further down.
    assert (raw_kp[:, [5, 6], 1] > height).all() and (raw_sc[:, [5, 6]] > 0.5).all()
    assert (raw_sc[:, [7, 8]] > 0).all() and (raw_kp[:, [7, 8], 1] > height).all()

    keypoints, scores = _detect_all(talking_head_frames)
    assert (scores[:, SHOULDERS_ELBOWS_WRISTS] == 0).all()
    assert (scores[:, :5] > 0.5).all()  # the face she shows stays
    assert (scores[:, 23:91] > 0).mean() > 0.9
    present = scores > 0
    xy = keypoints[present]
    assert (xy >= 0).all() and (xy[:, 0] < width).all() and (xy[:, 1] < height).all()


@pytest.mark.parametrize("size", [256, 384, 512])
def test_a_reference_photo_keeps_its_dimly_seen_arm_so_the_demo_waves(astronaut, size):
    """The rule is for driving poses. In a character's photo a limb MediaPipe sees dimly (the astronaut's
    right forearm, visibility 0.2-0.35 depending on the photo's size) is where the detector puts it, and
    the puppet must have it to move the arm: without it the demo's wave moved nothing."""
    import cv2

    from holdpose.animate.character import Character
    from holdpose.animate.warp import WarpAnimator
    from holdpose.refine.keyframes import load_builtin_motion
    from holdpose.refine.timeline import resample

    photo = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA)
    character = Character(photo)
    rig = character.rig
    assert rig.present[[6, 8, 10]].all()  # right shoulder, elbow, wrist
    assert not rig.present[[13, 14, 15, 16]].any()  # knees and ankles below a waist-up photo stay missing
    if size != 256:
        return
    wave = character.align(resample(load_builtin_motion("wave"), 3))
    frames = list(WarpAnimator(rig)(photo, wave))
    raised = int(np.argmin(wave.keypoints[:, 0, 10, 1]))  # the frame whose right wrist is highest
    wrist = wave.keypoints[raised, 0, 10].round().astype(int)
    x0, y0 = np.maximum(wrist - size // 16, 0)
    patch = (slice(y0, wrist[1] + size // 16), slice(x0, wrist[0] + size // 16))
    # the arm reaches there: the place differs from the resting first frame (18 grey levels; 4.7 when the
    # rig lacked the forearm and only the fill around the shoulder moved)
    changed = np.abs(frames[raised][patch].astype(int) - frames[0][patch].astype(int)).mean()
    assert changed > 10, f"the raised hand's place barely changed ({changed:.1f} grey levels)"
