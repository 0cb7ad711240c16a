"""The command line: outputs on real inputs, and one clear line for every user error."""

import json
import subprocess
import sys

import numpy as np
import pytest

from holdpose.cli import main
from holdpose.io.posefile import save_poses
from holdpose.io.video import FrameSource, VideoWriter, write_image

from conftest import random_sequence


def run_cli(*args):
    """Run ``holdpose`` in a fresh process, as a user does."""
    return subprocess.run([sys.executable, "-m", "holdpose.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_extract_and_render_an_image(tmp_path, astronaut, capsys):
    write_image(tmp_path / "a.png", astronaut)
    assert main(["-q", "extract", str(tmp_path / "a.png"), "-o", str(tmp_path / "p.json")]) == 0
    frames = json.loads((tmp_path / "p.json").read_text())
    assert len(frames) == 1 and len(frames[0]["people"]) == 1
    assert frames[0]["canvas_width"] == 512
    assert main(["-q", "render", str(tmp_path / "p.json"), "-o", str(tmp_path / "map.png")]) == 0
    pose_map = FrameSource(tmp_path / "map.png")
    assert pose_map.size == (512, 512)
    assert "1 pose maps" in capsys.readouterr().out


def test_render_to_video_and_png_folder(tmp_path):
    seq = random_sequence(num_frames=6, size=(128, 96))
    save_poses(seq, tmp_path / "p.npz")
    assert main(["-q", "render", str(tmp_path / "p.npz"), "-o", str(tmp_path / "maps.mp4")]) == 0
    video = FrameSource(tmp_path / "maps.mp4")
    assert video.num_frames == 6 and video.size == (128, 96) and video.fps == 25
    assert main(["-q", "render", str(tmp_path / "p.npz"), "-o", str(tmp_path / "maps"), "--style", "openpose"]) == 0
    assert sorted(p.name for p in (tmp_path / "maps").iterdir())[:2] == ["frame_000000.png", "frame_000001.png"]


def make_bad_inputs(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video at all\n" * 40)
    with VideoWriter(tmp_path / "full.mp4", fps=10, size=(128, 96)) as writer:
        for i in range(40):
            writer.write(np.full((96, 128, 3), i * 6, np.uint8))
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "broken.json").write_text('[{"people": [')
    nan = random_sequence(num_frames=2, num_people=1)
    nan_frames = json.dumps([{"people": [{"pose_keypoints_2d": [float("nan"), 1, 1] * 18}],
                              "canvas_width": 64, "canvas_height": 64}])
    (tmp_path / "nan.json").write_text(nan_frames)
    far = random_sequence(num_frames=1, num_people=1)
    far.keypoints[0, 0, 0] = [1e6, 1e6]
    far.scores[0, 0, 0] = 1
    save_poses(far, tmp_path / "far.json", confidences="real")
    save_poses(random_sequence(num_frames=3, num_people=1, size=(64, 64), missing=0.0), tmp_path / "good.npz")
    write_image(tmp_path / "blank.png", np.zeros((64, 64, 3), np.uint8))
    return nan


@pytest.mark.parametrize("command, message", [
    (["extract", "{d}/missing.mp4", "-o", "{d}/out.json"], "no such file"),
    (["extract", "{d}/empty.mp4", "-o", "{d}/out.json"], "empty"),
    (["extract", "{d}/notes.mp4", "-o", "{d}/out.json"], "not a readable video"),
    (["extract", "{d}/truncated.mp4", "-o", "{d}/out.json"], "truncated|damaged|not a readable video"),
    (["render", "{d}/broken.json", "-o", "{d}/out.mp4"], "not readable JSON"),
    (["render", "{d}/nan.json", "-o", "{d}/out.mp4"], "NaN"),
    (["render", "{d}/far.json", "-o", "{d}/out.mp4"], "far outside"),
    (["render", "{d}/missing.json", "-o", "{d}/out.mp4"], "no such file"),
    (["refine", "{d}/good.npz", "-o", "{d}/out.npz", "--smooth", "one_euro", "--smooth-window", "1"],
     "smooth_window"),
    (["animate", "{d}/blank.png", "{d}/good.npz", "-o", "{d}/out.gif"], "writes an .mp4"),
    (["animate", "{d}/blank.png", "{d}/good.npz", "-o", "{d}/out.mp4", "--no-align", "--person", "4"],
     "person 4 is not a track id"),
    (["animate", "{d}/blank.png", "{d}/good.npz", "-o", "{d}/out.mp4"], "nobody found"),
    (["animate", "{d}/blank.png", "{d}/good.npz", "-o", "{d}/out.mp4", "--steps", "3"],
     "--steps is for controlnet, animatediff, dispose, not the warp backend"),
    (["align", "{d}/good.npz", "--reference", "{d}/blank.png", "-o", "{d}/out.json"], "nobody found"),
    (["evaluate", "{d}/missing.mp4", "-o", "{d}/report"], "no such file"),
    (["import-bvh", "{d}/missing.bvh", "-o", "{d}/out.json"], "no such BVH file"),
    (["keyframes", "{d}/missing.json", "-o", "{d}/out.json"], "no such motion file"),
])
def test_user_errors_print_one_line_and_leave_no_output(tmp_path, command, message):
    make_bad_inputs(tmp_path)
    before = set(tmp_path.iterdir())
    result = run_cli(*[part.format(d=tmp_path) for part in command])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("holdpose: error: ")
    assert "Traceback" not in result.stderr
    import re
    assert re.search(message, lines[0]), lines[0]
    assert set(tmp_path.iterdir()) == before  # no half-written output, no temporary files


def test_bad_arguments_are_usage_errors(tmp_path):
    result = run_cli("render", "x.json", "-o", "y.mp4", "--size", "big")
    assert result.returncode == 2 and "size must look like 512x768" in result.stderr
    result = run_cli("render", str(tmp_path / "x.json"), "-o", str(tmp_path / "y.mp4"), "--style", "sketch")
    assert result.returncode == 2 and "invalid choice: 'sketch'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "y.mp4").exists()


def test_refine_refuses_options_that_would_do_nothing(tmp_path):
    save_poses(random_sequence(num_frames=4), tmp_path / "p.npz")
    result = run_cli("refine", str(tmp_path / "p.npz"), "-o", str(tmp_path / "r.npz"), "--smooth", "one_euro",
                     "--smooth-window", "0.4")
    assert result.returncode == 2 and "--smooth-window" in result.stderr and "one_euro" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.npz").exists()


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from holdpose.cli import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('mediapipe', 'av', 'cv2', 'torch', 'onnxruntime') if m in sys.modules]; "
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_extract_with_the_dwpose_backend_and_a_tiny_onnx_model(tmp_path):
    from test_dwpose import make_pose_model  # a model whose keypoints sit on the brightest row and column

    model = tmp_path / "pose.onnx"
    make_pose_model(model)
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, 150:170] = 255
    image[110:130, :] = 255
    write_image(tmp_path / "frame.png", image)
    assert main(["-q", "extract", str(tmp_path / "frame.png"), "-o", str(tmp_path / "p.npz"),
                 "--detector", "dwpose", "--pose-model", str(model), "--keep-offscreen"]) == 0  # the tiny model scores ~0.02
    from holdpose.io.posefile import load_poses

    seq = load_poses(tmp_path / "p.npz")
    assert seq.num_frames == 1 and seq.size == (image.shape[1], image.shape[0])
    assert (seq.track_ids[0] >= 0).sum() == 1
    assert np.allclose(seq.keypoints[0, 0, :, 0], 160, atol=12) and np.allclose(seq.keypoints[0, 0, :, 1], 120, atol=12)


def test_dwpose_without_a_model_path_says_how_to_get_one(tmp_path, astronaut):
    write_image(tmp_path / "a.png", astronaut)
    result = run_cli("extract", tmp_path / "a.png", "-o", tmp_path / "p.json", "--detector", "dwpose")
    assert result.returncode == 2 and "--pose-model" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_demo_animates_the_bundled_photo_and_reports_adherence(tmp_path, capsys):
    """`holdpose demo` end to end: the astronaut waves, and the report re-detects the wave."""
    assert main(["-q", "demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PCK@0.05" in out
    video = FrameSource(tmp_path / "animation.mp4")
    assert video.num_frames > 10 and video.size == (512, 512)  # skimage's astronaut is 512x512
    assert FrameSource(tmp_path / "side_by_side.mp4").size == (3 * 512, 512)
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["pck@0.1"] > 0.6  # 0.84 from a fresh clone; the raised forearm is the hard part
    assert (tmp_path / "report" / "index.html").is_file()
