"""The pose studio without a browser: the editing model, the server's rules, random-access frames, the CLI."""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.io.posefile import load_poses, save_poses
from holdpose.io.video import FrameSource, VideoFrames, VideoWriter
from holdpose.refine.keyframes import KeyframeError, interpolate_keyframes
from holdpose.skeleton import COCO_WHOLEBODY
from holdpose.studio.document import EditError, PoseDocument, swap_pairs
from holdpose.studio.server import poses_payload, start_studio

from conftest import random_sequence

NAMES = COCO_WHOLEBODY.keypoint_names
LEFT_WRIST, RIGHT_WRIST = NAMES.index("left_wrist"), NAMES.index("right_wrist")


def pose_file(tmp_path, name="poses.npz", **kw):
    seq = random_sequence(**{"num_frames": 8, "num_people": 2, "size": (320, 240), "missing": 0.1, **kw})
    path = tmp_path / name
    save_poses(seq, path)
    return path, load_poses(path)


def differing_points(a, b) -> set:
    """(frame, person, keypoint) where position, score or flag differ."""
    diff = (a.keypoints != b.keypoints).any(-1) | (a.scores != b.scores) | (a.interpolated != b.interpolated)
    return {tuple(int(v) for v in i) for i in np.argwhere(diff)}


# --- keyframe interpolation (holdpose.refine.keyframes) ---------------------------------------------------


def test_interpolate_keyframes_blends_between_keys_and_keeps_the_rest():
    seq = random_sequence(num_frames=10, num_people=1, missing=0.0)
    seq.scores[6, 0, 3] = 0  # missing in one key: missing between the keys
    out = interpolate_keyframes(seq, [6, 2], easing="linear")
    assert np.array_equal(out.keypoints[[0, 1, 2, 6, 7, 8, 9]], seq.keypoints[[0, 1, 2, 6, 7, 8, 9]])
    np.testing.assert_allclose(out.keypoints[4, 0, 5], (seq.keypoints[2, 0, 5] + seq.keypoints[6, 0, 5]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out.keypoints[3, 0, 5], 0.75 * seq.keypoints[2, 0, 5] + 0.25 * seq.keypoints[6, 0, 5],
                               rtol=1e-6)
    assert (out.scores[3:6, 0, 3] == 0).all() and out.interpolated[3:6, 0, 5].all()
    assert not out.interpolated[[2, 6]].any()


def test_interpolate_keyframes_one_person_and_bad_keys():
    seq = random_sequence(num_frames=6, num_people=2, missing=0.0)
    out = interpolate_keyframes(seq, [0, 5], person=1)
    assert np.array_equal(out.keypoints[:, 0], seq.keypoints[:, 0])
    assert not np.array_equal(out.keypoints[2, 1], seq.keypoints[2, 1])
    for keys in ([3], [0, 6], [-1, 2]):
        with pytest.raises(KeyframeError, match="two or more keyframe indices"):
            interpolate_keyframes(seq, keys)


# --- the editing model --------------------------------------------------------------------------------


def test_swap_pairs_follow_the_flip_pairs():
    arm = {NAMES[i] for pair in swap_pairs(COCO_WHOLEBODY, "arm") for i in pair}
    assert {"left_wrist", "right_elbow", "left_hand_index_4", "right_hand_wrist"} <= arm
    assert not arm & {"left_hip", "left_eye", "face_0"}
    assert len(swap_pairs(COCO_WHOLEBODY, "body")) == len(COCO_WHOLEBODY.flip_pairs)
    assert {NAMES[i] for pair in swap_pairs(COCO_WHOLEBODY, "hand") for i in pair} == {
        n for n in NAMES if "_hand_" in n}


def test_move_undo_redo_touch_exactly_one_point(tmp_path):
    path, original = pose_file(tmp_path)
    doc = PoseDocument(path)
    k = int(np.flatnonzero(doc.seq.scores[3, 1] > 0)[0])
    assert doc.apply({"op": "move", "frame": 3, "person": 1, "keypoint": k, "x": 10.25, "y": 20.5}) == (3, 4)
    assert differing_points(doc.seq, original) == {(3, 1, k)}
    assert doc.seq.keypoints[3, 1, k].tolist() == [10.25, 20.5] and doc.dirty
    assert doc.undo() == (3, 4) and not differing_points(doc.seq, original) and not doc.dirty
    doc.redo()
    assert doc.seq.keypoints[3, 1, k].tolist() == [10.25, 20.5]
    with pytest.raises(EditError, match="nothing to redo"):
        doc.redo()


def test_swap_delete_restore(tmp_path):
    path, original = pose_file(tmp_path, missing=0.0)
    doc = PoseDocument(path)
    doc.apply({"op": "swap", "frame": 2, "person": 0, "part": "arm"})
    assert np.array_equal(doc.seq.keypoints[2, 0, LEFT_WRIST], original.keypoints[2, 0, RIGHT_WRIST])
    assert np.array_equal(doc.seq.keypoints[2, 0, 91:112], original.keypoints[2, 0, 112:133])  # the hand goes along
    assert np.array_equal(doc.seq.keypoints[2, 0, 11:17], original.keypoints[2, 0, 11:17])  # the legs stay
    doc.apply({"op": "swap", "frame": 2, "person": 0, "part": "arm"})
    assert not differing_points(doc.seq, original)

    doc.apply({"op": "delete", "frame": 1, "person": 0, "keypoint": LEFT_WRIST})
    assert doc.seq.scores[1, 0, LEFT_WRIST] == 0
    doc.apply({"op": "restore", "frame": 1, "person": 0, "keypoint": LEFT_WRIST})  # as the file had it
    assert not differing_points(doc.seq, original)
    doc.original.scores[1, 0, LEFT_WRIST] = 0  # a point the file lacked comes from the nearest frame
    doc.apply({"op": "delete", "frame": 1, "person": 0, "keypoint": LEFT_WRIST})
    doc.apply({"op": "restore", "frame": 1, "person": 0, "keypoint": LEFT_WRIST})
    assert np.array_equal(doc.seq.keypoints[1, 0, LEFT_WRIST], original.keypoints[0, 0, LEFT_WRIST])


def test_interpolate_edit_uses_the_keyframe_code(tmp_path):
    path, original = pose_file(tmp_path)
    doc = PoseDocument(path)
    doc.apply({"op": "interpolate", "keys": [1, 6], "easing": "ease_in_out", "person": 0})
    expected = interpolate_keyframes(original, [1, 6], "ease_in_out", person=0)
    assert not differing_points(doc.seq, expected)
    doc.undo()
    assert not differing_points(doc.seq, original)


@pytest.mark.parametrize("edit, message", [
    ({"op": "fly"}, "unknown operation 'fly'"),
    ([1, 2], "a request is a JSON object"),
    ({"op": "move", "frame": 0, "person": 0, "keypoint": 0, "x": 1}, "missing field 'y'"),
    ({"op": "move", "frame": 99, "person": 0, "keypoint": 0, "x": 1, "y": 1}, "frame 99 is outside 0..7"),
    ({"op": "move", "frame": 0, "person": 0, "keypoint": 133, "x": 1, "y": 1}, "keypoint 133 is outside"),
    ({"op": "move", "frame": 0, "person": 0, "keypoint": 0, "x": "1", "y": 1}, "x must be a finite number"),
    ({"op": "move", "frame": 0, "person": 0, "keypoint": 0, "x": float("nan"), "y": 1}, "x must be a finite number"),
    ({"op": "move", "frame": 0, "person": 0, "keypoint": 0, "x": 1e9, "y": 1}, "far outside the 320x240 canvas"),
    ({"op": "move", "frame": True, "person": 0, "keypoint": 0, "x": 1, "y": 1}, "frame must be a whole number"),
    ({"op": "move", "frame": 0, "person": 0, "keypoint": 0, "x": 1, "y": 1, "path": "/etc/passwd"}, "unknown field"),
    ({"op": "swap", "frame": 0, "person": 0, "part": "tail"}, "swap part must be one of"),
    ({"op": "interpolate", "keys": [3]}, "two or more keyframe indices"),
    ({"op": "interpolate", "keys": "0,3"}, "keys must be a list"),
    ({"op": "interpolate", "keys": [0, 3], "easing": "bounce"}, "easing must be one of"),
])
def test_malformed_edits_are_refused_and_change_nothing(tmp_path, edit, message):
    path, original = pose_file(tmp_path)
    doc = PoseDocument(path)
    with pytest.raises(EditError, match=message) as info:
        doc.apply(edit)
    assert "\n" not in str(info.value)
    assert not differing_points(doc.seq, original) and not doc.dirty


@pytest.mark.parametrize("name, options", [("poses.npz", {}), ("poses.json", {}),
                                           ("poses.json", {"confidences": "real"}), ("folder", {})])
def test_saved_drag_differs_in_exactly_that_point(tmp_path, name, options):
    seq = random_sequence(num_frames=6, num_people=1, size=(320, 240), missing=0.1)
    save_poses(seq, tmp_path / name, **options)
    before = load_poses(tmp_path / name)
    doc = PoseDocument(tmp_path / name)
    k = int(np.flatnonzero(before.scores[4, 0, :17] > 0.5)[0])
    doc.apply({"op": "move", "frame": 4, "person": 0, "keypoint": k, "x": 100.5, "y": 50.25})
    assert doc.save() == tmp_path / name and not doc.dirty
    after = load_poses(tmp_path / name)
    assert differing_points(after, before) == {(4, 0, k)}
    assert after.keypoints[4, 0, k].tolist() == [100.5, 50.25]
    assert not list(tmp_path.glob(".*partial"))


def test_save_as_and_export_write_only_their_fixed_paths(tmp_path):
    path, original = pose_file(tmp_path, name="clip.json")
    doc = PoseDocument(path)
    assert doc.save("npz") == tmp_path / "clip.edited.npz"
    assert not differing_points(load_poses(tmp_path / "clip.edited.npz"), original)
    assert doc.save("json") == tmp_path / "clip.edited.json"
    with pytest.raises(EditError, match="format must be json or npz"):
        doc.save("../../evil")
    assert doc.export("openpose") == tmp_path / "clip.maps.mp4"
    video = FrameSource(tmp_path / "clip.maps.mp4")
    assert video.num_frames == 8 and video.size == (320, 240)
    with pytest.raises(EditError, match="style must be one of"):
        doc.export("sketch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.edited.json", "clip.edited.npz", "clip.json",
                                                          "clip.maps.mp4"]


# --- frames on demand ----------------------------------------------------------------------------------


def numbered_video(path, num_frames=40, size=(96, 64)):
    """A video whose frame t is uniformly grey level 5 * t (so a frame tells its index)."""
    with VideoWriter(path, fps=25, size=size, crf=0) as writer:
        for t in range(num_frames):
            writer.write(np.full((size[1], size[0], 3), 5 * t, np.uint8))
    return path


def test_video_frames_by_index_equal_sequential_decoding(tmp_path):
    path = numbered_video(tmp_path / "v.mp4")
    expected = list(FrameSource(path))
    with VideoFrames(path, cache=4) as frames:
        for t in [0, 1, 2, 39, 38, 37, 10, 30, 31, 5, 4, 3, 20]:
            assert np.array_equal(frames[t], expected[t]), t
        assert len(frames._cache) <= 4
        with pytest.raises(IndexError):
            frames[40]


# --- the server ----------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path):
    path, original = pose_file(tmp_path, name="clip.npz")
    server = start_studio(path, video=numbered_video(tmp_path / "v.mp4", num_frames=8, size=(320, 240)))
    yield server, path, original
    server.shutdown()
    server.server_close()
    server.studio.close()


def request(server, path, body=None, *, token=True, headers=None):
    """``(status, bytes)`` of one request to the studio."""
    url = f"http://127.0.0.1:{server.port}{path}"
    headers = dict(headers or {})
    if token:
        headers["X-Holdpose-Token"] = server.studio.token
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_every_request_needs_the_token_and_the_loopback_host(served):
    server, _, _ = served
    assert server.server_address[0] == "127.0.0.1"
    assert request(server, "/")[0] == 200
    for path in ["/", "/static/studio.js", "/api/session", "/api/poses", "/api/frame/video/0"]:
        status, body = request(server, path, token=False)
        assert status == 403 and b"token" in body
        assert request(server, path + "?token=wrong", token=False)[0] == 403
    assert request(server, f"/api/session?token={server.studio.token}", token=False)[0] == 200
    assert request(server, "/api/edit", {"op": "undo"}, token=False)[0] == 403
    status, body = request(server, "/api/session", headers={"Host": "evil.example:80"})
    assert status == 403 and b"Host" in body
    page = request(server, "/")[1].decode()
    assert f"static/studio.js?token={server.studio.token}" in page


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/../pyproject.toml",
    "/api/frame/video/../../clip.npz", "/api/frame/..%2Fclip.npz/0", "/api/frame/other/0", "/static/document.py",
    "/api/frame/video/-1", "/api/frame/video/8", "/api/reference", "//etc/passwd",
])
def test_no_path_outside_the_named_files(served, path):
    server, _, _ = served
    status, body = request(server, path)
    assert status == 404 and b"root:" not in body and b"holdpose" not in body.lower()


def test_refused_edits_and_saves_leave_the_file_alone(served):
    server, path, original = served
    before = path.read_bytes()
    for body in [b"{not json", {"op": "move", "frame": 0}, {"format": "../../x.npz"}, {"path": "/tmp/x.npz"}]:
        action = "save" if isinstance(body, dict) and ("format" in body or "path" in body) else "edit"
        status, reply = request(server, f"/api/{action}", body)
        assert status == 400 and json.loads(reply)["error"]
    assert request(server, "/api/delete", {})[0] == 404
    assert path.read_bytes() == before
    k = int(np.flatnonzero(original.scores[2, 0] > 0)[0])
    status, reply = request(server, "/api/edit", {"op": "move", "frame": 2, "person": 0, "keypoint": k, "x": 7, "y": 9})
    assert status == 200 and json.loads(reply)["changed"] == [2, 3] and json.loads(reply)["dirty"]
    assert json.loads(request(server, "/api/save", {})[1])["saved"] == str(path)
    assert differing_points(load_poses(path), original) == {(2, 0, k)}


def test_poses_payload_and_frames(served):
    server, _, original = served
    status, body = request(server, "/api/poses?start=2&stop=5")
    assert status == 200 and body == poses_payload(server.studio.doc, 2, 5)
    t, p, k = 3, original.num_people, original.num_keypoints
    keypoints = np.frombuffer(body[:t * p * k * 8], "<f4").reshape(t, p, k, 2)
    assert np.array_equal(keypoints, original.keypoints[2:5])
    assert request(server, "/api/poses?start=5&stop=99")[0] == 400
    session = json.loads(request(server, "/api/session")[1])
    assert session["num_frames"] == 8 and session["videos"]["video"]["size"] == [320, 240]
    assert session["layout"]["swap_parts"][LEFT_WRIST] == "arm" and session["paths"]["npz"].endswith("clip.edited.npz")
    import cv2

    status, jpeg = request(server, "/api/frame/video/6")
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert status == 200 and image.shape == (240, 320) and abs(float(image.mean()) - 30) < 3


# --- the command line ----------------------------------------------------------------------------------


def test_cli_prints_the_url_and_serves(tmp_path):
    path, _ = pose_file(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "holdpose.cli", "studio", str(path), "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("holdpose studio: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        with urllib.request.urlopen(url.replace("/?", "/api/session?"), timeout=10) as res:
            assert json.loads(res.read())["num_frames"] == 8
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_errors_are_one_line(tmp_path):
    missing = subprocess.run([sys.executable, "-m", "holdpose.cli", "studio", str(tmp_path / "nope.json"),
                              "--no-browser"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "nope.json: no such file" in missing.stderr
    path, _ = pose_file(tmp_path)
    (tmp_path / "m.json").write_text("{}")
    bad = subprocess.run([sys.executable, "-m", "holdpose.cli", "studio", str(path), "--metrics",
                          str(tmp_path / "m.json"), "--no-browser"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "holds no per-frame adherence" in bad.stderr and "Traceback" not in bad.stderr


def test_adherence_strip_from_metrics(tmp_path):
    from holdpose.studio.server import per_frame_adherence

    (tmp_path / "metrics.json").write_text(json.dumps({"per_frame": {"oks": [0.5, None, 0.9]}}))
    assert per_frame_adherence(tmp_path / "metrics.json", 4) == [0.5, None, 0.9, None]
    with pytest.raises(HoldposeError, match="not an evaluation's metrics.json"):
        per_frame_adherence(tmp_path / "nothing.json", 4)
