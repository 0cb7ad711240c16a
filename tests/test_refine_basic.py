"""Gap filling, smoothing and left/right swap repair on synthetic sequences whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import savgol_filter

from holdpose.refine.gaps import fill_gaps
from holdpose.refine.smooth import default_window, one_euro, smooth, smooth_offline
from holdpose.refine.swaps import GROUP_NAMES, fix_swaps, swap_groups
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY

L = COCO_WHOLEBODY.index
BODY = slice(0, 17)


def walking_sequence(num_frames: int = 120, fps: float = 30.0) -> PoseSequence:
    """One person facing the camera, walking right at 60 px/s and swinging arms and legs
    (1 Hz) in the image plane: COCO body, feet and both hands present, face missing.
    About 300 px tall on a 640x480 canvas; the subject's left is image right (+x)."""
    t = np.arange(num_frames) / fps
    phase = 2 * np.pi * t
    seq = PoseSequence.empty(num_frames, 1, size=(640, 480), fps=fps)
    kp = seq.keypoints[:, 0]

    def put(name, xy):
        kp[:, L(name)] = np.stack(xy, -1) if isinstance(xy, tuple) else xy

    hip_c = np.stack([200 + 60 * t, 330 + 4 * np.sin(2 * phase)], -1)
    neck = hip_c + [0, -110]
    nose = neck + [0, -40]
    put("nose", nose)
    for side, sx, lag in (("left", 1, 0.0), ("right", -1, 1.0)):
        mirror = np.array([sx, 1.0])
        put(f"{side}_eye", nose + [8 * sx, -6])
        put(f"{side}_ear", nose + [16 * sx, 0])
        shoulder = neck + [35 * sx, 0]
        alpha = 0.4 + 0.3 * np.sin(phase + lag)  # upper arm, radians from straight down
        beta = alpha + 0.3 + 0.2 * np.sin(phase + lag)  # forearm
        elbow = shoulder + 60 * np.stack([np.sin(alpha), np.cos(alpha)], -1) * mirror
        wrist = elbow + 55 * np.stack([np.sin(beta), np.cos(beta)], -1) * mirror
        hip = hip_c + [20 * sx, 0]
        gamma = 0.12 + 0.1 * np.sin(phase + np.pi + lag)
        knee = hip + 80 * np.stack([np.sin(gamma), np.cos(gamma)], -1) * mirror
        ankle = knee + 80 * np.stack([np.sin(gamma / 2), np.cos(gamma / 2)], -1) * mirror
        for name, xy in (("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist),
                         ("hip", hip), ("knee", knee), ("ankle", ankle)):
            put(f"{side}_{name}", xy)
        put(f"{side}_big_toe", ankle + [-6 * sx, 12])
        put(f"{side}_small_toe", ankle + [8 * sx, 12])
        put(f"{side}_heel", ankle + [0, 4])
        # Hand: 21 points fanned out along the forearm direction.
        direction = np.stack([np.sin(beta) * sx, np.cos(beta)], -1)[:, None]
        normal = direction[..., ::-1] * [-1, 1]
        reach = np.r_[0, np.tile([6, 10, 14, 18], 5)]
        spread = np.r_[0, np.repeat([-8, -4, 0, 4, 8], 4)] * sx
        start = L(f"{side}_hand_wrist")
        kp[:, start:start + 21] = wrist[:, None] + reach[:, None] * direction + spread[:, None] * normal
    seq.scores[:, 0] = 1.0
    seq.scores[:, 0, COCO_WHOLEBODY.group("face")] = 0
    seq.keypoints[:, 0, COCO_WHOLEBODY.group("face")] = 0
    seq.track_ids[:] = 0
    return seq


def drop(seq: PoseSequence, k: int, frames) -> None:
    seq.scores[frames, 0, k] = 0
    seq.keypoints[frames, 0, k] = 0


# --- gaps ------------------------------------------------------------------------------

def gappy():
    truth = walking_sequence()
    seq = truth.copy()
    short = {L("left_wrist"): [(20, 21), (40, 43), (70, 75)], L("right_knee"): [(50, 52)]}
    for k, runs in short.items():
        for a, b in runs:
            drop(seq, k, slice(a, b))
    drop(seq, L("left_wrist"), slice(90, 98))  # 8 frames: too long
    drop(seq, L("nose"), slice(0, 3))  # start: nothing before
    drop(seq, L("nose"), slice(117, 120))  # end: nothing after
    expected = np.zeros(seq.scores.shape, bool)
    for k, runs in short.items():
        for a, b in runs:
            expected[a:b, 0, k] = True
    return truth, seq, expected


@pytest.mark.parametrize("method, tolerance", [("linear", 8.0), ("cubic", 1.5)])
def test_fill_gaps_fills_short_interior_gaps_close_to_truth(method, tolerance):
    truth, seq, expected = gappy()
    out = fill_gaps(seq, max_gap=5, method=method)
    assert (out.interpolated == expected).all()
    error = np.linalg.norm(out.keypoints - truth.keypoints, axis=-1)[expected]
    assert error.max() < tolerance
    np.testing.assert_allclose(out.scores[expected], 0.9)
    # Detected points untouched; the inputs are not modified.
    assert (out.keypoints[seq.present] == seq.keypoints[seq.present]).all()
    assert not seq.interpolated.any()


def test_fill_gaps_cubic_beats_linear_on_a_curved_track():
    truth, seq, expected = gappy()
    errors = [np.linalg.norm(fill_gaps(seq, method=m).keypoints - truth.keypoints, axis=-1)[expected].mean()
              for m in ("linear", "cubic")]
    assert errors[1] < 0.25 * errors[0]


def test_fill_gaps_never_extrapolates_nor_bridges_long_gaps():
    _, seq, _ = gappy()
    out = fill_gaps(seq, max_gap=5)
    for frames, k in ((slice(90, 98), "left_wrist"), (slice(0, 3), "nose"), (slice(117, 120), "nose")):
        assert (out.scores[frames, 0, L(k)] == 0).all()
        assert not out.interpolated[frames, 0, L(k)].any()
    assert not fill_gaps(seq, max_gap=0).interpolated.any()
    assert fill_gaps(seq, max_gap=8).interpolated[90:98, 0, L("left_wrist")].all()


def test_fill_gaps_scores_and_track_ids():
    seq = walking_sequence(10)
    seq.scores[2, 0, 0], seq.scores[6, 0, 0] = 0.8, 0.5
    drop(seq, 0, slice(3, 6))
    seq.scores[3, 0] = 0  # slot empty in frame 3
    seq.track_ids[3] = -1
    out = fill_gaps(seq, max_gap=5)
    np.testing.assert_allclose(out.scores[3:6, 0, 0], 0.9 * 0.5)
    assert out.track_ids[3, 0] == 0  # the empty slot takes the id around it
    assert out.interpolated[3, 0, seq.scores[2, 0] > 0].all()
    # A different person on the far side of the gap: nothing is filled.
    other = seq.copy()
    other.track_ids[4:] = 7
    assert not fill_gaps(other, max_gap=5).interpolated.any()


def test_fill_gaps_rejects_bad_arguments():
    seq = walking_sequence(5)
    with pytest.raises(ValueError, match="method"):
        fill_gaps(seq, method="spline")
    with pytest.raises(ValueError, match="max_gap"):
        fill_gaps(seq, max_gap=-1)


# --- smoothing ---------------------------------------------------------------------------

def jittered(truth: PoseSequence, sigma: float = 2.0, seed: int = 0) -> PoseSequence:
    seq = truth.copy()
    rng = np.random.default_rng(seed)
    seq.keypoints += rng.normal(0, sigma, seq.keypoints.shape).astype(np.float32) * seq.present[..., None]
    return seq


def rms(a: PoseSequence, b: PoseSequence, frames=slice(None)) -> float:
    mask = a.present[frames]
    return float(np.sqrt((((a.keypoints[frames] - b.keypoints[frames]) ** 2).sum(-1))[mask].mean()))


def test_offline_equals_savgol_filter_for_equal_scores():
    seq = jittered(walking_sequence(60))
    seq.scores[seq.present] = 0.7
    out = smooth_offline(seq, window=9, polyorder=2)
    ref = savgol_filter(seq.keypoints, 9, 2, axis=0)
    inner = slice(4, -4)
    present = seq.present[inner]
    np.testing.assert_allclose(out.keypoints[inner][present], ref[inner][present], atol=1e-3)


def velocity_lag(estimate: PoseSequence, truth: PoseSequence, max_lag: int = 10) -> int:
    """Frames by which ``estimate`` trails ``truth``: the peak of the cross-correlation of
    their velocities, summed over body coordinates."""
    ve = np.diff(estimate.keypoints[:, 0, BODY], axis=0).reshape(len(estimate) - 1, -1)
    vt = np.diff(truth.keypoints[:, 0, BODY], axis=0).reshape(len(truth) - 1, -1)
    n = len(ve)
    corr = [(ve[lag:] * vt[:n - lag]).sum() if lag >= 0 else (ve[:n + lag] * vt[-lag:]).sum()
            for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(corr)) - max_lag


def test_offline_reduces_jitter_with_zero_lag():
    truth = walking_sequence(150)
    noisy = jittered(truth)
    out = smooth(noisy, method="offline", window=11)  # 0.37 s: best for this fast 1 Hz walk
    assert default_window(truth.fps) == 23 and default_window(24.0) == 19 and default_window(2.0) == 5
    assert rms(out, truth) < 0.6 * rms(noisy, truth)
    assert velocity_lag(out, truth) == 0
    assert velocity_lag(one_euro(noisy), truth) >= 1  # the causal filter lags; the check can see it


def test_offline_ignores_missing_points_and_keeps_them_missing():
    truth = walking_sequence(60)
    seq = jittered(truth)
    rng = np.random.default_rng(1)
    gone = (rng.random(seq.scores.shape) < 0.2) & seq.present
    seq.scores[gone] = 0
    seq.keypoints[gone] = 0
    garbage = seq.copy()
    garbage.keypoints[gone] = 1e4  # values of missing points must not matter
    out, out_garbage = smooth_offline(seq, window=11), smooth_offline(garbage, window=11)
    assert (out.scores == seq.scores).all()
    assert (out.keypoints[gone] == 0).all()
    np.testing.assert_allclose(out.keypoints[seq.present], out_garbage.keypoints[seq.present], atol=1e-3)
    assert rms(out, truth) < 0.7 * rms(seq, truth)


def test_offline_pulls_low_confidence_points_more():
    truth = walking_sequence(40)
    k, t = L("left_elbow"), 20
    errors = {}
    for score in (1.0, 0.1):
        seq = truth.copy()
        seq.keypoints[t, 0, k] += [0, 20]
        seq.scores[t, 0, k] = score
        out = smooth_offline(seq, window=9)
        errors[score] = np.linalg.norm(out.keypoints[t, 0, k] - truth.keypoints[t, 0, k])
    assert errors[0.1] < 0.5 * errors[1.0]


def test_one_euro_quiets_a_still_pose():
    still = walking_sequence(1)[np.zeros(200, int)]
    noisy = jittered(still, sigma=2.0)
    out = one_euro(noisy)
    settled = slice(30, None)
    assert rms(out, still, settled) < 0.5 * rms(noisy, still, settled)


def test_one_euro_follows_a_fast_move_and_is_causal():
    seq = PoseSequence.empty(60, 1, fps=30.0)
    seq.scores[:] = 1
    seq.track_ids[:] = 0
    speed = 20.0  # px per frame (600 px/s), starting at frame 20
    seq.keypoints[:, 0, :, 0] = (speed * np.clip(np.arange(60) - 20, 0, None))[:, None]
    adaptive = one_euro(seq)
    fixed = one_euro(seq, beta=0.0)
    lag_px = lambda s: np.abs(s.keypoints[35:, 0, 0, 0] - seq.keypoints[35:, 0, 0, 0]).mean()  # noqa: E731
    assert lag_px(adaptive) < speed  # less than one frame behind
    assert lag_px(adaptive) < 0.25 * lag_px(fixed)
    # Causal: changing the future leaves the past alone.
    future = seq.copy()
    future.keypoints[40:] += 50
    np.testing.assert_array_equal(one_euro(future).keypoints[:40], adaptive.keypoints[:40])


def test_one_euro_keeps_missing_points_missing():
    seq = jittered(walking_sequence(30))
    drop(seq, L("left_wrist"), slice(10, 15))
    out = smooth(seq, method="one_euro", min_cutoff=0.5)
    assert (out.keypoints[10:15, 0, L("left_wrist")] == 0).all()
    assert (out.scores == seq.scores).all()
    assert np.isfinite(out.keypoints).all()


def test_smoothing_rejects_bad_arguments():
    seq = walking_sequence(5)
    with pytest.raises(ValueError, match="method"):
        smooth(seq, method="kalman")
    with pytest.raises(ValueError, match="odd"):
        smooth_offline(seq, window=8)
    with pytest.raises(ValueError, match="polyorder"):
        smooth_offline(seq, window=5, polyorder=5)
    with pytest.raises(ValueError, match="min_cutoff"):
        one_euro(seq, min_cutoff=0)


# --- swaps -----------------------------------------------------------------------------

def inject_swaps(seq: PoseSequence, fraction: float = 0.1, seed: int = 0):
    """Swap arms, legs or the whole body (left/right partners exchanged) in ``fraction`` of the
    frames; returns the swapped copy, the frames and bool ``[T, G]`` of swapped groups."""
    rng = np.random.default_rng(seed)
    groups = swap_groups(seq.layout)
    frames = rng.choice(seq.num_frames, int(round(fraction * seq.num_frames)), replace=False)
    choices = [("arms",), ("legs",), GROUP_NAMES]
    kinds = [choices[i] for i in rng.integers(0, len(choices), len(frames))]
    injected = np.zeros((seq.num_frames, len(GROUP_NAMES)), bool)
    out = seq.copy()
    for t, kind in zip(frames, kinds):
        for name in kind:
            injected[t, GROUP_NAMES.index(name)] = True
            for i, j in groups[name]:
                for arr in (out.keypoints, out.scores, out.interpolated):
                    arr[t, 0, [i, j]] = arr[t, 0, [j, i]]
    return out, frames, injected


def test_swap_groups_come_from_the_layout():
    groups = swap_groups(COCO_WHOLEBODY)
    names = COCO_WHOLEBODY.keypoint_names
    assert (L("left_shoulder"), L("right_shoulder")) in groups["arms"]
    assert (L("left_hand_wrist"), L("right_hand_wrist")) in groups["arms"]
    assert (L("left_heel"), L("right_heel")) in groups["legs"]
    assert all(names[i].startswith("face") or "eye" in names[i] or "ear" in names[i] for i, _ in groups["head"])
    assert sum(map(len, groups.values())) == len(COCO_WHOLEBODY.flip_pairs)


def test_fix_swaps_leaves_a_clean_sequence_alone():
    truth = walking_sequence(150)
    out, swapped = fix_swaps(jittered(truth, sigma=1.0))
    assert swapped.shape == (150, 1, len(GROUP_NAMES))
    assert not swapped.any()


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_fix_swaps_repairs_injected_swaps(missing):
    truth = jittered(walking_sequence(150), sigma=1.0, seed=3)
    rng = np.random.default_rng(2)
    gone = (rng.random(truth.scores.shape) < missing) & truth.present
    truth.scores[gone] = 0
    truth.keypoints[gone] = 0
    truth.scores[truth.present] = rng.uniform(0.5, 1.0, truth.present.sum())  # distinct per point
    truth.interpolated[40:60, 0, L("left_wrist")] = True
    seq, frames, injected = inject_swaps(truth)

    out, swapped = fix_swaps(seq)
    correct = (swapped[:, 0] == injected).all(-1)
    assert correct[frames].mean() >= 0.95
    assert not (swapped[:, 0] & ~injected).any()  # no new swap
    # Repaired frames equal the truth in keypoints, scores and flags.
    ok = np.flatnonzero(correct)
    np.testing.assert_array_equal(out.keypoints[ok], truth.keypoints[ok])
    np.testing.assert_array_equal(out.scores[ok], truth.scores[ok])
    np.testing.assert_array_equal(out.interpolated[ok], truth.interpolated[ok])


def test_fix_swaps_works_on_the_openpose_layout():
    from holdpose.convert import wholebody_to_openpose
    from holdpose.skeleton import OPENPOSE_BODY

    truth = jittered(walking_sequence(150), sigma=1.0, seed=5)
    points, scores = wholebody_to_openpose(truth.keypoints, truth.scores)["body"]
    body = PoseSequence(points, scores, truth.track_ids, layout=OPENPOSE_BODY, size=truth.size, fps=truth.fps)
    assert [len(v) for v in swap_groups(OPENPOSE_BODY).values()] == [3, 3, 2]
    seq, frames, injected = inject_swaps(body, seed=1)
    out, swapped = fix_swaps(seq)
    assert (swapped[:, 0] == injected).all(-1)[frames].mean() >= 0.95
    assert not (swapped[:, 0] & ~injected).any()


@pytest.mark.parametrize("num_frames", [0, 1, 2])
def test_refine_steps_accept_tiny_sequences(num_frames):
    seq = walking_sequence(max(num_frames, 1))[:num_frames]
    for step in (fill_gaps, smooth_offline, one_euro, lambda s: fix_swaps(s)[0]):
        out = step(seq)
        assert out.keypoints.shape == seq.keypoints.shape
        same = slice(1) if step is one_euro else slice(None)  # too few frames to change the rest
        np.testing.assert_allclose(out.keypoints[same], seq.keypoints[same], atol=1e-4)
