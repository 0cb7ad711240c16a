"""What holdpose says is true and complete: help with defaults, --version, coordinates that
round-trip, warnings where a result is not what it looks like, counts that count."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from holdpose.cli import build_parser, main
from holdpose.io.posefile import load_poses, save_poses
from holdpose.io.video import FrameSource, VideoWriter, write_image

from conftest import random_sequence


def _help(*command) -> str:
    parser = build_parser()
    for name in command:
        parser = next(a for a in parser._subparsers._actions if a.dest == "command").choices[name]
    return " ".join(parser.format_help().split())


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    import holdpose
    assert capsys.readouterr().out.strip() == f"holdpose {holdpose.__version__}"


@pytest.mark.parametrize("command, text", [
    (("extract",), "pose detector (default mediapipe"),
    (("extract",), "default: full resolution"),
    (("render",), "default openpose_full"),
    (("keyframes",), "(default ease_in_out)"),
    (("import-bvh",), "(default 0: facing the figure)"),
    (("import-bvh",), "(default 0: level)"),
    (("edit",), "PART is one of: body, whole, head, left_arm, left_forearm"),
    (("edit",), "(default 0)"),
    (("refine",), "with --fill: longest gap to fill, in frames (default 5)"),
    (("demo",), "score how well the result holds the pose"),
    (("evaluate",), "[--fid64] [--allow-pickle] VIDEO"),
    (("evaluate-detector",), "pose detector to evaluate (default mediapipe)"),
    (("evaluate-detector",), "(default: both)"),
    (("animate",), "--seed SEED seed (default 0)"),
])
def test_help_says_the_defaults(command, text):
    assert text in _help(*command)


def test_normalised_json_reads_back_in_pixels_even_with_points_off_the_canvas(tmp_path):
    seq = random_sequence(num_frames=2, num_people=1, size=(640, 480), missing=0.0)
    seq.keypoints[0, 0, 0] = [660, -12]  # a little outside: the old guess then read the file as pixels
    save_poses(seq, tmp_path / "n.json", normalized=True, confidences="real")
    assert json.loads((tmp_path / "n.json").read_text())[0]["coordinates"] == "normalized"
    back = load_poses(tmp_path / "n.json")
    assert back.size == (640, 480)
    body = slice(0, 17)  # OpenPose JSON keeps the 17 COCO body points exactly (the feet it drops)
    np.testing.assert_allclose(back.keypoints[:, :, body], seq.keypoints[:, :, body], atol=0.01)


def test_a_file_without_the_marker_is_guessed_with_a_warning(tmp_path, caplog):
    frame = {"people": [{"pose_keypoints_2d": [0.5, 0.5, 1] * 18}], "canvas_width": 100, "canvas_height": 50}
    (tmp_path / "other.json").write_text(json.dumps([frame]))
    with caplog.at_level(logging.WARNING):
        seq = load_poses(tmp_path / "other.json")
    assert "no 'coordinates' marker; read as normalised" in caplog.text
    assert tuple(seq.keypoints[0, 0, 0]) == (50, 25)


def test_edit_counts_the_frames_it_changed(tmp_path, capsys):
    seq = random_sequence(num_frames=10, num_people=1, missing=0.0)
    seq.fps = 2.0
    save_poses(seq, tmp_path / "p.npz")
    assert main(["-q", "edit", str(tmp_path / "p.npz"), "-o", str(tmp_path / "e.npz"), "--move", "head", "5", "0",
                 "--start", "1", "--end", "3"]) == 0
    assert "4 of 10 frames edited" in capsys.readouterr().out  # frames at 1.0, 1.5, 2.0, 2.5 s


def test_odd_sizes_say_the_size_written(tmp_path, caplog):
    with caplog.at_level(logging.WARNING), VideoWriter(tmp_path / "odd.mp4", fps=10, size=(33, 21)) as writer:
        writer.write(np.full((21, 33, 3), 200, np.uint8))
    assert "encoded as 34x22" in caplog.text
    frame = next(iter(FrameSource(tmp_path / "odd.mp4")))
    assert frame[-1].mean() > 150  # the extra row repeats the edge, not black


def test_refine_says_what_it_filled_and_fixed(tmp_path, caplog):
    seq = random_sequence(num_frames=12, num_people=1, missing=0.0)
    seq.scores[4:6, 0, 9] = 0
    save_poses(seq, tmp_path / "p.npz")
    with caplog.at_level(logging.INFO, logger="holdpose"):
        assert main(["-q", "refine", str(tmp_path / "p.npz"), "-o", str(tmp_path / "r.npz"), "--fill",
                     "--fix-swaps"]) == 0
    assert "fill: 2 missing points interpolated" in caplog.text
    assert "left/right group swaps undone" in caplog.text


def test_the_flattering_note_needs_a_target():
    from holdpose.evaluate.adherence import choose_detector

    assert "flatters" in choose_detector("auto")[1]
    assert "flatters" not in choose_detector("auto", has_target=False)[1]


def test_compare_warns_when_the_videos_are_not_scored_alike(caplog):
    from holdpose.evaluate.compare import _warn_when_sizes_differ

    target = random_sequence(num_frames=1, size=(512, 512))
    same = [SimpleNamespace(size=(512, 512)), SimpleNamespace(size=(256, 256))]
    with caplog.at_level(logging.WARNING):
        _warn_when_sizes_differ([SimpleNamespace(name="a.mp4"), SimpleNamespace(name="b.mp4")], same, target)
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING):
        _warn_when_sizes_differ([SimpleNamespace(name="a.mp4"), SimpleNamespace(name="b.mp4")],
                                [same[0], SimpleNamespace(size=(640, 360))], target)
    assert "b.mp4 640x360" in caplog.text and "not directly comparable" in caplog.text


def test_a_low_score_against_another_target_points_at_the_aligned_poses(tmp_path, caplog):
    from holdpose.evaluate.cli import _hint_at_the_aligned_target

    beside = tmp_path / "out.poses.json"
    beside.write_text("[]")
    with caplog.at_level(logging.WARNING):
        _hint_at_the_aligned_target({"oks_ap": 0.04}, str(tmp_path / "driving.json"), beside)
        _hint_at_the_aligned_target({"oks_ap": 0.9}, str(tmp_path / "driving.json"), beside)
        _hint_at_the_aligned_target({"oks_ap": 0.04}, str(beside), beside)
    assert caplog.text.count("try --target") == 1


def test_evaluate_detector_survives_images_with_nobody_and_names_them(tmp_path):
    from holdpose.evaluate.detector import evaluate_detector, write_detector_report

    write_image(tmp_path / "night.png", np.zeros((96, 96, 3), np.uint8))
    coco = {"images": [{"id": 900000001, "file_name": "night.png", "width": 96, "height": 96}],
            "annotations": [{"id": 1, "image_id": 900000001, "iscrowd": 0, "bbox": [10, 10, 40, 60], "area": 2400,
                             "num_keypoints": 17, "keypoints": [30, 30, 2] * 17}], "categories": [{"id": 1}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    result = evaluate_detector(tmp_path, tmp_path / "ann.json", modes=("bottom-up",))
    assert result.overall["bottom-up"]["people_found"] == 0
    html = write_detector_report(result, tmp_path / "report")["html"].read_text()
    assert "<h2>night.png" in html


def test_native_noise_never_reaches_the_terminal(capfd):
    import os

    from holdpose.quiet import native_noise_filtered

    with native_noise_filtered():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nholdpose: error: x\n")
        os.write(2, b"libpng error: IHDR: CRC error\nW0000 00:00:1764492000.123456   42 inference_feedback_manager."
                    b"cc:114] Feedback manager requires a model with a single signature inference.\n")
        os.write(2, b"\rextract:  50%|")
    assert capfd.readouterr().err == "holdpose: error: x\n\rextract:  50%|"
