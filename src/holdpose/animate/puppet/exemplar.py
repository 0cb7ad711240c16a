"""Exemplar fill: a hole filled with patches copied from the photo's own texture.

The body under a moved arm is fabric (folds, stripes, a suit's seams) that a smooth fill turns
into a blob of averaged colours. Here the hole takes the texture of the garment around it, as in
Wexler, Shechtman and Irani (2007), "Space-time completion of video", with the nearest-neighbour
search of Barnes et al. (2009), "PatchMatch":

1. coarse to fine over a Gaussian pyramid, each level starting from the coarser level's
   matches, doubled (the coarsest from a push-pull fill);
2. at each level up to :data:`SEARCH_EXTENT`, a few rounds of: for every patch touching the
   hole, find the most similar patch lying wholly in the source pixels (PatchMatch:
   propagation from neighbours, random search around the current match), then set every
   hole pixel to the mean of what the patches covering it say it is (voting, weighted by how
   well each patch matched). Finer levels copy with the doubled matches.

Each separate piece of the hole is filled from the garment around it: patches centred on a
colour its border does not have are not used (the hair, a badge elsewhere), the first guess
leans to the border's commonest colour, and the match cost adds a penalty on the distance
between a patch and its source, so the hole takes the nearby fabric before a distant detail
that happens to fit. Everything is vectorised over the hole's pixels.
"""

from __future__ import annotations

import numpy as np

from holdpose.animate.puppet.fill import pushpull_fill

PATCH_RADIUS = 3  # 7x7 patches
COARSEST = 24  # the hole's box, in pixels, at the coarsest level
ROUNDS = 3
# Above this size of the hole's box (pixels) a level does not search: it copies its pixels with the
# coarser level's matches (doubled). The layout of the fill is settled at the coarse levels; the
# fine ones add the texture's detail.
SEARCH_EXTENT = 100
# Colour error (mean squared, 0..255 units) a patch pays for lying one hole-size away: the
# nearby fabric wins over a distant patch unless that one matches clearly better.
DISTANCE_COST = 200.0
# The garment around the hole: source pixels within BORDER patches of it give its main colours
# (k-means clusters holding at least MAIN_COLOUR of them: a badge or a strap the hole touches is
# not the garment); a source pixel whose colour (OpenCV's 8-bit Lab) is farther than SAME_GARMENT
# from all of them is not used.
BORDER = 2
MAIN_COLOUR = 0.15
SAME_GARMENT = 20.0


def exemplar_fill(image: np.ndarray, hole: np.ndarray, sources: np.ndarray, *, min_width: float = 0,
                  seed: int = 0) -> np.ndarray:
    """``float32 [H, W, 3]``: ``image [H, W, 3]`` with ``hole [H, W]`` (bool) filled with patches of
    the ``sources [H, W]`` (bool) pixels. Pixels outside the hole keep their values. Each separate
    piece of the hole is filled from the garment around it. A piece narrower than ``min_width``
    pixels (twice its largest inscribed radius), or with too few source pixels for patches, is
    filled by push-pull: a smooth continuation suits a narrow gap, where copied patches would
    bring in whatever lies beside it (a jacket's hem onto the shorts a hand hid)."""
    import cv2

    out = image.astype(np.float32)
    sources = sources & ~hole
    # pieces closer than a patch are one piece: they share a border
    size = 2 * PATCH_RADIUS + 1
    near = cv2.dilate(hole.astype(np.uint8), np.ones((size, size), np.uint8))
    count, labels = cv2.connectedComponents(near, connectivity=8)
    inscribed = cv2.distanceTransform(np.pad(hole, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    for piece in range(1, count):
        part = hole & (labels == piece)
        if 2 * inscribed[part].max() >= min_width:
            _fill_piece(out, part, sources, seed)
        else:
            box = _work_box(part)
            crop = out[box]
            crop[part[box]] = pushpull_fill(crop, sources[box])[part[box]]
    return out


def _fill_piece(out: np.ndarray, hole: np.ndarray, sources: np.ndarray, seed: int) -> None:
    """Fill one piece of the hole in ``out`` (float32, in place)."""
    box = _work_box(hole)
    crop, crop_hole = out[box], hole[box]  # a view: filling it fills ``out``
    crop_sources = sources[box]
    weight = _garment(crop, crop_hole, crop_sources)
    levels = _pyramid(crop, crop_hole, crop_sources, weight)
    if levels is None:
        crop[crop_hole] = pushpull_fill(crop, weight)[crop_hole]
        return
    rng = np.random.default_rng(seed)
    offsets = None  # int [h, w, 2]: each target patch's source minus its centre, at the last level
    for level_image, level_hole, level_sources, level_weight in reversed(levels):
        targets = np.argwhere(_targets(level_hole))
        if offsets is None:
            estimate, guess = pushpull_fill(level_image, level_weight * level_sources), None
        else:
            guess = targets + _upsample(offsets, level_hole.shape)[targets[:, 0], targets[:, 1]]
            guess = np.clip(guess, 0, np.array(level_hole.shape) - 1)
            estimate = _vote(level_image, level_hole, guess, None)  # sources only: the hole's old pixels never count
        estimate[~level_hole] = level_image[~level_hole]
        extent = np.ptp(np.argwhere(level_hole), axis=0).max() + 1
        if guess is not None and extent > SEARCH_EXTENT:
            nnf = guess  # the layout is settled: this level copies its detail with the coarser matches
        else:
            search = _Search(estimate, level_hole, level_sources, level_weight > 0, rng)
            nnf = search.initial(guess)
            for _ in range(ROUNDS):
                nnf, cost = search.improve(nnf)
                estimate = _vote(estimate, level_hole, nnf, cost)
                search.set_image(estimate)
        offsets = np.zeros(level_hole.shape + (2,), np.int64)
        offsets[targets[:, 0], targets[:, 1]] = nnf - targets
    crop[crop_hole] = estimate[crop_hole]


def _garment(image: np.ndarray, hole: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """The garment around the hole: ``float32 [H, W]`` in 0..1 over ``sources``, 0 where a pixel's
    colour is unlike every main colour of the source pixels bordering the hole (within
    :data:`BORDER` patches of it), so no patch centred there fills it (the hair, a badge
    elsewhere on the body); else its colour's share of the border relative to the largest, so
    the first guess of the hole leans to the colour most of its border has (the suit, not the
    badge it touches)."""
    import cv2

    from holdpose.animate.puppet.layers import colour_clusters, grow_mask

    lab = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab = cv2.blur(lab, (5, 5))  # a pixel's neighbourhood, not its noise
    ring = sources & grow_mask(hole, BORDER * (2 * PATCH_RADIUS + 1))
    if ring.sum() < 50:
        return sources.astype(np.float32)
    colours = colour_clusters(lab[ring], count=4, min_share=MAIN_COLOUR)
    nearest = np.linalg.norm(lab[ring][:, None] - colours[None], axis=-1).argmin(1)
    share = np.bincount(nearest, minlength=len(colours)) / len(nearest)
    ys, xs = np.nonzero(sources)
    distance = np.linalg.norm(lab[ys, xs][:, None] - colours[None], axis=-1)
    near = distance.min(1) < SAME_GARMENT
    weight = np.zeros(sources.shape, np.float32)
    weight[ys[near], xs[near]] = (share / share.max())[distance[near].argmin(1)]
    return weight


def _work_box(hole: np.ndarray) -> tuple[slice, slice]:
    """The box the fill works in: the hole's box grown by its own size (the nearby garment)."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    grow = max(ys.ptp(), xs.ptp()) + 2 * PATCH_RADIUS
    return (slice(max(0, ys.min() - grow), min(h, ys.max() + grow + 1)),
            slice(max(0, xs.min() - grow), min(w, xs.max() + grow + 1)))


def _pyramid(image, hole, sources, weight):
    """``[(image, hole, sources, weight), ...]`` finest first, down to the level where the hole's box is
    about :data:`COARSEST` pixels; None when the sources hold fewer whole patches than a
    quarter of the hole's pixels (too little texture to copy from)."""
    import cv2

    if (_centres(sources) & (weight > 0)).sum() < 0.25 * hole.sum():
        return None
    ys, xs = np.nonzero(hole)
    extent = max(ys.ptp(), xs.ptp()) + 1
    levels = [(image, hole, sources, weight)]
    while extent > COARSEST and min(levels[-1][1].shape) > 4 * (2 * PATCH_RADIUS + 1):
        image, hole, sources, weight = levels[-1]
        small = cv2.pyrDown(image)
        size = (small.shape[1], small.shape[0])
        # a coarse pixel is a hole if any of its fine pixels is, a source only if all are
        small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        small_sources = cv2.resize(sources.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.999
        small_weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
        if not (_centres(small_sources) & (small_weight > 0)).any():
            break
        levels.append((small, small_hole, small_sources & ~small_hole, small_weight))
        extent /= 2
    return levels


def _centres(sources: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the pixels whose whole patch lies in ``sources``."""
    import cv2

    size = 2 * PATCH_RADIUS + 1
    inner = cv2.erode(sources.astype(np.uint8), np.ones((size, size), np.uint8), borderValue=0) > 0
    return inner


def _padded(image: np.ndarray) -> np.ndarray:
    import cv2

    r = PATCH_RADIUS
    return cv2.copyMakeBorder(image, r, r, r, r, cv2.BORDER_REFLECT)


def _targets(hole: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the centres of the patches that touch the hole."""
    import cv2

    size = 2 * PATCH_RADIUS + 1
    return cv2.dilate(hole.astype(np.uint8), np.ones((size, size), np.uint8)) > 0


class _Search:
    """PatchMatch over one pyramid level: a nearest-neighbour field ``nnf int [N, 2]`` (y, x of
    the source patch's centre) for the N target patches."""

    def __init__(self, image, hole, sources, garment, rng):
        self.rng = rng
        self.shape = hole.shape
        self.targets = np.argwhere(_targets(hole))
        self.valid = _centres(sources) & garment
        self.centres = np.argwhere(self.valid)
        ys, xs = np.nonzero(hole)
        self.extent = float(max(ys.ptp(), xs.ptp()) + 1)
        self.index = np.full(hole.shape, -1, np.int64)
        self.index[self.targets[:, 0], self.targets[:, 1]] = np.arange(len(self.targets))
        size = 2 * PATCH_RADIUS + 1
        width = hole.shape[1] + 2 * PATCH_RADIUS  # of the padded image
        dy, dx = np.mgrid[0:size, 0:size]
        self.patch = (dy * width + dx).ravel()  # a patch's pixels, as flat offsets from its corner
        self.width = width
        self.set_image(image)

    def set_image(self, image):
        """The level's current estimate; the target patches are read from it once."""
        self.pixels = _padded(image).reshape(-1, 3)
        self.target_patches = self._patches(self.targets)

    def _patches(self, centres):
        """``float32 [N, patch pixels, 3]``: the patches centred on ``centres [N, 2]``."""
        corner = centres[:, 0] * self.width + centres[:, 1]  # padding shifts the centre onto the corner
        return self.pixels[corner[:, None] + self.patch[None]]

    def initial(self, guess):
        """``guess [N, 2]`` (the coarser level's field) where it is a valid source patch, random
        source patches elsewhere."""
        random = self.centres[self.rng.integers(0, len(self.centres), len(self.targets))]
        if guess is None:
            return random
        ok = self.valid[guess[:, 0], guess[:, 1]]
        return np.where(ok[:, None], guess, random)

    def cost(self, nnf: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """``[N]``: mean squared colour difference of each target patch (or those ``which`` picks)
        and its source in ``nnf``, plus the distance penalty."""
        targets = self.targets if which is None else self.targets[which]
        own = self.target_patches if which is None else self.target_patches[which]
        diff = own - self._patches(nnf)
        colour = np.einsum("npc,npc->n", diff, diff) / diff[0].size
        distance2 = ((nnf - targets) ** 2).sum(1) / self.extent ** 2
        return colour + DISTANCE_COST * distance2

    def improve(self, nnf):
        """One round of propagation (from the neighbours 8, 4, 2 and 1 pixels away on each side:
        jump flooding, so a good match spreads across the hole in one round) and random search
        (around the current match, halving the radius from the level's size, and one uniform
        pick); returns ``(nnf, cost)``."""
        cost = self.cost(nnf)
        for step in (8, 4, 2, 1):
            for offset in ((step, 0), (-step, 0), (0, step), (0, -step)):
                nnf, cost = self._propagate(nnf, cost, np.array(offset))
        radius = max(self.shape)
        while radius >= 1:
            jitter = self.rng.integers(-radius, radius + 1, nnf.shape)
            nnf, cost = self._try(nnf, cost, nnf + jitter)
            radius //= 2
        nnf, cost = self._try(nnf, cost, self.centres[self.rng.integers(0, len(self.centres), len(nnf))])
        return nnf, cost

    def _propagate(self, nnf, cost, offset):
        """Try, for each target, its neighbour's (at ``offset``) match shifted back by the offset."""
        neighbour = self.targets + offset
        inside = ((neighbour >= 0) & (neighbour < self.shape)).all(1)
        which = np.full(len(nnf), -1)
        which[inside] = self.index[neighbour[inside, 0], neighbour[inside, 1]]
        has = which >= 0
        candidate = nnf.copy()
        candidate[has] = nnf[which[has]] - offset
        return self._try(nnf, cost, candidate, has)

    def _try(self, nnf, cost, candidate, where=None):
        """Keep ``candidate`` matches that are valid source patches and cost less."""
        candidate = np.clip(candidate, 0, np.array(self.shape) - 1)
        ok = self.valid[candidate[:, 0], candidate[:, 1]] & (candidate != nnf).any(1)
        if where is not None:
            ok &= where
        which = np.flatnonzero(ok)
        if not which.size:
            return nnf, cost
        new_cost = self.cost(candidate[which], which)
        better = which[new_cost < cost[which]]
        nnf, cost = nnf.copy(), cost.copy()
        nnf[better] = candidate[better]
        cost[better] = new_cost[new_cost < cost[which]]
        return nnf, cost


def _vote(image, hole, nnf, cost):
    """``float32 [H, W, 3]``: ``image`` with each hole pixel the (weighted) mean of the source pixels
    that the patches covering it (``nnf [N, 2]``, one per target of :func:`_targets`) put there."""
    targets = np.argwhere(_targets(hole))
    if cost is None:
        weight = np.ones(len(targets), np.float32)
    else:  # a patch that matched well says more (Wexler et al.'s weights)
        weight = np.exp(-cost / (2 * max(float(np.percentile(cost, 75)), 1e-3))).astype(np.float32)
    pixels = _padded(image.astype(np.float32)).reshape(-1, 3)
    width = hole.shape[1] + 2 * PATCH_RADIUS
    top, left = targets.min(0)  # accumulate over the targets' box (padded), not the whole image
    rows, cols = targets.max(0) - (top, left) + 1 + 2 * PATCH_RADIUS
    total = np.zeros((rows * cols, 3), np.float32)
    weights = np.zeros(rows * cols, np.float32)
    here = (targets[:, 0] - top) * cols + targets[:, 1] - left
    there = nnf[:, 0] * width + nnf[:, 1]
    size = 2 * PATCH_RADIUS + 1
    for dy in range(size):
        for dx in range(size):
            # targets are distinct pixels, so one offset's indices never repeat: plain += is exact
            total[here + dy * cols + dx] += pixels[there + dy * width + dx] * weight[:, None]
            weights[here + dy * cols + dx] += weight
    mean = (total / np.maximum(weights, 1e-6)[:, None]).reshape(rows, cols, 3)
    out = image.astype(np.float32, copy=True)
    r = PATCH_RADIUS
    box = out[top:top + rows - 2 * r, left:left + cols - 2 * r]
    inside = hole[top:top + rows - 2 * r, left:left + cols - 2 * r]
    box[inside] = mean[r:rows - r, r:cols - r][inside]
    return out


def _upsample(offsets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A coarser level's ``offsets [h, w, 2]`` for the finer level of ``shape``: each fine pixel
    takes its coarse pixel's offset, doubled."""
    h, w = shape
    ys = np.minimum(np.arange(h) // 2, offsets.shape[0] - 1)
    xs = np.minimum(np.arange(w) // 2, offsets.shape[1] - 1)
    return 2 * offsets[ys[:, None], xs[None, :]]
