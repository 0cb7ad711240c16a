"""refine/plot: the raw-vs-refined track plot a user checks a refinement with."""

from __future__ import annotations

import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.io.video import read_image
from holdpose.refine.gaps import fill_gaps
from holdpose.refine.plot import plot_tracks

from conftest import random_sequence


def test_plot_is_a_png_with_both_tracks(tmp_path):
    raw = random_sequence(num_frames=30, num_people=1, missing=0.0)
    raw.scores[10:13, 0, 10] = 0  # a gap in the right wrist, then filled
    refined = fill_gaps(raw)
    path = plot_tracks(raw, refined, tmp_path / "wrist.png", keypoint="right_wrist")
    image = read_image(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 300
    # the filled points are drawn in their own colour (matplotlib's C1, orange)
    orange = (np.abs(image.astype(int) - (255, 127, 14)).sum(-1) < 60).sum()
    assert orange > 20


def test_unknown_keypoint_is_one_clear_error(tmp_path):
    raw = random_sequence(num_frames=3, num_people=1)
    with pytest.raises(HoldposeError, match="elbow_left"):
        plot_tracks(raw, raw, tmp_path / "x.png", keypoint="elbow_left")
    assert not (tmp_path / "x.png").exists()
