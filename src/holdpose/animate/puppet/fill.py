"""Hole filling for the puppet: the background behind the person and the body under its arms.

Both use a push-pull fill (Gortler et al., 1996, "The Lumigraph", section 3.4): the known
pixels are averaged down a Gaussian pyramid with their weights, and each level's holes take
the (upsampled) average of the coarser level. A hole gets a smooth continuation of its own
surroundings at every scale, with no streaks (Telea's method smears the hole's border
inward along lines) and no copied blocks (OpenCV contrib's ``xphoto.inpaint`` FSR, which
on a 622x913 photo takes 10 s, 2 s at half size, and leaves a blocky ghost of the body).
Only the pixels marked as sources feed the fill, so the torso under an arm is filled
from the torso alone, never from the background or the arm. A wide gap there is then filled
with the garment's own texture (:mod:`holdpose.animate.puppet.exemplar`): push-pull alone
leaves a smooth blob of the torso's average colours.
"""

from __future__ import annotations

import numpy as np


def pushpull_fill(image: np.ndarray, known: np.ndarray, *, min_weight: float = 0.05) -> np.ndarray:
    """``image [H, W, C]`` (any dtype) with every pixel outside ``known [H, W]`` (bool, or a weight
    in 0..1 per pixel) replaced by the push-pull average of the known pixels around it. Returns
    ``float32 [H, W, C]``; known pixels (weight > 0) keep their values. All-unknown images come
    back as zeros."""
    import cv2

    weight = known.astype(np.float32)
    values = image.astype(np.float32) * weight[..., None]
    pyramid = [(values, weight)]
    while min(pyramid[-1][1].shape) > 2:
        values, weight = cv2.pyrDown(values), cv2.pyrDown(weight)
        if values.ndim == 2:
            values = values[..., None]
        pyramid.append((values, weight))
    filled = None
    for values, weight in reversed(pyramid):  # pull: coarse to fine
        mean = values / np.maximum(weight, 1e-6)[..., None]
        if filled is not None:
            up = cv2.resize(filled, (mean.shape[1], mean.shape[0]), interpolation=cv2.INTER_LINEAR)
            if up.ndim == 2:
                up = up[..., None]
            trust = np.clip(weight / min_weight, 0, 1)[..., None]
            mean = trust * mean + (1 - trust) * up
        filled = mean
    return np.where(known[..., None] > 0, image.astype(np.float32), filled)


def person_hole(soft_mask: np.ndarray, *, halo: int | None = None) -> np.ndarray:
    """``bool [H, W]``: the pixels the person may have touched, to drop before filling the
    background. Segmentation masks fade out over a few pixels around hair and hands, and the
    photo's edge pixels there are a mix of person and background, so the hole takes every
    pixel the mask gives any weight (> 0.02), grown by ``halo`` pixels (default
    :func:`halo_width`)."""
    from holdpose.animate.puppet.layers import grow_mask

    halo = halo_width(soft_mask) if halo is None else halo
    return grow_mask(soft_mask > 0.02, halo)


def halo_width(soft_mask: np.ndarray) -> int:
    """How far, in pixels, to grow the person's hole beyond the segmentation's faintest edge: half
    the width of its fading band (the band's area, 0.02 < mask < 0.98, over the length of the
    person's outline; the mask's fade is centred on the true edge), plus two pixels; at least
    2, at most 2 % of the image's short side."""
    import cv2

    hard = (soft_mask > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(hard, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(contour, True) for contour in contours)
    band = np.count_nonzero((soft_mask > 0.02) & (soft_mask < 0.98))
    width = band / outline if outline > 0 else 0.0
    return int(np.clip(round(width / 2) + 2, 2, max(2, 0.02 * min(soft_mask.shape))))


def fill_background(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]``: ``image`` with ``hole [H, W]`` (bool) filled from the rest of the photo."""
    return np.clip(pushpull_fill(image, ~hole) + 0.5, 0, 255).astype(np.uint8)

