"""Temporal metrics with known answers: VBench flickering, warping error, keypoint jitter."""

from __future__ import annotations

import numpy as np
import pytest

from holdpose.evaluate.temporal import (
    FlickerMeter,
    WarpErrorMeter,
    flicker_score,
    keypoint_jitter,
    temporal_flickering,
    warp_error,
)
from holdpose.sequence import PoseSequence


def _texture(h=96, w=128, seed=0) -> np.ndarray:
    """A smooth random texture in [40, 200] (no clipping when brightened by up to 55)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 1, (h // 8, w // 8, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(40 + 160 * smooth, 40, 200).astype(np.uint8)


def _flickered(frames, d):
    return [np.clip(f.astype(int) + (d if t % 2 else 0), 0, 255).astype(np.uint8) for t, f in enumerate(frames)]


def test_still_video_has_no_flicker():
    frames = [_texture()] * 5
    result = temporal_flickering(frames)
    assert result.raw == 0.0 and result.score == 1.0
    assert result.per_pair.tolist() == [0.0] * 4


@pytest.mark.parametrize("d", [1, 5, 20])
def test_injected_flicker_raises_flickering_by_d(d):
    still = [_texture()] * 6
    result = temporal_flickering(_flickered(still, d))
    assert result.raw == pytest.approx(d, abs=1e-12)  # every pair differs by exactly d everywhere
    assert result.score == pytest.approx((255 - d) / 255)
    assert flicker_score(result.raw) == result.score


def test_flicker_on_moving_content_is_the_vbench_mean_absolute_difference():
    moving = [np.roll(_texture(), 2 * t, axis=1) for t in range(6)]
    base = temporal_flickering(moving)
    expected = np.mean([np.abs(a.astype(float) - b.astype(float)).mean() for a, b in zip(moving[:-1], moving[1:])])
    assert base.raw == pytest.approx(expected, rel=1e-12)
    d = 10
    flickered = temporal_flickering(_flickered(moving, d))
    assert base.raw < flickered.raw <= base.raw + d + 1e-9  # |x + d| <= |x| + d, equal only if all diffs share a sign


def test_flicker_meter_streams():
    meter = FlickerMeter()
    frames = _flickered([_texture()] * 3, 4)
    assert [meter.update(f) for f in frames] == [None, 4.0, 4.0]
    with pytest.raises(ValueError, match="two frames"):
        temporal_flickering(frames[:1])


def test_warp_error_small_for_translation_and_measures_flicker():
    moving = [np.roll(_texture(192, 256), 3 * t, axis=1) for t in range(5)]
    mean, per_pair = warp_error(moving)
    assert len(per_pair) == 4
    assert mean < 2e-4  # the flow explains the motion; only interpolation and borders remain
    d = 12
    flickered_mean, _ = warp_error(_flickered(moving, d))
    assert flickered_mean == pytest.approx((d / 255) ** 2 + mean, rel=0.15)
    # Flicker still dominates with Farneback's flow and without the consistency mask.
    for options in ({"flow": "farneback"}, {"consistency": False}, {"short_side": None}):
        assert warp_error(_flickered(moving, d), **options)[0] > 0.6 * (d / 255) ** 2


def test_warp_error_meter_checks():
    meter = WarpErrorMeter()
    assert meter.update(_texture()) is None
    with pytest.raises(ValueError, match="differ in shape"):
        meter.update(_texture(64, 64))
    with pytest.raises(ValueError, match="flow"):
        WarpErrorMeter(flow="raft")


def _track(points: np.ndarray) -> PoseSequence:
    """One person, keypoints ``[T, K, 2]`` placed in the first K WholeBody points."""
    t, k = points.shape[:2]
    seq = PoseSequence.empty(t, 1, size=(640, 480))
    seq.keypoints[:, 0, :k] = points
    seq.scores[:, 0, :k] = 1.0
    seq.track_ids[:] = 0
    return seq


def test_keypoint_jitter_known_answers():
    t = np.arange(10, dtype=np.float64)
    start = np.random.default_rng(0).uniform(100, 300, (17, 2))
    # Constant velocity: no acceleration.
    steady = start[None] + np.array([3.0, -1.0]) * t[:, None, None]
    jitter = keypoint_jitter(_track(steady))
    assert jitter.mean == pytest.approx(0.0, abs=1e-4)
    assert np.isnan(jitter.per_frame[0]) and np.isnan(jitter.per_frame[-1])
    # Alternating offset a: the second difference is 4a every frame.
    a = 2.5
    shaky = steady + (a * (-1.0) ** t)[:, None, None] * np.array([1.0, 0.0])
    jitter = keypoint_jitter(_track(shaky))
    assert jitter.mean == pytest.approx(4 * a, rel=1e-4)
    assert jitter.count == 8 * 17
    np.testing.assert_allclose(jitter.per_frame[1:-1], 4 * a, rtol=1e-4)


def test_keypoint_jitter_skips_missing_points_and_follows_track_ids():
    t = np.arange(6, dtype=np.float64)
    points = np.random.default_rng(1).uniform(100, 300, (17, 2))[None] + t[:, None, None]
    seq = _track(points)
    seq.scores[2, 0, 0] = 0  # point 0 missing at frame 2: frames 1, 2, 3 lose it
    assert keypoint_jitter(seq).count == 4 * 17 - 3
    # Two people whose slots swap every frame: following ids, there is no jitter.
    two = PoseSequence.empty(6, 2, size=(640, 480))
    a, b = points, points + 200
    for f in range(6):
        order = (a, b) if f % 2 == 0 else (b, a)
        ids = (0, 1) if f % 2 == 0 else (1, 0)
        for slot in range(2):
            two.keypoints[f, slot, :17] = order[slot][f]
            two.scores[f, slot, :17] = 1
            two.track_ids[f, slot] = ids[slot]
    assert keypoint_jitter(two).mean == pytest.approx(0.0, abs=1e-4)
    assert keypoint_jitter(two, keypoints=slice(0, 5)).count == 2 * 4 * 5
