"""Which pixels of the reference each puppet layer takes.

An arm layer is the union of three shapes, cut out of the person mask:

- the upper arm and the forearm: capsules around their bones, whose radius is measured
  on the silhouette (the median distance from the bone to the mask's edge across it,
  the nearer side, so an arm lying along the body is not widened by the body), kept
  within a range of a prior set by the body's size (an arm over the torso has no edge to
  measure: it gets the prior). The upper arm's capsule is cut flat through the shoulder
  so the layer does not take the shoulder and the chest around it.
- the hand: the convex hull of MediaPipe's 21 hand landmarks, grown by 15 % of the
  hand's size. Without landmarks, a short capsule beyond the wrist along the forearm.

The union is then cut to the arm's own colours (:func:`keep_own_colours`): a pixel leaves
the layer when its colour is nearer the colours around the arm (the shorts a hand rests
on, the torso a forearm lies over) than the arm's own (sampled along its bones and finger
lines), so a raised hand does not take a strip of shorts along. Small notches the cut bites
into the arm away from the hand (a cuff's stripes that the jacket's hem shares) go back to it.

Long hair falling over an arm (:func:`hair_over_arms`: the hair's colours, sampled around the
face, joined to the head) is drawn in front of the arm and stays with the body; the arm goes on
under it (:func:`without_what_hair_hid` cuts it again without the hair among its colours). Pieces
of the torso's garment lying over an arm (a frill, the shade between arm and body) leave it
(:func:`without_torso_garment`: the torso's colours against the arm's own, sampled along the
silhouette's outer edge, where nothing covers the arm).

Each leg (:func:`leg_masks`) takes the base's pixels nearer its thigh, shin and foot than the
other leg's, in units of each bone's radius measured on the silhouette, from the hip down; the
torso keeps them above the crotch (:func:`crotch`, where the legs part on the silhouette).

:func:`body_region` says where the body continues under an arm (the torso's quadrilateral
and the legs): there the base layer is filled with the body's texture when the arm is cut
out; elsewhere (an arm held away from the body) the arm's pixels leave the base layer and
the background shows when the arm moves.
"""

from __future__ import annotations

import numpy as np

# Limb radii as a fraction of the body scale (shoulder or hip width): priors and the range
# a measured radius may take around them.
RADIUS_PRIOR = {"upper_arm": 0.17, "forearm": 0.13, "thigh": 0.3, "shin": 0.2}
RADIUS_RANGE = (0.6, 1.35)
# A hand without landmarks: a capsule reaching this far beyond the wrist (in forearm lengths), its
# radius this many forearm radii.
HAND_LENGTH = 0.45
HAND_RADIUS = 1.2
# Lab distance by which a pixel must be nearer the colours around a part than the part's own
# to leave it, when those colours are kindred (closer than KINDRED): shading on a sleeve is a
# few units off the sleeve's main colours.
COLOUR_MARGIN = 8.0
KINDRED = 30.0
ARM_JOINTS = {"left": (5, 7, 9), "right": (6, 8, 10)}  # shoulder, elbow, wrist
HAND_POINTS = {"left": slice(91, 112), "right": slice(112, 133)}
LEG_JOINTS = ((11, 13, 15), (12, 14, 16))  # hip, knee, ankle


def segment_distance(shape: tuple[int, int], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an ``(H, W)`` canvas: the distance to segment a-b and the position along
    it (``t`` in 0..1 at the segment, below 0 before ``a``), both ``float32 [H, W]``."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ab = (b - a).astype(np.float32)
    length2 = max(float(ab @ ab), 1e-6)
    t = ((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / length2
    tc = np.clip(t, 0, 1)
    return np.hypot(xs - (a[0] + tc * ab[0]), ys - (a[1] + tc * ab[1])), t


def limb_radius(mask: np.ndarray, a: np.ndarray, b: np.ndarray, prior: float) -> float:
    """The limb's radius in pixels measured on ``mask [H, W]`` (bool) across bone a-b: at seven
    points along its middle, the distance to the mask's edge on the nearer side; the median,
    kept within :data:`RADIUS_RANGE` of ``prior``."""
    h, w = mask.shape
    bone = b - a
    length = np.linalg.norm(bone)
    if length < 1e-6:
        return prior
    normal = np.array([-bone[1], bone[0]]) / length
    steps = np.arange(0, int(3 * prior) + 2)
    widths = []
    for t in np.linspace(0.2, 0.8, 7):
        centre = a + t * bone
        sides = []
        for sign in (1, -1):
            xy = np.round(centre + sign * steps[:, None] * normal).astype(int)
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
            inside[inside] = mask[xy[inside, 1], xy[inside, 0]]
            outside = np.flatnonzero(~inside)
            sides.append(outside[0] if outside.size else steps[-1])
        widths.append(min(sides))
    low, high = RADIUS_RANGE
    return float(np.clip(np.median(widths), low * prior, high * prior))


def capsule(shape: tuple[int, int], a: np.ndarray, b: np.ndarray, radius: float, *,
            flat_start: bool = False) -> np.ndarray:
    """``bool [H, W]``: pixels within ``radius`` of segment a-b (cut flat through ``a`` if asked)."""
    distance, t = segment_distance(shape, a, b)
    inside = distance <= radius
    return inside & (t >= 0) if flat_start else inside


def hand_shape(shape: tuple[int, int], landmarks: np.ndarray, wrist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hand from its landmarks ``[K, 2]`` (K >= 5, pixels) and wrist: ``(candidate, core)``, both
    ``bool [H, W]``: the convex hull grown by 15 % of the hand's size (the silhouette may reach
    that far), and the finger chains drawn as lines (hand for sure)."""
    import cv2

    points = np.vstack([landmarks, wrist[None]]).astype(np.float32)
    size = float(np.ptp(points, axis=0).max())
    grow = max(2, int(round(0.15 * size)))
    hull = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(hull, np.round(cv2.convexHull(points)).astype(np.int32), 1)
    core = np.zeros(shape, np.uint8)
    for finger in np.split(np.arange(1, min(21, len(landmarks))), [4, 8, 12, 16]):
        chain = np.vstack([wrist[None], landmarks[finger]]) if finger.size else wrist[None]
        cv2.polylines(core, [np.round(chain).astype(np.int32)], False, 1, thickness=max(1, grow // 2))
    return cv2.dilate(hull, disc(grow)) > 0, core > 0


def keep_own_colours(lab: np.ndarray, layer: np.ndarray, core: np.ndarray, person: np.ndarray, reach: int,
                     extra_core: np.ndarray | None = None) -> np.ndarray:
    """``layer`` without the pixels whose colour belongs to what lies around it rather than to
    the part itself: k-means colours of ``core`` (the part for sure) against those of a ring
    of ``person`` pixels ``reach`` pixels wide around the layer; ring colours close to the
    part's own are ignored (a red sleeve on a red jacket cannot be told apart: the shape
    decides). Keeps the pieces that touch ``core``. ``lab``: the photo in Lab, float32;
    ``extra_core``: a second part for sure (the hand), whose colours are clustered on their own."""
    ring = grow_mask(layer, reach) & ~layer & person
    if core.sum() < 10 or ring.sum() < 10:
        return layer
    own = colour_clusters(lab[core], min_share=0.1)  # a few stray pixels of the core are not the part's colour
    if extra_core is not None and extra_core.sum() >= 10:
        own = np.vstack([own, colour_clusters(lab[extra_core], min_share=0.2)])
        core = core | extra_core
    around = colour_clusters(lab[ring])
    distinct = np.linalg.norm(around[:, None] - own[None], axis=-1).min(1) > 15
    if not distinct.any():
        return layer
    ys, xs = np.nonzero(layer & ~core)
    pixels = lab[ys, xs]
    to_own = np.linalg.norm(pixels[:, None] - own[None], axis=-1).min(1)
    around = around[distinct]
    to_each = np.linalg.norm(pixels[:, None] - around[None], axis=-1)
    nearest = to_each.argmin(1)
    # between kindred colours (a red sleeve on a red jacket, the shadow of one on the other)
    # shading decides too easily: those need a margin; skin against denim does not
    kindred = np.linalg.norm(around[:, None] - own[None], axis=-1).min(1) < KINDRED
    elsewhere = to_each.min(1) + COLOUR_MARGIN * kindred[nearest] < to_own
    kept = layer.copy()
    kept[ys[elsewhere], xs[elsewhere]] = False
    kept = _touching(kept | (core & layer), core & layer)
    return kept | (_holes(kept) & layer)  # a fold or shadow inside the part is the part


def _holes(mask: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the pixels outside ``mask`` that it encloses."""
    import cv2

    count, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = np.ones(count, bool)
    enclosed[border] = False
    enclosed[0] = False  # label 0 is the mask itself
    return enclosed[labels]


def colour_clusters(colours: np.ndarray, count: int = 3, min_share: float = 0.0) -> np.ndarray:
    """The centres ``[k, 3]`` of ``count`` k-means clusters of ``colours [N, 3]``, without those
    holding less than ``min_share`` of the colours."""
    import cv2

    if len(colours) > 4000:  # a sample is enough for three centres
        colours = colours[np.linspace(0, len(colours) - 1, 4000).astype(int)]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)  # the same layers for the same photo
    _, labels, centres = cv2.kmeans(colours.astype(np.float32), min(count, len(colours)), None, criteria, 2,
                                    cv2.KMEANS_PP_CENTERS)
    share = np.bincount(labels.ravel(), minlength=len(centres)) / len(labels)
    return centres[share >= min(min_share, share.max())]


def _touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The connected components of ``mask`` that contain a ``seeds`` pixel."""
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[seeds & mask])] = True
    keep[0] = False
    return keep[labels]


def disc(radius: int) -> np.ndarray:
    """An elliptic structuring element of ``radius`` pixels (a (2r + 1)-wide disc)."""
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` (bool) dilated by a disc of ``pixels`` radius."""
    import cv2

    return cv2.dilate(mask.astype(np.uint8), disc(pixels)) > 0 if pixels > 0 else mask


def close_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Morphological closing of ``mask`` (bool) by a disc of ``pixels`` radius, the mask going on
    beyond the frame as it is at its edge (a body the frame cuts continues out of it)."""
    import cv2

    padded = cv2.copyMakeBorder(mask.astype(np.uint8), pixels, pixels, pixels, pixels, cv2.BORDER_REPLICATE)
    return cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disc(pixels))[pixels:-pixels, pixels:-pixels] > 0


def arm_mask(image: np.ndarray, person: np.ndarray, loose_person: np.ndarray, body: np.ndarray, points: np.ndarray,
             present: np.ndarray, scale: float, side: str, hidden: frozenset[str] = frozenset()) -> np.ndarray:
    """One arm's layer, ``bool [H, W]``. ``person``: the mask the limbs are cut from;
    ``loose_person``: a lower threshold of it, for hands (masks fade at the hands); ``body``:
    :func:`body_region`, off which the layer also takes the arm-coloured pixels just beyond
    its shapes (a sleeve wider than its capsule); ``hidden``: the segments (``"upper_arm"``,
    ``"forearm"``, ``"hand"``) the reference hides, which the layer does not take (their pixels are
    whatever lies in front of them; :mod:`holdpose.animate.puppet.hidden` completes them)."""
    import cv2

    shape = person.shape
    shoulder, elbow, wrist = ARM_JOINTS[side]
    out = np.zeros(shape, bool)
    core = np.zeros(shape, bool)
    radius = {}
    for (a, b), name in (((shoulder, elbow), "upper_arm"), ((elbow, wrist), "forearm")):
        if present[[a, b]].all() and name not in hidden:
            radius[name] = limb_radius(person, points[a], points[b], RADIUS_PRIOR[name] * scale)
            distance, t = segment_distance(shape, points[a], points[b])
            out |= (distance <= radius[name]) & ((t >= 0) if name == "upper_arm" else True)
            # the limb for sure: along the middle of the bone (the shoulder's end may be the torso's
            # clothes, the wrist's end may lie on the thigh's)
            core |= (distance <= 0.35 * radius[name]) & (t >= (0.2 if name == "upper_arm" else 0)) & (t <= 0.8)
    out &= person
    core &= person
    hand = HAND_POINTS[side]
    found = present[hand]
    if "hand" in hidden:
        hand_core, hand_area = None, np.zeros(shape, bool)
    elif present[wrist] and found.sum() >= 5:
        hand_wrist = points[hand][0] if found[0] else points[wrist]
        candidate, fingers = hand_shape(shape, points[hand][found], hand_wrist)
        out |= candidate & loose_person
        hand_area = cv2.dilate(candidate.astype(np.uint8), disc(max(1, round(0.25 * np.ptp(points[hand][found], 0).max()))))
        hand_area = hand_area > 0
        hand_core = fingers & loose_person
    elif present[[elbow, wrist]].all():
        tip = points[wrist] + HAND_LENGTH * (points[wrist] - points[elbow])
        reach = HAND_RADIUS * radius.get("forearm", RADIUS_PRIOR["forearm"] * scale)
        hand_area = capsule(shape, points[wrist], tip, reach)
        out |= hand_area & loose_person
        hand_core = capsule(shape, points[wrist], tip, 0.4 * reach) & loose_person
    else:
        hand_core, hand_area = None, np.zeros(shape, bool)
    if not out.any():
        return out
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    reach = max(3, round(0.1 * scale))
    if hand_core is not None:  # a glove or bare hand differs from the sleeve: its colours count as the arm's own
        out |= hand_core
    shapes = out.copy()
    out = keep_own_colours(lab, out, core, person, reach, extra_core=hand_core)
    beyond = grow_mask(out, reach) & person & ~body & ~out
    if beyond.any():
        out = keep_own_colours(lab, out | beyond, out, person, reach)
    # Small notches the colour cut bites into the arm (a cuff's white stripes, which the jacket's hem
    # also has) are the arm's: left in the base they would float where the arm was. Not at the hand,
    # whose gaps between the fingers show the garment behind.
    notches = cv2.morphologyEx(out.astype(np.uint8), cv2.MORPH_CLOSE, disc(max(2, round(0.04 * scale)))) > 0
    return out | (notches & shapes & ~hand_area)


def body_region(shape: tuple[int, int], points: np.ndarray, present: np.ndarray, scale: float,
                person: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: where the body may go on behind an arm: the torso (shoulders and hips,
    grown by a tenth of the body scale) and the legs (capsules with measured radii)."""
    import cv2

    region = np.zeros(shape, np.uint8)
    torso = _torso_corners(points, present, scale)
    if torso is not None:
        cv2.fillConvexPoly(region, np.round(torso).astype(np.int32), 1)
        region = cv2.dilate(region, disc(max(1, int(0.1 * scale))))
    region = region > 0
    for hip, knee, ankle in LEG_JOINTS:
        for (a, b), prior in (((hip, knee), RADIUS_PRIOR["thigh"]), ((knee, ankle), RADIUS_PRIOR["shin"])):
            if present[[a, b]].all():
                radius = limb_radius(person, points[a], points[b], prior * scale)
                region |= capsule(shape, points[a], points[b], radius)
    return region


def leg_hulls(rest: np.ndarray, points: np.ndarray, present: np.ndarray, scale: float) -> np.ndarray:
    """``bool [H, W]``: each thigh and shin as the convex hull of the body's pixels (``rest``: the
    person without the arms) around its bone: a hand resting on the side of the shorts leaves a
    notch in the outline that the hull closes, so the shorts go on under the hand."""
    import cv2

    region = np.zeros(rest.shape, np.uint8)
    for hip, knee, ankle in LEG_JOINTS:
        for (a, b), prior in (((hip, knee), RADIUS_PRIOR["thigh"]), ((knee, ankle), RADIUS_PRIOR["shin"])):
            if not present[[a, b]].all():
                continue
            # about the limb's width, without the hip's end (a jacket's hem there is wider than the leg)
            distance, t = segment_distance(rest.shape, points[a], points[b])
            slab = (distance <= prior * scale) & (t >= 0.15) & (t <= 1)
            inside = np.argwhere(rest & slab)[:, ::-1].astype(np.int32)
            if len(inside) >= 3:
                hull = np.zeros(rest.shape, np.uint8)
                cv2.fillConvexPoly(hull, cv2.convexHull(inside), 1)
                region |= hull & slab
    return region > 0


def torso_below_frame(person: np.ndarray, points: np.ndarray, present: np.ndarray, scale: float) -> np.ndarray:
    """``bool [H, W]``: in a portrait whose torso the frame's bottom edge cuts (the person is wider
    there than the shoulders), the torso continues below the frame: every column the person
    spans on the bottom row counts as body below the shoulders' tops (an arm resting in the
    lap lies on the body, not in front of the background)."""
    h, w = person.shape
    region = np.zeros((h, w), bool)
    columns = np.flatnonzero(person[-1])
    if not present[[5, 6]].all() or columns.size == 0 or np.ptp(columns) < scale:
        return region
    top = int(np.clip(points[[5, 6], 1].min() - 0.25 * scale, 0, h - 1))  # from the shoulders' tops
    region[top:, columns.min():columns.max() + 1] = True
    return region


def below_shoulders(shape: tuple[int, int], points: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the side of the line through the shoulders that the hips are on (the body
    below the neck: no hair, no face), everything when the shoulders are unknown."""
    h, w = shape
    if not present[[5, 6]].all():
        return np.ones(shape, bool)
    across = points[6] - points[5]
    normal = np.array([-across[1], across[0]])
    hips = points[[11, 12]].mean(0) if present[[11, 12]].all() else points[[5, 6]].mean(0) + [0, abs(across[0])]
    side = np.sign((hips - points[5]) @ normal) or 1.0
    ys, xs = np.mgrid[0:h, 0:w]
    return side * ((xs - points[5][0]) * normal[0] + (ys - points[5][1]) * normal[1]) >= 0


def _torso_corners(points: np.ndarray, present: np.ndarray, scale: float) -> np.ndarray | None:
    """``[4, 2]``: the torso's corners, the shoulder joints raised by a quarter of the body scale
    (the shoulders' tops) and the hips; hips out of the photo (a portrait) are put 1.3 body
    scales below the shoulders."""
    if not present[[5, 6]].all():
        return points[[11, 12, 12, 11]] if present[[11, 12]].all() else None
    across = points[6] - points[5]
    down = np.array([-across[1], across[0]]) / max(np.linalg.norm(across), 1e-6)
    hips = points[[12, 11]] if present[[11, 12]].all() else points[[6, 5]] + 1.3 * scale * down
    if (hips.mean(0) - points[[5, 6]].mean(0)) @ down < 0:
        down = -down
    return np.vstack([points[[5, 6]] - 0.25 * scale * down, hips])


def split_overlap(left: np.ndarray, right: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give pixels both arm layers claim to the arm whose forearm or hand is nearer."""
    both = left & right
    if not both.any():
        return left, right
    ys, xs = np.nonzero(both)
    xy = np.stack([xs, ys], 1).astype(np.float64)
    near_left = np.linalg.norm(xy - points[9], axis=1) < np.linalg.norm(xy - points[10], axis=1)
    left, right = left.copy(), right.copy()
    right[ys[near_left], xs[near_left]] = False
    left[ys[~near_left], xs[~near_left]] = False
    return left, right



FACE_POINTS = slice(23, 91)
HAIR_COLOUR = 30.0  # Lab distance within which a pixel has one of the hair's colours (lit strands vary)


def hair_over_arms(image: np.ndarray, person: np.ndarray, arms: np.ndarray, points: np.ndarray,
                   present: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the pixels of the arm layers ``arms`` that are hair falling over them from the
    head (long hair over a shoulder), which must stay with the head when the arm moves.

    The hair's colours are k-means clusters of the person's pixels around the face (within 1.5
    face sizes of its centre, outside the face's landmarks, above the mouth), without those
    close to the face's skin. An arm pixel is hair when its colour is within
    :data:`HAIR_COLOUR` of one of them and nearer them than the arm's own (the forearm's middle, where hair does not reach), and it joins
    the head's hair through such pixels of the person. Empty without a face."""
    import cv2

    found = present[FACE_POINTS]
    if found.sum() < 20 or not arms.any():
        return np.zeros_like(arms)
    face = points[FACE_POINTS][found]
    centre, size = face.mean(0), float(np.ptp(face, axis=0).max())
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = person.shape
    ys, xs = np.mgrid[0:h, 0:w]
    hull = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(hull, np.round(cv2.convexHull(face.astype(np.float32))).astype(np.int32), 1)
    near_head = person & (np.hypot(xs - centre[0], ys - centre[1]) < 1.5 * size) & (ys < centre[1] + 0.2 * size)
    around_face = near_head & ~(cv2.dilate(hull, disc(max(1, int(0.1 * size)))) > 0)
    if around_face.sum() < 50 or not (hull > 0).any():
        return np.zeros_like(arms)
    skin = np.median(lab[hull > 0], axis=0)
    hair = colour_clusters(lab[around_face], min_share=0.2)
    hair = hair[np.linalg.norm(hair - skin, axis=1) > KINDRED]
    own_pixels = forearm_middles((h, w), points, present) & arms
    if not len(hair) or own_pixels.sum() < 10:
        return np.zeros_like(arms)
    own = colour_clusters(lab[own_pixels], min_share=0.1)
    to_hair = np.linalg.norm(lab[..., None, :] - hair, axis=-1).min(-1)
    to_own = np.linalg.norm(lab[..., None, :] - own, axis=-1).min(-1)
    hair_like = (to_hair < HAIR_COLOUR) & (to_hair < to_own)
    head_hair = around_face & (to_hair < HAIR_COLOUR)
    # the strands reach the arm over the shoulder and chest, which lie in the base layer
    joined = _touching((hair_like & person) | head_hair, head_hair) & arms
    # the thin gaps between lit strands are hair in shadow
    closed = cv2.morphologyEx(joined.astype(np.uint8), cv2.MORPH_CLOSE, disc(max(1, round(0.03 * size))))
    return (closed > 0) & arms


def forearm_middles(shape: tuple[int, int], points: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: a thin strip along the middle of each forearm's bone (the arm for sure,
    where long hair does not reach)."""
    middles = np.zeros(shape, bool)
    for _, elbow, wrist in ARM_JOINTS.values():
        if present[[elbow, wrist]].all():
            distance, t = segment_distance(shape, points[elbow], points[wrist])
            middles |= (distance < 0.15 * np.linalg.norm(points[wrist] - points[elbow])) & (t > 0.3) & (t < 0.9)
    return middles


def without_what_hair_hid(image: np.ndarray, arm: np.ndarray, hair: np.ndarray, person: np.ndarray,
                          points: np.ndarray, present: np.ndarray, scale: float) -> np.ndarray:
    """An arm layer ``arm`` under long hair ``hair``, without the pixels of neither (the top's frill
    beside the upper arm): with the hair among the arm's own colours the colour cut
    (:func:`keep_own_colours`) kept them. Cut again with the hair left out of the arm, the
    forearm's middle as the arm for sure, the hands left as they were; the hair stays in the layer
    (the arm goes on under it)."""
    import cv2

    core = forearm_middles(arm.shape, points, present) & arm & ~hair
    if not (arm & hair).any() or core.sum() < 10:
        return arm
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    kept = keep_own_colours(lab, arm & ~hair, core, person, max(3, round(0.1 * scale)))
    h, w = arm.shape
    ys, xs = np.mgrid[0:h, 0:w]
    hands = np.zeros((h, w), bool)  # the hands keep their cut: their own colours are not the forearm's
    for _, elbow, wrist in ARM_JOINTS.values():
        if present[[elbow, wrist]].all():
            reach = 0.6 * np.linalg.norm(points[wrist] - points[elbow])
            hands |= np.hypot(xs - points[wrist][0], ys - points[wrist][1]) < reach
    cut = arm & ~(~kept & ~hair & ~hands)
    return cut | (_holes(cut) & arm)  # what the arm and the hair enclose is the arm


# The torso layer keeps the legs down to the crotch (the seat of shorts or trousers, which bends
# with both thighs), within this range of fractions of the thigh; below it each leg is a layer of its own.
LEG_CUT = (0.2, 0.5)
# A leg's pixels lie within this many of its measured radii of its bones (a trouser leg or a shoe
# is wider than the limb's measured width along its middle).
LEG_REACH = 1.5
FOOT_POINTS = {11: (17, 19), 12: (20, 22)}  # hip -> the foot's big toe and heel


def leg_masks(base: np.ndarray, person: np.ndarray, points: np.ndarray, present: np.ndarray,
              scale: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Each leg's layer (left, right), cut out of ``base`` (the person without the arms, ``bool
    [H, W]``), and the ``seat`` (``bool [H, W]``) the torso layer keeps of them.

    A pixel belongs to the leg whose bones (thigh, shin, the foot's toe and heel) it is nearer,
    in units of each bone's radius measured on ``person``'s silhouette (as the arms'), if within
    :data:`LEG_REACH` radii, from the line across the thigh through the hip down. The seat is
    the legs' part above :data:`LEG_CUT` of the thigh: the torso's layer covers the legs' tops,
    so a leg turned about its hip shows no gap. A leg without its hip and knee gets no layer
    (an empty mask): it stays in the base layer."""
    h, w = base.shape
    reach, along_thigh = [], []
    for hip, knee, ankle in LEG_JOINTS:
        nearness = np.full((h, w), np.inf, np.float32)
        thigh_t = np.full((h, w), -np.inf, np.float32)
        if present[[hip, knee]].all():
            bones = [((hip, knee), "thigh"), ((knee, ankle), "shin")]
            bones += [((ankle, toe), "shin") for toe in FOOT_POINTS[hip]]
            for (a, b), name in bones:
                if not present[[a, b]].all():
                    continue
                radius = limb_radius(person, points[a], points[b], RADIUS_PRIOR[name] * scale)
                distance, t = segment_distance((h, w), points[a], points[b])
                if name == "thigh":
                    distance = np.where(t >= 0, distance, np.inf)  # cut flat through the hip
                    thigh_t = t
                nearness = np.minimum(nearness, distance / radius)
        reach.append(nearness)
        along_thigh.append(thigh_t)
    legs = [base & (reach[k] <= LEG_REACH) & (reach[k] < reach[1 - k]) for k in (0, 1)]
    cut = crotch(person, points, present)
    seat = np.zeros((h, w), bool)
    for leg, t in zip(legs, along_thigh):
        seat |= leg & (t < cut)
    return legs, seat


def crotch(person: np.ndarray, points: np.ndarray, present: np.ndarray) -> float:
    """Where the legs part, as a fraction of the thigh: going down the line from the hips' middle to
    the knees', the first pixel off ``person`` (``bool [H, W]``), kept within :data:`LEG_CUT` (legs
    touching down to the knees, or a skirt: the torso keeps half the thighs)."""
    low, high = LEG_CUT
    if not present[[11, 12, 13, 14]].all():
        return low
    top, bottom = points[[11, 12]].mean(0), points[[13, 14]].mean(0)
    h, w = person.shape
    for t in np.linspace(low, high, 31):
        x, y = np.round(top + t * (bottom - top)).astype(int)
        if not (0 <= x < w and 0 <= y < h) or not person[y, x]:
            return float(t)
    return high


# The arm's own colours are sampled this deep (times the body scale) inside the silhouette's edge where
# the arm borders the background: there nothing lies over it.
OUTER_EDGE = 0.03
# Two chromatic colours (chroma above SAME_DYE_CHROMA, in OpenCV's 8-bit Lab units) whose hues differ by
# less than SAME_DYE_HUE degrees are one material in different light (a red sleeve in shade and the red
# jacket in the light): shading changes lightness far more than hue.
SAME_DYE_CHROMA = 15.0
SAME_DYE_HUE = 20.0
GARMENT_THICKNESS = 0.035  # half the least width (times the body scale) of a garment's piece over an arm


def torso_garment_colours(lab: np.ndarray, person: np.ndarray, arms: np.ndarray, hair: np.ndarray,
                          points: np.ndarray, present: np.ndarray, scale: float) -> np.ndarray:
    """``[k, 3]`` Lab centres of the torso's colours (its garment, its skin, the shading of its folds):
    k-means of the person's pixels inside the torso's quadrilateral below the shoulders, away from
    the arm layers ``arms`` and the hair over them ``hair`` (``bool [H, W]`` each). Empty without a
    torso."""
    import cv2

    corners = _torso_corners(points, present, scale)
    if corners is None:
        return np.zeros((0, 3), np.float32)
    quad = np.zeros(person.shape, np.uint8)
    cv2.fillConvexPoly(quad, np.round(corners).astype(np.int32), 1)
    near_arms = grow_mask(arms | hair, max(2, round(0.05 * scale)))
    torso = (quad > 0) & person & ~near_arms & below_shoulders(person.shape, points, present)
    if torso.sum() < 50:
        return np.zeros((0, 3), np.float32)
    return colour_clusters(lab[torso], count=4, min_share=0.05)


def arm_in_view(arm: np.ndarray, person: np.ndarray, hair: np.ndarray, scale: float) -> np.ndarray:
    """``bool [H, W]``: pixels of the arm layer ``arm`` that are the arm in plain view, without hair: a
    band along the silhouette's outer edge where the arm borders the background (from 2 pixels inside it,
    where the background no longer bleeds in, to :data:`OUTER_EDGE` of the body scale). Nothing of the
    torso lies over the arm there; along the bone's middle, what covers the arm may."""
    band = max(2, round(OUTER_EDGE * scale))
    outside = ~person & ~_holes(person)  # a gap between arm and body is lined with shade
    rim = grow_mask(outside, 2)
    edge = grow_mask(outside, band + 2)
    return arm & edge & ~rim & ~hair


def without_torso_garment(lab: np.ndarray, arm: np.ndarray, hair: np.ndarray, garment: np.ndarray,
                          person: np.ndarray, points: np.ndarray, present: np.ndarray, scale: float,
                          side: str) -> np.ndarray:
    """An arm layer ``arm`` (``bool [H, W]``) without what of the torso lies over the arm in the photo:
    the top's fabric or frill hanging over the upper arm, the shading between arm and body. Those
    pixels stay with the torso (the base layer); a segment of the arm they leave mostly unseen is
    completed under them from its twin (:mod:`holdpose.animate.puppet.hidden`).

    The arm's own colours are clustered where nothing covers it: along the silhouette's edge with the
    background (:func:`arm_in_view`). A pixel leaves the arm when
    its colour is nearer one of ``garment`` (:func:`torso_garment_colours`, ``[k, 3]`` Lab) that is none of
    the arm's materials (:func:`same_material`: a red sleeve on a red jacket is the arm, the shape
    decides) than the arm's own colours by :data:`COLOUR_MARGIN`, and the pixels so found
    join the torso (a piece of the garment over the arm is continuous with the garment beside it). The
    hair over the arm and the hand are left as they are. ``lab``: the photo in Lab, float32."""
    edge = arm_in_view(arm, person, hair, scale)
    if edge.sum() < 20 or not len(garment):
        return arm
    own = colour_clusters(lab[edge], count=4, min_share=0.05)  # a cuff's stripes are the arm's own too
    garment = garment[~same_material(garment, own).any(1)]
    if not len(garment):
        return arm
    hand = _hand_area(arm.shape, points, present, side, scale)
    ys, xs = np.nonzero(arm & ~hair & ~edge & ~hand)
    pixels = lab[ys, xs]
    to_own = np.linalg.norm(pixels[:, None] - own[None], axis=-1).min(1)
    to_garment = np.linalg.norm(pixels[:, None] - garment[None], axis=-1).min(1)
    over = np.zeros_like(arm)
    over[ys, xs] = to_garment + COLOUR_MARGIN < to_own
    torso = person & ~arm
    # a piece of garment, not a crease's line of shade (which a raised arm's own edge carries)
    over &= open_mask(over | (hair & arm), max(1, round(GARMENT_THICKNESS * scale)))
    over = _touching(over | torso | (hair & arm), torso) & over  # the frill may meet the top under the hair
    kept = arm & ~over
    return _touching(kept, edge | hair | hand)


def same_material(colours: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``bool [N, M]``: whether each of ``colours [N, 3]`` may be the same material as each of ``others
    [M, 3]`` (OpenCV 8-bit Lab) in another light: closer than :data:`KINDRED`, or both chromatic with
    hues less than :data:`SAME_DYE_HUE` apart."""
    near = np.linalg.norm(colours[:, None] - others[None], axis=-1) < KINDRED
    a, b = (colours[:, 1:] - 128).T
    a2, b2 = (others[:, 1:] - 128).T
    chromatic = (np.hypot(a, b)[:, None] > SAME_DYE_CHROMA) & (np.hypot(a2, b2)[None] > SAME_DYE_CHROMA)
    hue = np.degrees(np.arctan2(b, a))[:, None] - np.degrees(np.arctan2(b2, a2))[None]
    return near | chromatic & (np.abs((hue + 180) % 360 - 180) < SAME_DYE_HUE)


def _hand_area(shape: tuple[int, int], points: np.ndarray, present: np.ndarray, side: str,
               scale: float) -> np.ndarray:
    """``bool [H, W]``: around one hand (its landmarks, or its wrist), grown by a tenth of the body
    scale: the hand keeps the cut of :func:`arm_mask` (its gaps show the garment behind)."""
    import cv2

    hand = HAND_POINTS[side]
    wrist = ARM_JOINTS[side][2]
    found = present[hand]
    area = np.zeros(shape, np.uint8)
    if found.sum() >= 5:
        hull = cv2.convexHull(points[hand][found].astype(np.float32))
        cv2.fillConvexPoly(area, np.round(hull).astype(np.int32), 1)
    elif present[wrist]:
        cv2.circle(area, tuple(int(v) for v in np.round(points[wrist])), max(2, round(0.15 * scale)), 1, -1)
    return grow_mask(area > 0, max(2, round(0.1 * scale)))


def open_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Morphological opening of ``mask`` (bool) by a disc of ``radius`` pixels: without its parts thinner
    than the disc."""
    import cv2

    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disc(radius)) > 0