"""OpenPose files keep their own neck: read -> render draws what the file says, pixel for pixel."""

import json

import numpy as np

from holdpose.convert import file_neck, record_neck
from holdpose.io.posefile import load_poses, save_poses
from holdpose.render.openpose import render_pose_maps

from test_render import spec_drawing

SIZE = (320, 400)


def openpose_file_frames(num_frames=6, seed=1):
    """Frames of two people whose neck sits off the shoulders' midpoint (as CMU OpenPose or an
    editor puts it), with real confidences; one person's neck is marked missing in frame 1, and
    one has a shoulder missing (and the neck present) in frame 2."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(num_frames):
        people = []
        for p in range(2):
            center = np.array([90 + 140 * p, 200.0])
            body = np.column_stack([np.round(center + rng.normal(0, 50, (18, 2)), 2), rng.uniform(0.5, 1, 18)])
            body[2, :2], body[5, :2] = center + [-40, -60], center + [40, -60]  # shoulders
            body[1, :2] = np.round(center + [rng.uniform(-15, 15), -60 + rng.uniform(-25, -5)], 2)  # raised neck
            if t == 1 and p == 0:
                body[1] = 0
            if t == 2 and p == 1:
                body[2] = 0
            face = np.column_stack([np.round(center + [0, -110] + rng.normal(0, 12, (70, 2)), 2), np.ones(70)])
            face[68:] = body[[14, 15]]  # OpenPose's two pupils; COCO-WholeBody has them as the eyes
            hands = [np.column_stack([np.round(center + [dx, 20] + rng.normal(0, 10, (21, 2)), 2), np.ones(21)])
                     for dx in (-70, 70)]
            people.append({"person_id": [p], "pose_keypoints_2d": body.ravel().tolist(),
                           "face_keypoints_2d": face.ravel().tolist(),
                           "hand_left_keypoints_2d": hands[0].ravel().tolist(),
                           "hand_right_keypoints_2d": hands[1].ravel().tolist()})
        frames.append({"people": people, "canvas_width": SIZE[0], "canvas_height": SIZE[1]})
    return frames


def file_parts(frame):
    """The file's own keypoints as the drawing takes them (no conversion through holdpose)."""
    def part(key, n):
        arrays = [np.asarray(person[key], np.float64).reshape(n, 3) for person in frame["people"]]
        return np.stack([a[:, :2] for a in arrays]), np.stack([a[:, 2] for a in arrays])

    return {"body": part("pose_keypoints_2d", 18), "face": part("face_keypoints_2d", 70),
            "left_hand": part("hand_left_keypoints_2d", 21), "right_hand": part("hand_right_keypoints_2d", 21)}


def test_read_render_draws_the_files_own_neck_pixel_for_pixel(tmp_path):
    frames = openpose_file_frames()
    path = tmp_path / "poses.json"
    path.write_text(json.dumps(frames))
    seq = load_poses(path)
    differing = 0
    for t, rendered in enumerate(render_pose_maps(seq, "openpose_full")):
        expected = spec_drawing(file_parts(frames[t]), SIZE)
        assert np.array_equal(rendered, expected), f"frame {t}: {(rendered != expected).any(-1).sum()} pixels differ"
    # The test can fail: the shoulders' midpoint (what reading used to keep) draws other pixels.
    seq.neck[:] = 0
    for t, rendered in enumerate(render_pose_maps(seq, "openpose_full")):
        differing += (rendered != spec_drawing(file_parts(frames[t]), SIZE)).any(-1).sum()
    assert differing > 100


def test_neck_survives_json_and_npz_round_trips(tmp_path):
    path = tmp_path / "poses.json"
    path.write_text(json.dumps(openpose_file_frames()))
    seq = load_poses(path)
    for name in ("again.json", "again.npz"):
        save_poses(seq, tmp_path / name, **({"confidences": "real"} if name.endswith("json") else {}))
        again = load_poses(tmp_path / name)
        a = list(render_pose_maps(seq))
        b = list(render_pose_maps(again))
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), name
    written = json.loads((tmp_path / "again.json").read_text())
    original = openpose_file_frames()
    np.testing.assert_allclose(written[0]["people"][0]["pose_keypoints_2d"][3:5],
                               original[0]["people"][0]["pose_keypoints_2d"][3:5], atol=0.01)
    assert written[1]["people"][0]["pose_keypoints_2d"][3:6] == [0, 0, 0]  # the file's missing neck stays missing


def test_neck_follows_the_shoulders_by_their_similarity():
    points = np.zeros((133, 2), np.float32)
    scores = np.zeros(133, np.float32)
    points[5], points[6], scores[[5, 6]] = [140, 100], [60, 100], 1  # left, right shoulder
    neck = record_neck(np.array([104.0, 80.0]), np.float32(0.9), points, scores)
    xy, score = file_neck(neck, points, scores)
    np.testing.assert_array_equal(xy, [104, 80])
    assert score == np.float32(0.9)
    # shoulders turned 90 degrees about (0, 0) and scaled 2x: the neck turns and scales with them
    moved = points.copy()
    moved[5], moved[6] = [-200, 280], [-200, 120]
    xy, score = file_neck(neck, moved, scores)
    np.testing.assert_allclose(xy, [-160, 208], atol=1e-4)
    # left and right swapped (as fix_swaps repairs them): the same shoulders, the neck stays put (a 180-degree
    # turn would put it below them)
    swapped = points.copy()
    swapped[5], swapped[6] = points[6], points[5]
    np.testing.assert_allclose(file_neck(neck, swapped, scores)[0], [104, 80], atol=1e-4)
    # a shoulder lost since: the file's neck cannot follow and is dropped for the midpoint
    lost = scores.copy()
    lost[5] = 0
    assert file_neck(neck, moved, lost)[1] == 0
