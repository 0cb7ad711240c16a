"""The CLI chains the stages: keyframes / BVH -> refine -> align -> render / animate."""

import json

import numpy as np
import pytest

from holdpose.cli import main
from holdpose.io.posefile import load_poses, save_poses
from holdpose.io.video import FrameSource, read_image, write_image

from conftest import fixture_path, random_sequence


def test_keyframes_edit_refine_align_render(tmp_path, astronaut):
    d = tmp_path
    assert main(["-q", "keyframes", "wave", "-o", str(d / "wave.npz")]) == 0
    wave = load_poses(d / "wave.npz")
    assert wave.num_frames == 72 and wave.size == (512, 512)

    assert main(["-q", "edit", str(d / "wave.npz"), "-o", str(d / "edited.npz"), "--move", "head", "10", "0",
                 "--start", "1", "--end", "2"]) == 0
    edited = load_poses(d / "edited.npz")
    moved = edited.keypoints[:, 0, 0, 0] - wave.keypoints[:, 0, 0, 0]  # the nose's x
    assert np.allclose(moved[24:48], 10) and np.allclose(moved[:24], 0) and np.allclose(moved[48:], 0)

    noisy = edited.copy()
    noisy.keypoints += np.random.default_rng(0).normal(0, 2, noisy.keypoints.shape).astype(np.float32)
    noisy.scores[10:12, 0, 9] = 0  # a wrist lost for two frames
    save_poses(noisy, d / "noisy.npz")
    assert main(["-q", "refine", str(d / "noisy.npz"), "-o", str(d / "clean.npz"), "--track", "--fill", "--fix-swaps",
                 "--smooth", "--fps", "12", "--plot", str(d / "wrist.png"), "--plot-keypoint", "left_wrist"]) == 0
    clean = load_poses(d / "clean.npz")
    assert clean.num_frames == 36 and clean.fps == 12
    assert read_image(d / "wrist.png").shape[1] > 600  # the plot was drawn

    write_image(d / "ref.png", astronaut)
    assert main(["-q", "align", str(d / "clean.npz"), "--reference", str(d / "ref.png"), "-o", str(d / "aligned.json")]) == 0
    aligned = json.loads((d / "aligned.json").read_text())
    assert len(aligned) == 36 and aligned[0]["canvas_width"] == 512

    assert main(["-q", "render", str(d / "aligned.json"), "-o", str(d / "maps.mp4")]) == 0
    assert FrameSource(d / "maps.mp4").num_frames == 36


def test_animate_with_the_warp_backend(tmp_path, astronaut):
    write_image(tmp_path / "ref.png", astronaut)
    assert main(["-q", "keyframes", "wave", "-o", str(tmp_path / "wave.npz"), "--fps", "6"]) == 0
    assert main(["-q", "animate", str(tmp_path / "ref.png"), str(tmp_path / "wave.npz"), "-o", str(tmp_path / "out.mp4"),
                 "--side-by-side", str(tmp_path / "sbs.mp4")]) == 0
    out = FrameSource(tmp_path / "out.mp4")
    assert out.num_frames == 18 and out.size == (512, 512) and out.fps == 6
    assert FrameSource(tmp_path / "sbs.mp4").size == (1536, 512)
    # the poses it followed: aligned onto the astronaut's canvas, one frame per video frame
    used = load_poses(tmp_path / "out.poses.json")
    assert used.num_frames == 18 and used.size == (512, 512)
    wave = load_poses(tmp_path / "wave.npz")
    both = used.present[0, 0, :17] & wave.present[0, 0, :17]
    assert both.sum() >= 5
    # moved by alignment (a few px: the astronaut shows no hips now, so the neck is the root)
    assert np.abs(used.keypoints[0, 0, :17][both] - wave.keypoints[0, 0, :17][both]).max() > 2
    # ... and `holdpose evaluate` finds them without --target
    assert main(["-q", "evaluate", str(tmp_path / "out.mp4"), "-o", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["inputs"]["target"].endswith("out.poses.json") and metrics["pck@0.1"] > 0.5


def test_import_bvh_fixture(tmp_path):
    bvh = fixture_path("motions", "bvh_fair1_wave_hello.bvh")
    assert main(["-q", "import-bvh", str(bvh), "-o", str(tmp_path / "m.npz"), "--fps", "24", "--size", "320x240"]) == 0
    seq = load_poses(tmp_path / "m.npz")
    assert seq.size == (320, 240) and abs(seq.duration - 7.0) < 0.1
    inside = seq.keypoints[seq.scores > 0]
    assert (inside >= 0).all() and (inside[:, 0] <= 320).all() and (inside[:, 1] <= 240).all()


def test_animate_refuses_poses_that_do_not_match_when_not_aligning(tmp_path, astronaut):
    write_image(tmp_path / "ref.png", astronaut)
    save_poses(random_sequence(num_frames=2, size=(640, 480)), tmp_path / "p.npz")
    with pytest.raises(Exception, match="differs from the reference"):
        from holdpose.animate.warp import WarpAnimator

        list(WarpAnimator()(astronaut, load_poses(tmp_path / "p.npz")))
