"""Pose geometry the research systems share, as plain numpy (SEED_MODULES S6).

Part groups of a layout, a 2-D affine least-squares fit, points rasterised onto a canvas,
box dilation and pooling onto the latent grid, boxes in latent cells, and normalised Gaussian
filters. Coordinates are pixels, ``x`` right and ``y`` down; a point is present when its score
is above 0. (COCO-WholeBody ↔ OpenPose-18, with the derived neck, is :mod:`holdpose.convert`.)
"""

from __future__ import annotations

import numpy as np

from holdpose.skeleton import COCO_WHOLEBODY, Skeleton

# the parts PoseCrafter edits in the latent (§4.3), in its order
EDIT_PARTS = ("face", "left_hand", "right_hand")


def part_slice(part: str, layout: Skeleton = COCO_WHOLEBODY) -> slice:
    """Keypoint indices of ``part`` (``body``, ``feet``, ``face``, ``left_hand``, ``right_hand``)."""
    return layout.group(part)


def fit_affine(source: np.ndarray, target: np.ndarray, present: np.ndarray | None = None, *,
               min_points: int = 3, tolerance: float = 1e-6) -> np.ndarray | None:
    """The 2x3 matrix ``A`` minimising ``Σ_l ‖A [x_l; 1] − y_l‖²`` over the points present in
    both (``source``, ``target``: ``[N, 2]`` pixels; ``present``: ``[N]`` bool).

    ``None`` when fewer than ``min_points`` points are present or they are (nearly) collinear:
    the relative smallest singular value of the centred points is below ``tolerance``, so the
    six parameters are not determined."""
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    keep = np.ones(len(source), bool) if present is None else np.asarray(present, bool)
    x, y = source[keep], target[keep]
    if len(x) < min_points:
        return None
    singular = np.linalg.svd(x - x.mean(0), compute_uv=False)
    if singular[0] == 0 or singular[-1] / singular[0] < tolerance:
        return None
    design = np.hstack([x, np.ones((len(x), 1))])  # [N, 3]
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)  # [3, 2]
    return solution.T


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``A [x; 1]`` for points ``[..., 2]``."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def affine_to_cells(matrix: np.ndarray, cell: int = 8) -> np.ndarray:
    """The same map in latent cells (pixels / ``cell``): the linear part is unchanged and the
    translation is divided by ``cell``."""
    out = np.array(matrix, np.float64)
    out[:, 2] /= cell
    return out


def bounding_box(points: np.ndarray, present: np.ndarray | None = None) -> tuple[float, float, float, float] | None:
    """``(x_min, y_min, x_max, y_max)`` of the present points ``[N, 2]``, or ``None`` if none is."""
    points = np.asarray(points, np.float64)
    keep = np.ones(len(points), bool) if present is None else np.asarray(present, bool)
    if not keep.any():
        return None
    lo, hi = points[keep].min(0), points[keep].max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def cell_box(points: np.ndarray, present: np.ndarray | None = None, *, cell: int = 8,
             grid: tuple[int, int] | None = None) -> tuple[int, int, int, int] | None:
    """The smallest box of latent cells around the present points: ``(c0, r0, c1, r1)`` with
    columns ``[⌊x_min/cell⌋, ⌈x_max/cell⌉)`` and rows likewise (PoseCrafter's edit box),
    clipped to ``grid`` = ``(columns, rows)`` when given. ``None`` when nothing is present or
    the box is empty after clipping."""
    box = bounding_box(points, present)
    if box is None:
        return None
    c0, r0 = int(np.floor(box[0] / cell)), int(np.floor(box[1] / cell))
    c1, r1 = int(np.ceil(box[2] / cell)), int(np.ceil(box[3] / cell))
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)  # a point exactly on a cell border still owns that cell
    if grid is not None:
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, grid[0]), min(r1, grid[1])
    return (c0, r0, c1, r1) if c1 > c0 and r1 > r0 else None


def rasterize_points(points: np.ndarray, present: np.ndarray | None, size: tuple[int, int],
                     values: np.ndarray | None = None) -> np.ndarray:
    """Put each present point at pixel ``(⌊y⌋, ⌊x⌋)`` of a ``size`` = ``(width, height)`` canvas.

    Without ``values``: a bool mask ``[H, W]``. With ``values`` ``[N, C]``: a float32 ``[H, W, C]``
    field holding each point's value, zero elsewhere; when points share a pixel the last one
    wins (DisPose's sparse motion field). Points outside the canvas are dropped."""
    points = np.asarray(points, np.float64)
    width, height = size
    keep = np.ones(len(points), bool) if present is None else np.asarray(present, bool).copy()
    cols, rows = np.floor(points[:, 0]).astype(np.int64), np.floor(points[:, 1]).astype(np.int64)
    keep &= (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    if values is None:
        mask = np.zeros((height, width), bool)
        mask[rows[keep], cols[keep]] = True
        return mask
    values = np.asarray(values, np.float32)
    field = np.zeros((height, width, values.shape[1]), np.float32)
    field[rows[keep], cols[keep]] = values[keep]  # numpy assigns in order: the last duplicate wins
    return field


def dilate_box(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``mask`` ``[H, W]`` by the square ``(2·radius+1)²`` (zero outside)."""
    from scipy.ndimage import maximum_filter

    if radius <= 0:
        return np.asarray(mask, bool).copy()
    return maximum_filter(np.asarray(mask, bool), size=2 * radius + 1, mode="constant", cval=False)


def pool_cells(mask: np.ndarray, cell: int = 8) -> np.ndarray:
    """``[H/cell, W/cell]`` bool: a cell is set if any of its pixels is (max-pooling)."""
    mask = np.asarray(mask, bool)
    height, width = mask.shape
    if height % cell or width % cell:
        raise ValueError(f"mask of {width}x{height} is not a whole number of {cell}-pixel cells")
    return mask.reshape(height // cell, cell, width // cell, cell).any(axis=(1, 3))


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised samples of a Gaussian at the ``size`` integer offsets around 0 (float64).
    Equals ``cv2.getGaussianKernel(size, sigma)`` and torchvision's ``GaussianBlur`` kernel
    (up to float32 rounding)."""
    if size < 1 or size % 2 == 0 or sigma <= 0:
        raise ValueError(f"a Gaussian kernel needs an odd size >= 1 and sigma > 0, got {size}, {sigma}")
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """The normalised isotropic ``size x size`` Gaussian (outer product of the 1-D kernel)."""
    k = gaussian_kernel_1d(size, sigma)
    return np.outer(k, k)


def gaussian_filter(image: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Filter each channel of ``image`` (``[H, W]`` or ``[H, W, C]``, float32) with the
    normalised ``size x size`` Gaussian, borders mirrored without repeating the edge pixel
    (reflect-101, ``cv2.filter2D``'s default). DisPose filters its sparse field with 199, σ = 20."""
    import cv2

    k = gaussian_kernel_1d(size, sigma).astype(np.float32)
    return cv2.sepFilter2D(np.asarray(image, np.float32), -1, k, k, borderType=cv2.BORDER_REFLECT_101)
