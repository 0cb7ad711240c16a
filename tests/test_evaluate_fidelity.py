"""Fidelity metrics: known answers, agreement with scikit-image, Fréchet distance and KID."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import fixture_path
from holdpose.evaluate.fidelity import (
    PSNR_CAP_DB,
    frame_fidelity,
    frechet_distance,
    frechet_distance_from_moments,
    kernel_inception_distance,
    l1,
    polynomial_mmd2_unbiased,
    psnr,
    ssim,
)


def _variants(image: np.ndarray) -> dict[str, np.ndarray]:
    import cv2

    rng = np.random.default_rng(0)
    return {
        "noise": np.clip(image.astype(int) + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8),
        "blur": cv2.GaussianBlur(image, (9, 9), 2.5),
        "shift": np.roll(image, (3, -5), axis=(0, 1)),
        "brighter": np.clip(image.astype(int) + 30, 0, 255).astype(np.uint8),
        "inverted": 255 - image,
        "black": np.zeros_like(image),
    }


def test_identical_frames_are_perfect(astronaut):
    result = frame_fidelity(astronaut, astronaut.copy())
    assert result.ssim == pytest.approx(1.0, abs=1e-9)
    assert result.psnr == PSNR_CAP_DB  # MSE 0: capped, not inf
    assert psnr(astronaut, astronaut, cap=None) == math.inf
    assert result.l1 == 0.0


@pytest.mark.parametrize("variant", ["noise", "blur", "shift", "brighter", "inverted", "black"])
def test_ssim_and_psnr_agree_with_scikit_image(astronaut, variant):
    other = _variants(astronaut)[variant]
    expected_ssim = structural_similarity(astronaut, other, channel_axis=-1, data_range=255)
    expected_psnr = peak_signal_noise_ratio(astronaut, other, data_range=255)
    assert ssim(astronaut, other) == pytest.approx(expected_ssim, abs=1e-4)
    assert psnr(astronaut, other) == pytest.approx(expected_psnr, abs=1e-4)
    assert l1(astronaut, other) == pytest.approx(np.abs(astronaut / 255.0 - other / 255.0).mean(), abs=1e-9)


def test_ssim_odd_sizes_and_strips_agree_with_scikit_image(astronaut):
    a = astronaut[:101, :77]  # odd sizes; fewer rows than one strip plus several strips below
    b = _variants(astronaut)["noise"][:101, :77]
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, channel_axis=-1, data_range=255), abs=1e-6)
    a, b = astronaut[:7, :9], _variants(astronaut)["blur"][:7, :9]  # smallest possible
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, channel_axis=-1, data_range=255), abs=1e-6)


def test_ssim_and_psnr_agree_with_scikit_image_on_real_video_frames():
    from holdpose.io.video import FrameSource

    path = fixture_path("videos", "talk_animateanyone_talkinghead_3.mp4")
    frames = list(FrameSource(path, stop=4))
    for a, b in zip(frames[:-1], frames[1:]):
        assert ssim(a, b) == pytest.approx(structural_similarity(a, b, channel_axis=-1, data_range=255), abs=1e-4)
        assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-4)


def test_frame_checks():
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 7"):
        ssim(np.zeros((5, 16, 3), np.uint8), np.zeros((5, 16, 3), np.uint8))


# --- Fréchet distance ---------------------------------------------------------------------


def _direct_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (pytorch-fid's way)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


@pytest.mark.parametrize("seed", range(3))
def test_frechet_distance_matches_direct_formula(seed):
    rng = np.random.default_rng(seed)
    dim = 12
    a = rng.normal(0, 1, (300, dim)) @ rng.normal(0, 1, (dim, dim))
    b = rng.normal(0.5, 1.5, (250, dim)) @ rng.normal(0, 1, (dim, dim))
    assert frechet_distance(a, b) == pytest.approx(_direct_frechet(a, b), rel=1e-6)


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (500, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0])
    assert frechet_distance(a, a + shift) == pytest.approx((shift ** 2).sum(), rel=1e-9)
    # Two Gaussians with covariances s^2 I and t^2 I: d (s - t)^2.
    assert frechet_distance_from_moments(np.zeros(4), 4 * np.eye(4), np.zeros(4), np.eye(4)) == pytest.approx(4.0)
    # Fewer samples than dimensions: singular covariances still give a finite value.
    few = rng.normal(0, 1, (5, 20))
    assert np.isfinite(frechet_distance(few, few + 1)) and frechet_distance(few, few + 1) == pytest.approx(20, rel=1e-6)
    with pytest.raises(ValueError, match="feature sizes"):
        frechet_distance(a, a[:, :3])


# --- KID -------------------------------------------------------------------------------------


def _brute_force_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_polynomial_mmd_matches_brute_force():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, (9, 5)), rng.normal(0.3, 1, (9, 5))
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(_brute_force_mmd2(x, y), rel=1e-10)
    # One subset holding every vector is the whole-set estimate (MMD is order-invariant).
    kid = kernel_inception_distance(x, y, subset_size=9, num_subsets=3)
    assert kid.mean == pytest.approx(_brute_force_mmd2(x, y), rel=1e-10) and kid.std == pytest.approx(0, abs=1e-12)


def test_kid_known_behaviour():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, (400, 16))
    same = rng.normal(0, 1, (400, 16))
    near = rng.normal(0.25, 1, (400, 16))
    far = rng.normal(1.0, 1, (400, 16))
    kid_same = kernel_inception_distance(a, same, subset_size=200, num_subsets=20)
    kid_near = kernel_inception_distance(a, near, subset_size=200, num_subsets=20)
    kid_far = kernel_inception_distance(a, far, subset_size=200, num_subsets=20)
    assert abs(kid_same.mean) < 3 * kid_same.std + 1e-3  # unbiased: about 0, either sign
    assert kid_near.mean > kid_same.mean + 3 * kid_same.std
    assert kid_far.mean > 5 * kid_near.mean
    assert kid_far.subset_size == 200 and kid_far.num_subsets == 20
    # The subset size is bounded by the smaller set.
    assert kernel_inception_distance(a[:50], far, num_subsets=2).subset_size == 50
