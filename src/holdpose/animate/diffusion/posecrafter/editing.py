"""PoseCrafter's affine latent editing of face and hands (paper §4.3, Eq. 18–19), in numpy.

For each target frame ``j`` and part (face, left hand, right hand, in that order):

1. ``A_j = argmin_A Σ_l ‖A [x_l; 1] − y_l‖²``: the 2×3 affine map taking the part's landmarks
   in the reference pose ``p_{i*}`` to those of target pose ``p̂_j`` (points present in both;
   skipped under 3 points or when collinear), :func:`holdpose.render.geometry.fit_affine`;
2. the same map in latent cells (linear part unchanged, translation divided by the VAE's
   downsampling factor);
3. the inverted reference latent warped by it, ``z'(q) = z_T(A⁻¹ q)``;
4. ``z'`` copied into frame ``j``'s initial latent inside the smallest box of latent cells
   around ``p̂_j``'s part landmarks (``[⌊min/8⌋, ⌈max/8⌉)``); everything else stays ``z_T``.

Latent coordinates are cell centres: cell ``(r, c)`` sits at ``(c + ½, r + ½)`` in units of
cells, i.e. pixel ``/ cell``, so a pixel-space map and its cell-space map agree.
Bilinear warping averages neighbouring noise samples and shrinks their variance inside the
box; ``mode="nearest"`` keeps the noise statistics exact [check which the authors used].
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from holdpose.render.geometry import EDIT_PARTS, affine_to_cells, cell_box, fit_affine, part_slice

WARP_MODES = ("bilinear", "nearest")


def warp_latent(latent: np.ndarray, matrix: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    """``z'(q) = z(A⁻¹ q)`` for a latent ``[C, h, w]`` and a 2×3 map ``A`` in cell units;
    samples outside the latent take the nearest edge cell. Returns float32 ``[C, h, w]``."""
    from scipy.ndimage import map_coordinates

    if mode not in WARP_MODES:
        raise ValueError(f"warp mode {mode!r} is unknown; choose one of {', '.join(WARP_MODES)}")
    full = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(full)
    _, height, width = latent.shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    centres = np.stack([cols + 0.5, rows + 0.5, np.ones_like(cols)])  # [3, h, w]: (x, y, 1) in cells
    source = np.tensordot(inverse[:2], centres, axes=1) - 0.5  # [2, h, w]: (col, row) indices
    coords = np.stack([source[1], source[0]])
    order = 1 if mode == "bilinear" else 0
    return np.stack([map_coordinates(channel.astype(np.float64), coords, order=order, mode="nearest")
                     for channel in latent]).astype(np.float32)


def part_affine(reference: np.ndarray, reference_present: np.ndarray, target: np.ndarray,
                target_present: np.ndarray, part: str) -> np.ndarray | None:
    """The least-squares 2×3 map (pixels) of ``part``'s landmarks from the reference pose to a
    target pose (``[133, 2]`` points, ``[133]`` presence), or None when it is not determined."""
    s = part_slice(part)
    return fit_affine(reference[s], target[s], reference_present[s] & target_present[s])


def edit_latent(z_ref: np.ndarray, reference: np.ndarray, reference_present: np.ndarray, target: np.ndarray,
                target_present: np.ndarray, *, parts: Iterable[str] = EDIT_PARTS, cell: int = 8,
                mode: str = "bilinear") -> tuple[np.ndarray, list[str]]:
    """One target frame's initial latent: ``z_ref`` ``[C, h, w]`` with each part's box replaced
    by ``z_ref`` warped onto the target's part. Poses are in pixels of the generated frame
    (``cell`` pixels per latent cell). Returns ``(latent [C, h, w] float32, parts edited)``."""
    out = np.array(z_ref, np.float32, copy=True)
    _, height, width = out.shape
    edited = []
    for part in parts:
        matrix = part_affine(reference, reference_present, target, target_present, part)
        if matrix is None:
            continue
        s = part_slice(part)
        box = cell_box(target[s], target_present[s], cell=cell, grid=(width, height))
        if box is None:
            continue
        c0, r0, c1, r1 = box
        warped = warp_latent(z_ref, affine_to_cells(matrix, cell), mode)
        out[:, r0:r1, c0:c1] = warped[:, r0:r1, c0:c1]
        edited.append(part)
    return out, edited
