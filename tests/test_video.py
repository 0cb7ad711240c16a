import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.io.video import FrameSource, VideoWriter, open_writer, read_image, scaled_size, write_image


def gradient_frames(n, w=96, h=64):
    """Frames whose brightness encodes their index, so order survives lossy coding."""
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:] = (i * 20) % 256
        frame[:, : w // 2, 0] = 255 - (i * 20) % 256
        yield frame


def write_video(path, n=10, fps=12.0, w=96, h=64):
    with VideoWriter(path, fps=fps, size=(w, h)) as writer:
        for frame in gradient_frames(n, w, h):
            writer.write(frame)
    return path


def test_video_round_trip_keeps_count_fps_size_and_order(tmp_path):
    path = write_video(tmp_path / "v.mp4")
    source = FrameSource(path)
    assert source.num_frames == 10 and source.fps == pytest.approx(12.0) and source.size == (96, 64)
    frames = list(source)
    assert len(frames) == 10 and frames[0].shape == (64, 96, 3) and frames[0].dtype == np.uint8
    means = [f[:, 48:, 1].mean() for f in frames]
    assert np.allclose(means, [(i * 20) % 256 for i in range(10)], atol=4)


def test_short_side_resize_and_frame_range(tmp_path):
    path = write_video(tmp_path / "v.mp4", n=8)
    source = FrameSource(path, short_side=32, start=2, stop=6)
    assert source.size == (48, 32) and len(source) == 4
    frames = list(source)
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    assert frames[0][:, 24:, 1].mean() == pytest.approx(40, abs=4)  # frame 2
    assert scaled_size((1080, 1920), 512) == (512, 910)


def test_odd_sizes_are_padded_for_yuv420(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", fps=10, size=(33, 21)) as writer:
        writer.write(np.full((21, 33, 3), 200, np.uint8))
    assert FrameSource(tmp_path / "odd.mp4").size == (34, 22)


def test_image_folder_and_single_image(tmp_path):
    folder = tmp_path / "frames"
    with open_writer(folder, fps=5, size=(96, 64)) as writer:
        for frame in gradient_frames(3):
            writer.write(frame)
    source = FrameSource(folder, fps=5)
    assert source.kind == "images" and len(source) == 3 and source.fps == 5
    frames = list(source)
    assert np.array_equal(frames[1], list(gradient_frames(3))[1])  # PNG is lossless
    write_image(tmp_path / "one.png", frames[2])
    one = FrameSource(tmp_path / "one.png")
    assert one.kind == "image" and np.array_equal(next(iter(one)), frames[2])
    assert np.array_equal(read_image(tmp_path / "one.png"), frames[2])


def test_frames_are_streamed_not_loaded_at_once(tmp_path):
    path = write_video(tmp_path / "v.mp4", n=10)
    iterator = iter(FrameSource(path))
    first = next(iterator)
    assert first.shape == (64, 96, 3)  # a generator: nothing else decoded yet


def test_bad_inputs_give_one_clear_error(tmp_path):
    with pytest.raises(HoldposeError, match="no such file"):
        FrameSource(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(HoldposeError, match="empty"):
        FrameSource(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(HoldposeError, match="not a readable video"):
        FrameSource(tmp_path / "text.mp4")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(HoldposeError, match="no images"):
        FrameSource(tmp_path / "empty_dir")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(HoldposeError, match="not a readable image"):
        FrameSource(tmp_path / "bad.png")


def test_truncated_video_is_detected(tmp_path):
    path = write_video(tmp_path / "v.mp4", n=40, w=128, h=96)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(HoldposeError, match="truncated|damaged|not a readable video"):
        list(FrameSource(cut))


def test_failed_encoding_leaves_no_file(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="writer expects"):
        with VideoWriter(target, fps=10, size=(32, 32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            writer.write(np.zeros((16, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_unknown_output_type(tmp_path):
    with pytest.raises(HoldposeError, match="output must be a video"):
        open_writer(tmp_path / "x.txt", fps=1, size=(2, 2))
