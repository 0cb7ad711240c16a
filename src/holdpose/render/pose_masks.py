"""Stable-Pose's coarse-to-fine pose masks on the latent grid (SEED_MODULES §1.2).

A mask marks the latent cells (``cell`` x ``cell`` pixels, 8 for SD 1.5) near the skeleton of a
pose image; Stable-Pose's ViT restricts attention with one mask per layer, coarse then fine
(kernel sizes 23 and 13), and its loss weighs the fine one.

Two definitions:

- ``"clean"`` (default): a cell is set when its pixels meet the skeleton dilated by a square of
  side ``k`` (radius ``(k-1)/2``: 11 and 6 pixels). Exact, monotone (coarse ⊇ fine), empty for an
  empty pose, and the same for every image size.
- ``"official"`` (needs torch): what the released code computes, for its checkpoints: the pose
  image in [-1, 1] blurred by torchvision's ``GaussianBlur(k, sigma=3)`` (float32 kernel, reflect padding), and a
  cell set when any of its pixels has a channel above ``τ`` (-1 in training, -0.99 at inference).
  With ``τ = -1`` the blur of the black background is -0.99999982, not -1 (the float32 kernel does
  not sum to exactly 1), so the coarse *training* mask covers the whole image; with ``τ = -0.99`` an
  isolated skeleton pixel spreads about ±4 px for both kernels (tested).
"""

from __future__ import annotations

import numpy as np

from holdpose.render.geometry import dilate_box, pool_cells

MASK_KERNELS = (23, 13)  # coarse, fine: one per ViT layer
MASK_MODES = ("clean", "official")
OFFICIAL_SIGMA = 3.0
OFFICIAL_THRESHOLD = {"train": -1.0, "sample": -0.99}


def skeleton_pixels(pose_image: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the pixels of a ``uint8 [H, W, 3]`` pose image that are not background (black)."""
    return np.asarray(pose_image).any(axis=-1)


def pose_mask(pose_image: np.ndarray, kernel: int, cell: int = 8) -> np.ndarray:
    """Clean mask ``bool [H/cell, W/cell]``: the cells meeting the skeleton dilated by the
    ``kernel`` x ``kernel`` square."""
    return pool_cells(dilate_box(skeleton_pixels(pose_image), (kernel - 1) // 2), cell)


def blur_like_torchvision(image: np.ndarray, kernel: int, sigma: float = OFFICIAL_SIGMA) -> np.ndarray:
    """``float32 [H, W, C]`` blurred as torchvision's ``GaussianBlur(kernel, sigma)`` does it: a
    float32 kernel (the Gaussian sampled at ``linspace(-(k-1)/2, (k-1)/2, k)``, normalised, outer
    product), reflect padding, one ``conv2d`` per channel. Computed with torch's own ``conv2d``:
    whether the blurred background lands just above or below -1 depends on float32 summation
    order, and the official masks depend on exactly that."""
    import torch

    x = torch.linspace(-(kernel - 1) * 0.5, (kernel - 1) * 0.5, steps=kernel)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    k1 = pdf / pdf.sum()
    weights = torch.mm(k1[:, None], k1[None, :])
    channels = image.shape[-1]
    tensor = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    half = kernel // 2
    padded = torch.nn.functional.pad(tensor, (half, half, half, half), mode="reflect")
    out = torch.nn.functional.conv2d(padded, weights.expand(channels, 1, kernel, kernel), groups=channels)
    return out[0].permute(1, 2, 0).numpy()


def official_pose_mask(pose_image: np.ndarray, kernel: int, threshold: float, cell: int = 8) -> np.ndarray:
    """The released code's mask ``bool [H/cell, W/cell]``: cells with a pixel whose blurred
    [-1, 1] value exceeds ``threshold`` in any channel."""
    from holdpose.render.humansd import pose_image_tensor_values

    blurred = blur_like_torchvision(pose_image_tensor_values(pose_image), kernel)
    return pool_cells((blurred > np.float32(threshold)).any(axis=-1), cell)


def coarse_to_fine_masks(pose_image: np.ndarray, *, mode: str = "clean", cell: int = 8, phase: str = "sample",
                         kernels: tuple[int, ...] = MASK_KERNELS) -> np.ndarray:
    """``float32 [len(kernels), H/cell, W/cell]`` masks of a ``uint8 [H, W, 3]`` pose image, one
    per ViT layer (coarse first). ``phase`` ("train" or "sample") picks the official threshold."""
    if mode == "clean":
        masks = [pose_mask(pose_image, k, cell) for k in kernels]
    elif mode == "official":
        masks = [official_pose_mask(pose_image, k, OFFICIAL_THRESHOLD[phase], cell) for k in kernels]
    else:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    return np.stack(masks).astype(np.float32)
