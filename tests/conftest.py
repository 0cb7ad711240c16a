"""Shared fixtures: real material from ../shared/fixtures (skipped when absent) and small synthetic data."""

from __future__ import annotations

import contextlib

from pathlib import Path

import numpy as np
import pytest

from holdpose.sequence import PoseSequence

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixture_path(*parts: str) -> Path:
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is absent")
    return path


@pytest.fixture
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def random_sequence(num_frames=5, num_people=2, size=(640, 480), seed=0, missing=0.2) -> PoseSequence:
    """A COCO-WholeBody sequence with random points inside the canvas and some points missing."""
    rng = np.random.default_rng(seed)
    seq = PoseSequence.empty(num_frames, num_people, size=size, fps=25.0)
    seq.keypoints[:] = rng.uniform([5, 5], [size[0] - 5, size[1] - 5], seq.keypoints.shape).astype(np.float32)
    seq.scores[:] = rng.uniform(0.31, 1.0, seq.scores.shape)
    drop = rng.random(seq.scores.shape) < missing
    seq.scores[drop] = 0
    seq.keypoints[drop] = 0
    seq.track_ids[:] = np.arange(num_people)
    return seq


@contextlib.contextmanager
def interrupted_after_frames(monkeypatch, count: int):
    """Within the block, the ``count + 1``-th image written by holdpose raises KeyboardInterrupt
    (as Ctrl-C would), after ``count`` frames are on disk; normal writing is back afterwards."""
    import holdpose.io.video as video  # run_animation writes each frame with video.write_image

    real_write, written = video.write_image, []

    def write_then_interrupt(path, image):
        if len(written) == count:
            raise KeyboardInterrupt
        real_write(path, image)
        written.append(path)

    monkeypatch.setattr(video, "write_image", write_then_interrupt)
    try:
        yield
    finally:
        monkeypatch.setattr(video, "write_image", real_write)
