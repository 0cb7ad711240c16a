"""Motion fields computed from skeletons alone (DisPose, Li et al., ICLR 2025), as plain numpy.

DisPose guides an animator with signals derived from the reference's and the driving poses'
18 OpenPose body points (no depth, no SMPL):

- the **sparse motion field** (:func:`sparse_motion_fields`): at each point of frame ``f`` the
  displacement to frame ``f + 1`` (consecutive displacements, frame 0 being the reference),
  spread by a normalised 199x199 Gaussian of σ = 20 pixels;
- the **reference-based sparse flow** (:func:`reference_sparse_flow`): at each reference
  point, the displacement to the target frame, on the 384x384 grid of the CMP propagator,
  which turns it into a dense field over the reference (:func:`resize_dense_flow` brings that
  back to the canvas);
- training samples sparse points from a dense optical flow by watershed sampling
  (:func:`watershed_points`), the paper's appendix A.

Tracks are ``points [F, 18, 2]`` pixels (``x`` right, ``y`` down) with ``present [F, 18]``,
frame 0 being the reference image's pose (:func:`openpose_tracks`). Fields are float32
``[F, 2, H, W]``, channel 0 the ``x`` displacement ``u`` and channel 1 ``v``, in pixels.

One departure from the official code, on purpose: a point present in frame ``f`` but missing
in ``f + 1`` writes no displacement here; the official code writes ``0 − p`` (the point's
position negated, a bogus jump to the image corner) because a missing point is stored as 0.
"""

from __future__ import annotations

import numpy as np

from holdpose.convert import wholebody_to_openpose
from holdpose.render.geometry import gaussian_filter, rasterize_points
from holdpose.sequence import PoseSequence

SPARSE_KERNEL = 199  # pixels, the Gaussian DisPose spreads its sparse field with
SPARSE_SIGMA = 20.0
CMP_SIZE = 384  # the CMP propagator's square input
# OpenPose-18 body points MimicMotion's rescale fits on: nose to ankles, no eyes or ears [check: DisPose's list]
RESCALE_POINTS = tuple(range(14))


def openpose_tracks(poses: PoseSequence, reference_pose: PoseSequence | None = None, *, person: int = 0,
                    min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The 18 OpenPose body points of one person through a clip, ``(points [F, 18, 2] float64,
    present [F, 18] bool)``; with ``reference_pose`` (its first frame) that pose is frame 0 and
    the clip's frames follow (F = 1 + frames). A point is present when its score is above
    ``min_score`` and it lies on the canvas."""
    frames = [poses] if reference_pose is None else [reference_pose[:1], poses]
    points = np.concatenate([seq.keypoints[:, person] for seq in frames]).astype(np.float64)
    scores = np.concatenate([seq.scores[:, person] for seq in frames])
    body_points, body_scores = wholebody_to_openpose(points, scores)["body"]
    width, height = poses.size
    on_canvas = ((body_points[..., 0] >= 0) & (body_points[..., 0] < width) & (body_points[..., 1] >= 0)
                 & (body_points[..., 1] < height))
    return body_points, (body_scores > min_score) & on_canvas


def sparse_displacements(points: np.ndarray, present: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The unfiltered sparse field: ``float32 [F - 1, 2, H, W]``, field ``f`` holding
    ``points[f + 1, k] − points[f, k]`` at pixel ``(⌊y⌋, ⌊x⌋)`` of ``points[f, k]`` for every
    point present in both frames (when two points share a pixel the later ``k`` wins)."""
    points = np.asarray(points, np.float64)
    present = np.asarray(present, bool)
    width, height = size
    out = np.zeros((max(len(points) - 1, 0), 2, height, width), np.float32)
    for f in range(len(points) - 1):
        both = present[f] & present[f + 1]
        field = rasterize_points(points[f], both, size, values=points[f + 1] - points[f])
        out[f] = field.transpose(2, 0, 1)
    return out


def sparse_motion_fields(points: np.ndarray, present: np.ndarray, size: tuple[int, int], *,
                         kernel: int = SPARSE_KERNEL, sigma: float = SPARSE_SIGMA) -> np.ndarray:
    """DisPose's sparse motion field for every frame of a track, ``float32 [F, 2, H, W]``.

    Field 0 (the reference) is zero; field ``f >= 1`` is the displacement from frame ``f − 1``
    to frame ``f`` written at frame ``f − 1``'s points (:func:`sparse_displacements`), filtered
    with the normalised ``kernel x kernel`` Gaussian of ``sigma`` pixels (reflect-101 borders,
    as ``cv2.filter2D``). Away from the borders a displacement ``d`` thus spreads to a bump
    that sums to ``d``; its centre holds ``d / Σ exp(−r²/2σ²)`` (≈ 3.979e-4 · d for σ = 20).

    Args:
        points, present: a track ``[F, 18, 2]`` pixels and ``[F, 18]`` (:func:`openpose_tracks`).
        size: the canvas ``(width, height)``.
    """
    raw = sparse_displacements(points, present, size)
    width, height = size
    fields = np.zeros((len(raw) + 1, 2, height, width), np.float32)
    for f, field in enumerate(raw, start=1):
        if field.any():
            fields[f] = gaussian_filter(field.transpose(1, 2, 0), kernel, sigma).transpose(2, 0, 1)
    return fields


def reference_sparse_flow(reference_points: np.ndarray, reference_present: np.ndarray, target_points: np.ndarray,
                          target_present: np.ndarray, size: tuple[int, int], *,
                          grid: int = CMP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The sparse input of dense propagation: ``(flow float32 [2, grid, grid], mask float32
    [2, grid, grid])``. At each point present in both poses, at cell
    ``⌊p_ref · grid / (W, H)⌋``, the flow holds ``(p_target − p_ref) · grid / (W, H)`` (the
    displacement in grid units) and both mask channels hold 1; zero elsewhere."""
    width, height = size
    scale = np.array([grid / width, grid / height])
    both = np.asarray(reference_present, bool) & np.asarray(target_present, bool)
    reference = np.asarray(reference_points, np.float64) * scale
    displacement = (np.asarray(target_points, np.float64) - np.asarray(reference_points, np.float64)) * scale
    flow = rasterize_points(reference, both, (grid, grid), values=displacement).transpose(2, 0, 1)
    mask = np.repeat(rasterize_points(reference, both, (grid, grid))[None].astype(np.float32), 2, axis=0)
    return np.ascontiguousarray(flow), mask


def resize_dense_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A dense flow ``[2, h, w]`` in its own grid's units, resized (nearest) to the canvas
    ``size`` = ``(W, H)`` with ``u`` multiplied by ``W / w`` and ``v`` by ``H / h``:
    ``float32 [2, H, W]`` in canvas pixels."""
    import cv2

    flow = np.asarray(flow, np.float32)
    width, height = size
    resized = cv2.resize(flow.transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_NEAREST)
    scale = np.array([width / flow.shape[2], height / flow.shape[1]], np.float32)
    return np.ascontiguousarray((resized * scale).transpose(2, 0, 1))


def rescale_to_reference(points: np.ndarray, present: np.ndarray, reference: np.ndarray,
                         reference_present: np.ndarray, size: tuple[int, int], reference_size: tuple[int, int], *,
                         fit_points=RESCALE_POINTS) -> np.ndarray:
    """MimicMotion's (and DisPose's) alignment of driving poses to the reference: one linear map
    for the whole clip, in coordinates normalised by each canvas.

    ``a_y, b_y``: least squares of the reference's ``y/H_r`` on the driving ``y/H`` over
    ``fit_points`` present in the reference and in a frame (every frame's points against the
    same reference point); ``a_x = a_y · (W/H) / (W_r/H_r)`` (the same scale in pixels on both
    axes) and ``b_x`` the mean residual of ``x``. Returns the driving points ``[F, K, 2]`` mapped
    to reference pixels. Driving = s · reference + t (same aspect) gives back the reference."""
    points = np.asarray(points, np.float64)
    reference = np.asarray(reference, np.float64)
    width, height = size
    ref_width, ref_height = reference_size
    fit = np.zeros(points.shape[1], bool)
    fit[list(fit_points)] = True
    use = np.asarray(present, bool) & (np.asarray(reference_present, bool) & fit)[None]
    if use.sum() < 2:
        return points * [ref_width / width, ref_height / height]
    frames, keys = np.nonzero(use)
    driving = points[frames, keys] / [width, height]
    target = reference[keys] / [ref_width, ref_height]
    a_y, b_y = np.polyfit(driving[:, 1], target[:, 1], 1)
    a_x = a_y * (width / height) / (ref_width / ref_height)
    b_x = float(np.mean(target[:, 0] - a_x * driving[:, 0]))
    normalised = points / [width, height] * [a_x, a_y] + [b_x, b_y]
    return normalised * [ref_width, ref_height]


def watershed_points(flow: np.ndarray, *, nms: int = 41, edge_quantile: float = 0.9,
                     max_points: int | None = None) -> np.ndarray:
    """Sparse points to sample a dense optical flow at during training (DisPose App. A, after
    MOFA-Video): edges of the flow (Sobel magnitude of ``u`` and ``v`` above its
    ``edge_quantile``), the distance of every pixel to the nearest edge, and the local maxima of
    that distance in ``nms x nms`` windows, minus those within ``nms // 2`` of the border: points
    deep inside regions that move as one. ``flow``: ``[2, H, W]``. Returns ``int64 [M, 2]``
    ``(x, y)``, the farthest from edges first (at most ``max_points``)."""
    import cv2
    from scipy.ndimage import maximum_filter

    flow = np.asarray(flow, np.float32)
    height, width = flow.shape[1:]
    magnitude = np.zeros((height, width), np.float32)
    for channel in flow:
        gx = cv2.Sobel(channel, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(channel, cv2.CV_32F, 0, 1, ksize=3)
        magnitude += np.hypot(gx, gy)
    threshold = float(np.quantile(magnitude, edge_quantile))
    edges = magnitude > threshold if threshold > 0 else np.zeros_like(magnitude, bool)
    if edges.any():
        distance = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 5)
    else:  # one rigid motion: the distance to the frame's border
        ys, xs = np.mgrid[0:height, 0:width]
        distance = np.minimum.reduce([xs, ys, width - 1 - xs, height - 1 - ys]).astype(np.float32)
    peaks = (distance == maximum_filter(distance, size=nms, mode="constant")) & (distance > 0)
    margin = nms // 2
    peaks[:margin], peaks[height - margin:], peaks[:, :margin], peaks[:, width - margin:] = False, False, False, False
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-distance[ys, xs], kind="stable")[:max_points]
    return np.stack([xs[order], ys[order]], 1).astype(np.int64)


def sample_sparse_flow(flow: np.ndarray, points: np.ndarray, *, grid: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A dense flow ``[2, H, W]`` (pixels) kept only at ``points`` ``[M, 2]`` ``(x, y)``:
    ``(flow [2, g, g], mask [2, g, g])`` on a square ``grid`` (values in grid units, as
    :func:`reference_sparse_flow`), or on the flow's own grid when ``grid`` is None."""
    flow = np.asarray(flow, np.float32)
    height, width = flow.shape[1:]
    points = np.asarray(points, np.float64).reshape(-1, 2)
    cols, rows = points[:, 0].astype(np.int64), points[:, 1].astype(np.int64)
    targets = points + flow[:, rows, cols].T
    present = np.ones(len(points), bool)
    if grid is None:
        values = targets - points
        sparse = rasterize_points(points, present, (width, height), values=values).transpose(2, 0, 1)
        mask = np.repeat(rasterize_points(points, present, (width, height))[None].astype(np.float32), 2, axis=0)
        return np.ascontiguousarray(sparse), mask
    return reference_sparse_flow(points, present, targets, present, (width, height), grid=grid)
