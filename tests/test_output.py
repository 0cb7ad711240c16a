"""animate/output: the video, the side-by-side and the contact sheet of an animation."""

from __future__ import annotations

import numpy as np
import pytest

from holdpose.animate.output import write_animation
from holdpose.io.video import FrameSource, read_image
from holdpose.render.openpose import overlay_pose_map, render_pose_maps

from conftest import random_sequence


def _frames(num_frames, size):
    w, h = size
    return [np.full((h, w, 3), 20 * (i + 1), np.uint8) for i in range(num_frames)]


def test_video_side_by_side_and_sheet(tmp_path):
    poses = random_sequence(num_frames=6, num_people=1, size=(96, 64), missing=0.0)
    poses.fps = 12.0
    frames = _frames(6, poses.size)
    count = write_animation(iter(frames), poses, tmp_path / "out.mp4", side_by_side=tmp_path / "sbs.mp4",
                            contact_sheet=tmp_path / "sheet.png", progress=False, sheet_frames=3)
    assert count == 6
    out, sbs = FrameSource(tmp_path / "out.mp4"), FrameSource(tmp_path / "sbs.mp4")
    assert (out.num_frames, out.size, out.fps) == (6, (96, 64), 12.0)
    assert (sbs.num_frames, sbs.size) == (6, (3 * 96, 64))
    decoded = list(out)
    assert abs(float(decoded[2].mean()) - 60) < 2  # the frames, in order
    # the sheet: frames 0, 2 or 3, 5 side by side, each above its overlay
    sheet = read_image(tmp_path / "sheet.png")
    assert sheet.shape == (2 * 64, 3 * 96, 3)
    np.testing.assert_array_equal(sheet[:64, :96], frames[0])
    maps = list(render_pose_maps(poses, "openpose_full"))
    np.testing.assert_array_equal(sheet[64:, 2 * 96:], overlay_pose_map(frames[5], maps[5], dim=0.5))


def test_overlay_keeps_the_map_and_dims_the_rest():
    frame = np.full((4, 4, 3), 100, np.uint8)
    pose_map = np.zeros_like(frame)
    pose_map[1, 2] = (255, 0, 0)
    dimmed = overlay_pose_map(frame, pose_map, dim=0.5)
    assert tuple(dimmed[1, 2]) == (255, 0, 0) and tuple(dimmed[0, 0]) == (50, 50, 50)
    blended = overlay_pose_map(frame, pose_map, alpha=0.75)
    assert tuple(blended[1, 2]) == (216, 25, 25) and tuple(blended[0, 0]) == (100, 100, 100)


def test_a_failed_animation_leaves_no_video(tmp_path):
    poses = random_sequence(num_frames=4, num_people=1, size=(64, 64))

    def broken():
        yield np.zeros((64, 64, 3), np.uint8)
        raise RuntimeError("the animator failed")

    with pytest.raises(RuntimeError):
        write_animation(broken(), poses, tmp_path / "out.mp4", side_by_side=tmp_path / "sbs.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []
