"""DisPose's pure-numpy signals (SEED_MODULES §3): sparse field, frame bookkeeping, dense input,
rescale, windows and their weights, watershed sampling. Known answers, no model."""

import numpy as np
import pytest

from holdpose.animate.diffusion.windows import context_windows, fusion_weights, window_profile
from holdpose.render.motion import (
    openpose_tracks, reference_sparse_flow, rescale_to_reference, resize_dense_flow, sample_sparse_flow,
    sparse_displacements, sparse_motion_fields, watershed_points)
from holdpose.sequence import PoseSequence

CENTRE_GAIN = 1 / np.exp(-(np.arange(-99, 100)[:, None] ** 2 + np.arange(-99, 100)[None] ** 2) / 800).sum()


def one_point_track(start, end, k=3):
    points = np.zeros((2, 18, 2))
    present = np.zeros((2, 18), bool)
    points[0, k], points[1, k] = start, end
    present[:, k] = True
    return points, present


def test_unfiltered_field_holds_the_displacement_at_the_start_pixel_only():
    points, present = one_point_track((10.7, 20.2), (13.7, 24.2))
    raw = sparse_displacements(points, present, (64, 48))
    assert raw.shape == (1, 2, 48, 64)
    assert np.flatnonzero(raw[0, 0]).tolist() == [20 * 64 + 10]
    assert np.allclose(raw[0, :, 20, 10], (3, 4))


def test_filtered_field_is_a_normalised_gaussian_bump_summing_to_the_displacement():
    assert CENTRE_GAIN == pytest.approx(3.979e-4, rel=1e-3)
    points, present = one_point_track((300, 310), (303, 314))  # far from every border of 600x600
    fields = sparse_motion_fields(points, present, (600, 600))
    assert fields.shape == (2, 2, 600, 600) and not fields[0].any()  # zero field for the reference
    assert np.allclose(fields[1, :, 310, 300], np.array([3, 4]) * CENTRE_GAIN, rtol=1e-4)
    assert np.allclose(fields[1].sum(axis=(1, 2)), (3, 4), rtol=1e-4)
    bump = fields[1, 0]
    # isotropic: the same value at the same distance along both axes and diagonals
    ring = [bump[310, 320], bump[330, 300], bump[290, 300], bump[310, 280]]  # 20 px away on both axes
    assert np.allclose(ring, ring[0], rtol=1e-5)
    assert bump[310, 300] == bump.max()


def test_missing_end_point_writes_nothing_unlike_the_official_code():
    points, present = one_point_track((10, 20), (0, 0))
    present[1, 3] = False
    assert not sparse_displacements(points, present, (32, 32)).any()


def test_frame_bookkeeping_n_frames_give_n_fields_after_the_zero_one():
    rng = np.random.default_rng(0)
    points = rng.uniform(5, 59, (6, 18, 2))  # reference + 5 driving frames
    present = np.ones((6, 18), bool)
    fields = sparse_motion_fields(points, present, (64, 64), kernel=5, sigma=1.0)
    raw = sparse_displacements(points, present, (64, 64))
    assert len(fields) == 6 and len(raw) == 5 and not fields[0].any()
    # the field of clip frame f (index f + 1 with the reference first) is the move from f - 1 to f
    for f in range(1, 6):
        assert np.allclose(fields[f].sum(axis=(1, 2)), raw[f - 1].sum(axis=(1, 2)), atol=1e-3)


def test_openpose_tracks_put_the_reference_first_with_the_derived_neck():
    from diffusion_fixtures import walking_poses

    poses = walking_poses(4)
    points, present = openpose_tracks(poses, poses[2:3])
    assert points.shape == (5, 18, 2) and present[:, :14].all()
    assert np.allclose(points[0], points[3])  # the reference pose was frame 2
    assert np.allclose(points[1, 1], poses.keypoints[0, 0, [5, 6]].mean(0))  # neck = mean of the shoulders


def test_reference_sparse_flow_is_non_zero_only_at_the_scaled_reference_points():
    reference = np.array([[100.0, 50.0], [20.0, 200.0]])
    target = reference + [[10.0, -5.0], [0.0, 30.0]]
    flow, mask = reference_sparse_flow(reference, [True, True], target, [True, True], (200, 400), grid=384)
    assert flow.shape == mask.shape == (2, 384, 384)
    cells = [(int(50 * 384 / 400), int(100 * 384 / 200)), (int(200 * 384 / 400), int(20 * 384 / 200))]
    assert sorted(zip(*np.nonzero(mask[0]))) == sorted(cells)
    assert np.allclose(flow[:, cells[0][0], cells[0][1]], (10 * 384 / 200, -5 * 384 / 400))
    assert np.count_nonzero(flow[1]) == 2 and (mask[0] == mask[1]).all()


def test_dense_flow_rescaling_multiplies_u_and_v_by_the_size_ratios():
    dense = np.zeros((2, 384, 384), np.float32)
    dense[0], dense[1] = 3.0, -2.0
    out = resize_dense_flow(dense, (576, 1024))
    assert out.shape == (2, 1024, 576)
    assert np.allclose(out[0], 3 * 576 / 384) and np.allclose(out[1], -2 * 1024 / 384)


def test_rescale_undoes_a_scale_and_shift_of_the_reference():
    rng = np.random.default_rng(1)
    reference = rng.uniform(50, 400, (18, 2))
    driving = np.stack([0.7 * reference + [30, -12] + rng.normal(0, 0, (18, 2)) for _ in range(3)])
    present = np.ones((3, 18), bool)
    back = rescale_to_reference(driving, present, reference, np.ones(18, bool), (512, 512), (512, 512))
    assert np.allclose(back, reference[None], atol=1e-6)


def test_dispose_windows_and_triangular_weights():
    windows = [np.r_[0, w + 1] for w in context_windows(39, 15, 10)]  # clip of 40 with the reference at 0
    assert [w.tolist() for w in windows] == [[0, *range(1, 16)], [0, *range(11, 26)], [0, *range(21, 36)],
                                             [0, *range(25, 40)]]
    full = window_profile(16, "triangular")
    assert full[0] == full[15] == pytest.approx(0.0625) and full[7] == full[8] == pytest.approx(0.9375)
    assert np.allclose(window_profile(15, "triangular", lead=1), full[1:])  # the anchor keeps position 0
    weights = fusion_weights([w[1:] - 1 for w in windows], 39, "triangular", lead=1)
    fused = np.zeros(39)
    for window, weight in zip(windows, weights):
        np.add.at(fused, window[1:] - 1, weight * 2.5)  # every window predicts the constant 2.5
    assert np.allclose(fused, 2.5)


def test_watershed_points_lie_inside_moving_regions_away_from_edges_and_borders():
    flow = np.zeros((2, 200, 200), np.float32)
    flow[:, 40:160, 40:160] = 5.0  # one square moves; its edges are the flow's edges
    points = watershed_points(flow, nms=41)
    assert len(points) >= 1
    x, y = points[0]
    assert 80 <= x <= 120 and 80 <= y <= 120  # the deepest point is the square's centre
    assert (points >= 20).all() and (points < 180).all()
    sparse, mask = sample_sparse_flow(flow, points[:1])
    assert np.allclose(sparse[:, y, x], 5.0) and mask.sum() == 2


def test_sparse_flow_sampled_for_training_on_the_cmp_grid():
    flow = np.full((2, 100, 200), 2.0, np.float32)
    sparse, mask = sample_sparse_flow(flow, np.array([[100, 50]]), grid=384)
    assert mask[0, int(50 * 3.84), int(100 * 1.92)] == 1
    assert np.allclose(sparse[:, int(50 * 3.84), int(100 * 1.92)], (2 * 1.92, 2 * 3.84))


def test_empty_poses_make_zero_fields():
    seq = PoseSequence.empty(3, 1, size=(32, 32))
    points, present = openpose_tracks(seq)
    assert not present.any() and not sparse_motion_fields(points, present, (32, 32)).any()
