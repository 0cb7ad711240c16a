import json

import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.io.posefile import load_poses, openpose_frames, read_openpose_json, save_poses
from holdpose.sequence import PoseSequence

from conftest import random_sequence

NOT_FEET = np.r_[0:17, 23:133]


def test_npz_round_trip_is_lossless(tmp_path):
    seq = random_sequence()
    seq.interpolated[1, 0, :5] = True
    path = save_poses(seq, tmp_path / "poses.npz")
    back = load_poses(path)
    assert np.array_equal(back.interpolated, seq.interpolated)
    assert np.array_equal(back.keypoints, seq.keypoints)
    assert np.array_equal(back.scores, seq.scores)
    assert np.array_equal(back.track_ids, seq.track_ids)
    assert back.size == seq.size and back.fps == seq.fps and back.layout is seq.layout


@pytest.mark.parametrize("normalized", [False, True])
def test_json_round_trip_keeps_points_within_documented_loss(tmp_path, normalized):
    seq = random_sequence()
    save_poses(seq, tmp_path / "poses.json", normalized=normalized, confidences="real")
    back, info = read_openpose_json(tmp_path / "poses.json")
    assert info["coordinates"] == ("normalised" if normalized else "pixels")
    assert back.size == seq.size and back.fps == seq.fps
    present = seq.scores[:, :, NOT_FEET] > 0
    err = np.abs(back.keypoints[:, :, NOT_FEET] - seq.keypoints[:, :, NOT_FEET])[present]
    assert err.max() <= (0.0051 if not normalized else 1e-3)  # 0.01 px rounding, float32
    assert np.allclose(back.scores[:, :, NOT_FEET], seq.scores[:, :, NOT_FEET], atol=1e-4)
    assert (back.scores[:, :, 17:23] == 0).all()  # feet are not in OpenPose 18: documented loss


def test_binary_confidences_for_controlnet_tools(tmp_path):
    seq = random_sequence(num_frames=2, num_people=1)
    seq.scores[0, 0, 0] = 0.2  # below the 0.3 threshold: written as missing
    frames = openpose_frames(seq)
    body = np.array(frames[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    assert set(np.unique(body[:, 2])) <= {0.0, 1.0}
    assert (body[0] == 0).all()  # nose below threshold
    assert frames[0]["canvas_width"] == 640 and frames[0]["canvas_height"] == 480


def test_folder_of_frames_round_trip(tmp_path):
    seq = random_sequence(num_frames=12)
    save_poses(seq, tmp_path / "frames", confidences="real")
    files = sorted((tmp_path / "frames").iterdir())
    assert len(files) == 12 and files[0].name == "frame_000000.json"
    back = load_poses(tmp_path / "frames")
    assert back.num_frames == 12
    assert np.allclose(back.keypoints[..., NOT_FEET, :][seq.scores[..., NOT_FEET] > 0],
                       seq.keypoints[..., NOT_FEET, :][seq.scores[..., NOT_FEET] > 0], atol=0.005)


def test_reads_cmu_openpose_frame_without_canvas(tmp_path, caplog):
    body = np.zeros((25, 3))
    body[0] = [100, 50, 0.9]
    body[2] = [80, 90, 0.8]  # right shoulder
    body[19] = [120, 400, 0.7]  # left big toe (BODY_25)
    frame = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": body.ravel().tolist(),
                                         "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
                                         "hand_right_keypoints_2d": []}]}
    (tmp_path / "f_000000000000_keypoints.json").write_text(json.dumps(frame))
    seq, info = read_openpose_json(tmp_path)
    assert info["coordinates"] == "pixels"
    assert seq.size == (121, 401)  # inferred from the points, with a warning
    assert "no canvas size" in caplog.text
    assert np.allclose(seq.keypoints[0, 0, 0], [100, 50]) and np.isclose(seq.scores[0, 0, 0], 0.9)
    assert np.allclose(seq.keypoints[0, 0, 6], [80, 90])  # right shoulder -> WholeBody 6
    assert np.allclose(seq.keypoints[0, 0, 17], [120, 400])
    assert seq.track_ids[0, 0] == 0


def test_normalised_file_needs_a_canvas(tmp_path):
    frame = {"people": [{"pose_keypoints_2d": [0.5, 0.5, 1] * 18}]}
    (tmp_path / "n.json").write_text(json.dumps([frame]))
    with pytest.raises(HoldposeError, match="canvas"):
        load_poses(tmp_path / "n.json")
    seq = load_poses(tmp_path / "n.json", size=(200, 100))
    assert np.allclose(seq.keypoints[0, 0, 0], [100, 50])


def test_empty_frames_stay_in_the_sequence(tmp_path):
    seq = random_sequence(num_frames=3, num_people=1)
    seq.track_ids[1] = -1
    seq.scores[1] = 0
    save_poses(seq, tmp_path / "p.json")
    data = json.loads((tmp_path / "p.json").read_text())
    assert len(data) == 3 and data[1]["people"] == []
    back = load_poses(tmp_path / "p.json")
    assert back.num_frames == 3 and (back.scores[1] == 0).all()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not readable JSON"),
    ('{"frames": []}', "not an OpenPose JSON frame"),
    ('[{"people": [{"pose_keypoints_2d": [1, 2, 1, 3]}]}]', "flat list"),
    ('[{"people": [{"pose_keypoints_2d": [1, 2, 1]}], "canvas_width": 9, "canvas_height": 9}]', "expected 18 or 25"),
    ('[{"people": [{"pose_keypoints_2d": [NaN, 2, 1]}]}]', "NaN"),
    ("[]", "no frames"),
])
def test_bad_json_gives_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(HoldposeError, match=message):
        load_poses(path)


def test_out_of_range_keypoints_are_refused(tmp_path):
    seq = random_sequence(num_frames=1, num_people=1)
    seq.scores[0, 0, 3] = 1
    seq.keypoints[0, 0, 3] = [10_000, 5]
    save_poses(seq, tmp_path / "p.npz")
    with pytest.raises(HoldposeError, match="far outside"):
        load_poses(tmp_path / "p.npz")


def test_nan_in_sequence_is_refused():
    seq = random_sequence(num_frames=3, num_people=1)
    seq.keypoints[2, 0, 4, 0] = np.nan
    with pytest.raises(HoldposeError, match="frame 2"):
        seq.validate()


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(HoldposeError, match="no such file"):
        load_poses(tmp_path / "none.json")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(HoldposeError, match="unknown pose file type"):
        load_poses(tmp_path / "x.txt")
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(HoldposeError, match="cannot read NPZ"):
        load_poses(tmp_path / "x.npz")


def test_failed_write_leaves_no_file(tmp_path):
    seq = random_sequence()
    with pytest.raises(ValueError):
        save_poses(seq, tmp_path / "p.json", confidences="maybe")
    assert list(tmp_path.iterdir()) == []


def test_sequence_shape_checks_and_slicing():
    seq = random_sequence(num_frames=6)
    assert seq[2:4].num_frames == 2 and seq[-1].num_frames == 1 and seq[3].num_frames == 1
    with pytest.raises(ValueError, match="inconsistent shapes"):
        PoseSequence(np.zeros((2, 1, 133, 2)), np.zeros((2, 1, 133)), np.zeros((3, 1)))
    boxes = seq.boxes()
    assert boxes.shape == (6, 2, 4) and (boxes[..., 2] >= boxes[..., 0]).all()
