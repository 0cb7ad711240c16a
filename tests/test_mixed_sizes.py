"""Image folders of mixed sizes: other sizes are letterboxed into the first image's canvas, with an exact mapping."""

import numpy as np
import pytest

from holdpose.io.video import FrameSource, canvas_to_image, letterbox_placement, write_image


def test_placement_known_answers():
    assert letterbox_placement((50, 50), (200, 100)) == (2.0, 2.0, 50, 0)
    assert letterbox_placement((400, 100), (200, 100)) == (0.5, 0.5, 0, 25)
    assert letterbox_placement((200, 100), (200, 100)) == (1.0, 1.0, 0, 0)
    sx, sy, dx, dy = letterbox_placement((333, 517), (640, 480))
    assert abs(sx - sy) < 0.01 and round(517 * sy) == 480 and dx == (640 - round(333 * sx)) // 2


def test_canvas_to_image_inverts_the_placement():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, [333, 517], (20, 2))
    sx, sy, dx, dy = letterbox_placement((333, 517), (640, 480))
    on_canvas = points * [sx, sy] + [dx, dy]
    np.testing.assert_allclose(canvas_to_image(on_canvas, (333, 517), (640, 480)), points, atol=1e-9)


def test_folder_letterboxes_other_sizes_and_a_dot_lands_where_the_mapping_says(tmp_path, caplog):
    first = np.zeros((100, 200, 3), np.uint8)
    other = np.zeros((50, 50, 3), np.uint8)
    other[40, 10] = 255  # pixel (x 10, y 40): the square [10, 11] x [40, 41]
    write_image(tmp_path / "a.png", first)
    write_image(tmp_path / "b.png", other)
    source = FrameSource(tmp_path)
    frames = list(source)
    assert source.size == (200, 100) and all(f.shape == (100, 200, 3) for f in frames)
    ys, xs = np.nonzero(frames[1].max(-1) > 0)
    # scale 2, offset (50, 0): the square maps to [70, 72] x [80, 82], pixel centres 70.5..71.5
    assert set(xs) == {70, 71} and set(ys) == {80, 81}
    assert "letterboxed" in caplog.text


def test_a_photo_of_another_shape_keeps_its_keypoints(tmp_path, astronaut):
    """The astronaut, then the same photo cut to 300x512: extracted as one folder, the second
    frame's nose maps back onto the cut photo where a lone extraction puts it (stretching to
    512x512 would move it by (x - 100) * 0.7 px)."""
    from holdpose.detect.extract import extract_poses

    cut = np.ascontiguousarray(astronaut[:, 100:400])
    write_image(tmp_path / "0.png", astronaut)
    write_image(tmp_path / "1.png", cut)
    seq = extract_poses(tmp_path, workers=1, progress=False)
    alone = extract_poses(tmp_path / "1.png", workers=1, progress=False)
    assert seq.size == (512, 512) and alone.size == (300, 512)
    nose_canvas = seq.keypoints[1, 0, 0]
    nose_back = canvas_to_image(nose_canvas, (300, 512), (512, 512))
    # MediaPipe sees the padded picture slightly differently: a few pixels, not the stretch's ~15
    np.testing.assert_allclose(nose_back, alone.keypoints[0, 0, 0], atol=6)
    assert nose_canvas[0] == pytest.approx(alone.keypoints[0, 0, 0, 0] + 106, abs=6)
    stretched_x = alone.keypoints[0, 0, 0, 0] * 512 / 300
    assert abs(nose_canvas[0] - stretched_x) > 12
