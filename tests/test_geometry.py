"""Pose geometry (SEED_MODULES S6): known answers for the numpy utilities."""

import numpy as np
import pytest

from holdpose.render.geometry import (
    EDIT_PARTS, affine_to_cells, apply_affine, bounding_box, cell_box, dilate_box, fit_affine, gaussian_filter,
    gaussian_kernel, gaussian_kernel_1d, part_slice, pool_cells, rasterize_points)


def test_parts_are_the_wholebody_groups():
    assert [part_slice(p) for p in EDIT_PARTS] == [slice(23, 91), slice(91, 112), slice(112, 133)]


def test_affine_least_squares_recovers_a_random_map_exactly():
    rng = np.random.default_rng(0)
    truth = np.hstack([rng.normal(size=(2, 2)), rng.normal(size=(2, 1)) * 50])
    face = rng.uniform(100, 300, size=(68, 2))
    assert np.allclose(fit_affine(face, apply_affine(truth, face)), truth, atol=1e-6)


def test_affine_uses_only_points_present_and_refuses_underdetermined_sets():
    rng = np.random.default_rng(1)
    truth = np.array([[1.1, 0.2, 5.0], [-0.1, 0.9, -3.0]])
    points = rng.uniform(0, 100, size=(10, 2))
    target = apply_affine(truth, points)
    target[3] += 1000  # an outlier that is absent
    present = np.ones(10, bool)
    present[3] = False
    assert np.allclose(fit_affine(points, target, present), truth, atol=1e-9)
    assert fit_affine(points[:2], target[:2]) is None  # two points
    line = np.stack([np.arange(5.0), 2 * np.arange(5.0) + 1], axis=1)
    assert fit_affine(line, line) is None  # collinear


def test_affine_in_latent_cells_divides_only_the_translation():
    matrix = np.array([[2.0, 0.5, 16.0], [0.0, 1.0, -8.0]])
    cells = affine_to_cells(matrix, 8)
    assert np.array_equal(cells, [[2.0, 0.5, 2.0], [0.0, 1.0, -1.0]])
    p = np.array([[40.0, 24.0]])
    assert np.allclose(apply_affine(cells, p / 8), apply_affine(matrix, p) / 8)


def test_boxes_in_pixels_and_in_latent_cells():
    points = np.array([[10.0, 20.0], [30.5, 41.0], [500, 500]])
    present = np.array([True, True, False])
    assert bounding_box(points, present) == (10.0, 20.0, 30.5, 41.0)
    assert cell_box(points, present) == (1, 2, 4, 6)  # [⌊10/8⌋, ⌈30.5/8⌉) x [⌊20/8⌋, ⌈41/8⌉)
    assert cell_box(np.array([[16.0, 16.0]])) == (2, 2, 3, 3)  # a point on a cell corner owns that cell
    assert cell_box(np.array([[-20.0, 5.0], [20.0, 90.0]]), grid=(8, 8)) == (0, 0, 3, 8)
    assert bounding_box(points, np.zeros(3, bool)) is None and cell_box(points, np.zeros(3, bool)) is None


def test_rasterised_points_land_on_the_floor_pixel_and_the_last_duplicate_wins():
    points = np.array([[10.7, 20.2], [10.1, 20.9], [3.0, 4.0], [64.0, 1.0], [-0.5, 2.0]])
    mask = rasterize_points(points, None, (64, 32))
    assert mask.shape == (32, 64) and mask.dtype == bool
    assert set(zip(*np.nonzero(mask))) == {(20, 10), (4, 3)}  # the last two are off the canvas
    values = np.array([[1, 1], [3, 4], [5, 6], [7, 7], [8, 8]], np.float32)
    field = rasterize_points(points, np.array([1, 1, 0, 1, 1], bool), (64, 32), values)
    assert field.shape == (32, 64, 2) and np.array_equal(field[20, 10], [3, 4])
    assert np.count_nonzero(field.any(-1)) == 1


def test_box_dilation_and_pooling_give_the_stable_pose_cells():
    # one skeleton pixel at (x, y) = (20, 30), radius 6: cells meeting [14, 26] x [24, 36]
    mask = np.zeros((64, 64), bool)
    mask[30, 20] = True
    dilated = dilate_box(mask, 6)
    assert dilated.sum() == 13 * 13 and dilated[24:37, 14:27].all()
    cells = pool_cells(dilated, 8)
    assert set(zip(*np.nonzero(cells))) == {(r, c) for r in (3, 4) for c in (1, 2, 3)}
    assert not pool_cells(dilate_box(np.zeros((64, 64), bool), 11)).any()
    assert (pool_cells(dilate_box(mask, 11)) >= cells).all()  # the coarse mask contains the fine one
    with pytest.raises(ValueError, match="8-pixel cells"):
        pool_cells(np.zeros((60, 64), bool))


def test_gaussian_kernels_are_normalised_and_match_opencv():
    import cv2

    k = gaussian_kernel_1d(13, 3.0)
    assert k.sum() == pytest.approx(1.0) and np.allclose(k, cv2.getGaussianKernel(13, 3.0).ravel())
    kernel = gaussian_kernel(199, 20.0)
    # DisPose's centre weight: 1 / Σ exp(−r²/800) over the 199x199 window
    assert kernel[99, 99] == pytest.approx(3.979e-4, rel=1e-3)


def test_gaussian_filter_of_a_point_is_the_kernel_and_borders_reflect_101():
    field = np.zeros((300, 300, 2), np.float32)
    field[150, 140] = (3, 4)
    out = gaussian_filter(field, 199, 20.0)
    centre = gaussian_kernel(199, 20.0)[99, 99]
    assert np.allclose(out[150, 140], np.array([3, 4]) * centre, rtol=1e-5)
    assert np.allclose(out.sum((0, 1)), (3, 4), rtol=1e-4)  # mass kept away from the borders
    assert out[150, 150, 0] == pytest.approx(out[150, 130, 0], rel=1e-5)  # isotropic
    assert out[160, 140, 0] == pytest.approx(out[150, 150, 0], rel=1e-5)
    edge = np.zeros((9, 9), np.float32)
    edge[0, 4] = 1
    blurred = gaussian_filter(edge, 3, 1.0)
    k = gaussian_kernel_1d(3, 1.0)
    # reflect-101: row -1 mirrors row 1 (zero), so the edge pixel keeps only the centre row's weight
    assert blurred[0, 4] == pytest.approx(k[1] * k[1], rel=1e-6)
