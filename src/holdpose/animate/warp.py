"""The embedded animator: a 2-D puppet made from the reference photo, posed per frame.

In the spirit of Animated Drawings (Smith et al., 2023), for photographs:

Rig (once per reference, :class:`PuppetRig`)
    1. The person mask comes from MediaPipe's segmentation. Each arm (with its hand) is cut
       out of it as its own layer: capsules along the upper arm and forearm whose radii are
       measured on the silhouette, the hand from its 21 landmarks, the union kept to the
       arm's own colours so it takes no strip of the shorts or torso under it
       (:mod:`holdpose.animate.puppet.layers`). The base layer (torso, head, legs) keeps the
       rest; where the body goes on behind an arm (the torso and legs, within the body's own
       outline) it keeps the arm's pixels, filled with the garment's own texture (patches of
       the torso around the gap, :mod:`holdpose.animate.puppet.exemplar`); elsewhere they
       leave the base and a moved arm uncovers the background. Long hair falling over an arm
       is a layer of its own, drawn in front of the arms and moving with the body; pieces of the
       torso's garment over an arm (a frill, the shade beside it) stay in the base. Each leg, from
       the hip down, is a layer of its own under the torso's, cut out of the base along the thigh,
       shin and foot with radii measured on the silhouette; the torso keeps the seat down to the
       crotch, which bends with both thighs: spread legs turn about their hips instead of
       stretching the inner thighs between them like paper. A limb segment the photo hides
       (behind a held helmet or the back, under the other arm or long hair, painted over) leaves its limb's
       layer and gets one of its own behind the body, completed from its mirrored twin or its
       limb's visible neighbour extended (:mod:`holdpose.animate.puppet.hidden`); what hid it off
       the body stays where the photo has it, in front of it.
    2. The background behind the person is filled by push-pull (Gortler et al., 1996) over
       the person's mask grown by the segmentation's halo (:mod:`holdpose.animate.puppet.fill`).
    3. Each layer gets a triangle mesh over its mask (grid points inside, Delaunay, triangles
       outside the mask dropped) and per-vertex skinning weights over the layer's parts: a
       Gaussian of the distance to each part's bone in the reference (a hand with landmarks: to
       their hull, so the palm follows the hand), normalised, so joints bend smoothly instead of
       tearing. Each layer's alpha is 1 on its mask and falls to 0
       over ``feather`` pixels outside it, in texture space: edges are soft and do not crawl.

Pose (per frame, :meth:`PuppetRig.deform`)
    4. Each part gets a 2-D affine transform from the reference pose to the target:
       limbs rotate about their proximal joint and stretch along the bone only (the
       width is kept); torso, head and hands are least-squares similarity fits of
       all their points (face and hand landmarks included when present). A part the
       target lacks follows its parent.
    5. Vertices move by linear blend skinning, ``v' = sum_p w_p A_p v``.
    6. Layers are drawn back to front (completed hidden limbs and what hid them, the legs, the base, the arms, hair
       over the arms): triangles are rasterised into a
       triangle-index buffer over the layer's box, each pixel is mapped back into the layer's
       texture and alpha through its triangle's affine map, and blended over the frame.

Because every limb transform sends the reference joints exactly onto the target
joints, the output holds the target pose by construction. Depth between the arms
comes from MediaPipe's z of the reference (the nearer arm is drawn last) and is
fixed for the clip: targets carry no depth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from holdpose.animate.base import Animator, FrameCallback, check_poses, check_reference
from holdpose.animate.puppet.layers import close_mask, grow_mask, open_mask
from holdpose.detect.base import REFERENCE_MIN_VISIBILITY
from holdpose.detect.reference import check_reference_pose
from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

MIN_SCORE = 0.3  # a target point with a lower score is missing
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)
FACE = slice(23, 91)
HEAD_POINTS = np.r_[0:5, 23:91]
HULL_MIN_LANDMARKS = 5  # a hand's skinning follows its landmarks' hull when the reference has this many
# A gap the arms leave in the body at least this wide (times the body scale) is filled with the
# garment's texture; a narrower one (a hand's width) with a smooth continuation of its border.
EXEMPLAR_MIN_WIDTH = 0.25


@dataclass(frozen=True)
class Part:
    """A rigid piece of the puppet.

    ``bone``: the two joints whose segment the part follows (None for fitted parts);
    ``fit``: joints fitted by a similarity (torso, head, hands); ``parent``: whose
    transform to use when the target lacks this part; ``layer``: 0 base (the legs too: their layers
    are cut from the base and take its texture), 1 left arm, 2 right arm.
    """

    name: str
    bone: tuple[int, int] | None
    fit: tuple[int, ...]
    parent: str | None
    layer: int


PARTS = (
    Part("torso", None, (5, 6, 11, 12), None, 0),
    Part("head", None, tuple(HEAD_POINTS), "torso", 0),
    Part("left_thigh", (11, 13), (), "torso", 0),
    Part("left_shin", (13, 15), (), "left_thigh", 0),
    Part("left_foot", (15, 17), (), "left_shin", 0),
    Part("right_thigh", (12, 14), (), "torso", 0),
    Part("right_shin", (14, 16), (), "right_thigh", 0),
    Part("right_foot", (16, 20), (), "right_shin", 0),
    Part("left_upper_arm", (5, 7), (), "torso", 1),
    Part("left_forearm", (7, 9), (), "left_upper_arm", 1),
    Part("left_hand", None, tuple(range(91, 112)), "left_forearm", 1),
    Part("right_upper_arm", (6, 8), (), "torso", 2),
    Part("right_forearm", (8, 10), (), "right_upper_arm", 2),
    Part("right_hand", None, tuple(range(112, 133)), "right_forearm", 2),
)
PART_INDEX = {part.name: i for i, part in enumerate(PARTS)}
ARM_LAYERS = (1, 2)
# The limb segments a reference may hide (part names without their side), completed when it does.
ARM_SEGMENTS = ("upper_arm", "forearm", "hand")
LEG_SEGMENTS = ("thigh", "shin")


# --- transforms --------------------------------------------------------------------


def bone_transform(p0, p1, q0, q1) -> np.ndarray:
    """3x3 affine taking segment p0->p1 onto q0->q1: rotate about p0, stretch along the
    bone only (its width is kept), then move p0 onto q0."""
    u = p1 - p0
    v = q1 - q0
    lu, lv = np.linalg.norm(u), np.linalg.norm(v)
    if lu < 1e-6 or lv < 1e-6:
        return translation(q0 - p0)
    u_hat, v_hat = u / lu, v / lv
    u_perp, v_perp = np.array([-u_hat[1], u_hat[0]]), np.array([-v_hat[1], v_hat[0]])
    # columns: where the bone axis and its normal go
    linear = (lv / lu) * np.outer(v_hat, u_hat) + np.outer(v_perp, u_perp)
    return _affine(linear, q0 - linear @ p0)


def similarity_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """3x3 least-squares similarity (rotation, uniform scale, translation) taking
    ``source [N, 2]`` onto ``target [N, 2]`` (Umeyama, 1991); a translation for N = 1."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    if len(source) < 2:
        return translation(mu_t - mu_s)
    s, t = source - mu_s, target - mu_t
    covariance = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    variance = (s ** 2).sum() / len(source)
    scale = (d * np.diag(sign)).sum() / variance if variance > 1e-9 else 1.0
    linear = scale * rotation
    return _affine(linear, mu_t - linear @ mu_s)


def translation(offset) -> np.ndarray:
    return _affine(np.eye(2), offset)


def _affine(linear, offset) -> np.ndarray:
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = offset
    return out


def part_transforms(ref_points, ref_present, target_points, target_present) -> np.ndarray:
    """``[len(PARTS), 3, 3]``: each part's affine from the reference pose to the target pose."""
    transforms = np.zeros((len(PARTS), 3, 3))
    for i, part in enumerate(PARTS):  # PARTS lists parents before children
        matrix = None
        if part.bone is not None:
            a, b = part.bone
            if ref_present[[a, b]].all() and target_present[[a, b]].all():
                matrix = bone_transform(ref_points[a], ref_points[b], target_points[a], target_points[b])
        else:
            shared = [k for k in part.fit if ref_present[k] and target_present[k]]
            if len(shared) >= (2 if part.name != "torso" else 2):
                matrix = similarity_fit(ref_points[shared], target_points[shared])
        if matrix is None:
            matrix = transforms[PART_INDEX[part.parent]] if part.parent else _fallback_torso(
                ref_points, ref_present, target_points, target_present)
        transforms[i] = matrix
    return transforms


def _fallback_torso(ref_points, ref_present, target_points, target_present) -> np.ndarray:
    """When the target lacks two torso points: move with whatever body points both have."""
    shared = [k for k in range(17) if ref_present[k] and target_present[k]]
    if not shared:
        return np.eye(3)
    return translation(target_points[shared].mean(0) - ref_points[shared].mean(0))


# --- rig -----------------------------------------------------------------------------


@dataclass
class Layer:
    vertices: np.ndarray  # [V, 2] reference pixels
    triangles: np.ndarray  # [F, 3] vertex indices
    weights: np.ndarray  # [V, len(PARTS)], rows sum to 1, zero outside the layer's parts
    texture: int  # which panel of the atlas: 0 the base texture, 1 the arms', then the hair in front of the
    # arms, the completed hidden limbs and what hid them, when there are any
    static: bool = False  # stays where it is in the photo whatever the pose (what hid a limb off the body)


class PuppetRig:
    """Set up once per reference photo; :meth:`deform` poses it per frame.

    Args:
        reference: the photo, ``uint8 [H, W, 3]`` RGB.
        keypoints, scores: its pose ``[133, 2]``, ``[133]`` (COCO-WholeBody, pixels).
        mask: person mask ``[H, W]`` (bool, or MediaPipe's soft 0..1 segmentation).
        depth: optional per-keypoint z ``[133]`` (MediaPipe: smaller is nearer), to order the arms.
        grid_step: mesh vertex spacing in pixels (default: 1/40 of the short side, at least 6).
        feather: width in pixels of each layer's soft border, outside its mask.
    """

    def __init__(self, reference: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, mask: np.ndarray,
                 depth: np.ndarray | None = None, grid_step: int | None = None, feather: int = 2):
        import cv2

        from holdpose.animate.puppet import fill, hidden, layers as cut
        from holdpose.animate.puppet.exemplar import exemplar_fill

        self.reference = check_reference(reference)
        h, w = reference.shape[:2]
        self.size = (w, h)
        self.points = np.asarray(keypoints, np.float64)
        self.scores = np.asarray(scores, np.float32)
        self.present = self.scores >= REFERENCE_MIN_VISIBILITY
        check_reference_pose(np.where(self.present, 1.0, 0.0), "the reference photo")
        soft = np.asarray(mask, np.float32)
        self.mask = soft > 0.5
        if self.mask.sum() < 100:
            raise HoldposeError("no person found in the reference's segmentation mask")
        self.grid_step = grid_step or max(6, min(w, h) // 40)
        self.feather = feather
        self.scale = self._body_scale()

        # 1. layers: each arm (with its hand) cut along its bones; the base keeps the rest
        # Where the body goes on behind an arm the base keeps the pixels, filled with the body's
        # texture; beside the body a moved arm uncovers the background.
        body = cut.body_region(self.mask.shape, self.points, self.present, self.scale, self.mask)
        # A limb segment the reference hides (behind the back or a held object, under the other arm, under
        # long hair or the top, off the silhouette) leaves its limb's layer, which would take what lies in
        # front of it; it gets a layer of its own, completed from its mirrored twin or its neighbour
        # extended, drawn behind. It is judged on what of the arm is seen: without the hair over it.
        lab, backdrop = (cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32) for image in
                         (self.reference, fill.fill_background(self.reference, fill.person_hole(soft))))
        left, right, self.hair_mask = self._arm_layers(soft, body, lab)
        bones = hidden.segment_bones(self.mask, self.points, self.present, self.scale)
        seen = _by_segment((left & ~self.hair_mask, right & ~self.hair_mask), limbs="arms")
        self.hidden = hidden.hidden_segments(lab, backdrop, bones, seen, self.mask, self.scores)
        if self.hidden:
            left, right, self.hair_mask = self._arm_layers(soft, body, lab, self.hidden)
        arms = left | right
        # Slivers the arm layers leave along their edges (a finger's rim against the background) would
        # stay behind as an outline of the arm: they go with the background.
        rest = self.mask & ~arms
        slivers = rest & ~open_mask(rest, 2) & grow_mask(arms, max(3, round(0.05 * self.scale)))
        self.layer_masks = [rest & ~slivers, left, right]
        # ... and only where the body's own outline closes over the gap the arm leaves (morphological
        # closing of what is left), so the body does not grow into the space beside it.
        hidden_body = arms & body & close_mask(self.layer_masks[0], max(2, round(0.25 * self.scale)))
        hidden_body |= arms & cut.leg_hulls(self.mask & ~arms, self.points, self.present, self.scale)
        below_frame = cut.torso_below_frame(self.mask, self.points, self.present, self.scale)
        hidden_body |= arms & below_frame
        self.base_mask = self.layer_masks[0] | hidden_body
        # Each leg (from the hip down) is a layer of its own under the torso's, so spread legs turn
        # about their hips instead of stretching the crotch between them; the torso keeps the seat.
        legs, seat = cut.leg_masks(self.base_mask, self.mask, self.points, self.present, self.scale)
        self.leg_masks = [leg if leg.sum() >= 20 else np.zeros_like(leg) for leg in legs]
        hidden_legs = hidden.hidden_segments(lab, backdrop, bones, _by_segment(self.leg_masks, limbs="legs"),
                                             self.mask, self.scores)
        for name in hidden_legs:  # what lies over a hidden leg segment stays with the torso
            self.leg_masks[name.startswith("right")] &= ~hidden.segment_region(bones[name], self.mask.shape)
        self.hidden |= hidden_legs
        torso_mask = self.base_mask & ~((self.leg_masks[0] | self.leg_masks[1]) & ~seat)

        # 2. textures: the background without the person, the base without the arms
        arms_grown = grow_mask(arms, 2)
        self.background = fill.fill_background(self.reference, fill.person_hole(soft) | arms_grown)
        base_sources = self.layer_masks[0] & ~arms_grown
        if base_sources.sum() < 100:
            base_sources = self.layer_masks[0]
        # Beyond their masks both textures continue their own colours (push-pull), so a
        # feathered border blends the part into what is behind it, not into the photo's background.
        # The body under the arms is filled from the torso's and legs' own pixels only (not the
        # head's, nor stray bits of the mask at the photo's edge).
        torso_sources = base_sources & (body | below_frame)
        base_texture = np.where(base_sources[..., None], self.reference.astype(np.float32), fill.pushpull_fill(
            self.reference, torso_sources if torso_sources.sum() >= 100 else base_sources))
        # Where a moved arm uncovers the body, a wide gap takes the garment's own texture (patches of
        # the torso's and legs' pixels below the neck, never the hair or face) instead of a smooth blob;
        # only under the arms (and their feather): the rim around them shows in the reference pose.
        uncovered = arms & grow_mask(self.base_mask, feather)
        base_texture = exemplar_fill(base_texture, uncovered,
                                     torso_sources & cut.below_shoulders(self.mask.shape, self.points, self.present),
                                     min_width=EXEMPLAR_MIN_WIDTH * self.scale)
        # An arm's outermost pixels are part background (a white wall's rim around a hand): they take
        # the colour of the arm just inside, so the arm does not carry a rim of its old background.
        arm_core = arms & ~grow_mask(~arms, 1) & ~self.hair_mask
        arm_texture = fill.pushpull_fill(self.reference, arm_core if arm_core.any() else arms)
        # The hidden segments' textures; what hid them off the body (a held helmet, the background painted
        # over an arm) stays in front of them, in the base layer.
        limb_layers = _by_segment(self.layer_masks[1:], limbs="arms") | _by_segment(self.leg_masks, limbs="legs")
        limb_textures = {name: arm_texture if name.split("_", 1)[1] in ARM_SEGMENTS else base_texture
                         for name in limb_layers}
        self.completed = hidden.complete_segments(self.hidden, bones, limb_layers, limb_textures)
        completed = np.zeros(self.mask.shape, bool)
        completed_texture = np.zeros((h, w, 3), np.float32)
        for mask, texture in self.completed.values():
            completed_texture[mask], completed = texture[mask], completed | mask
        # What hid them off the body (a held helmet outside the silhouette, the wall painted over a limb
        # that the segmentation's prior of a body took in) is a layer that stays where the photo shows
        # it, in front of them (over their feather too); what hid them on the body stays in its layer.
        legs_mask = self.leg_masks[0] | self.leg_masks[1]
        in_front = grow_mask(completed, 2 * feather + 1) & ~arms & ~legs_mask & (
            ~self.mask | (np.linalg.norm(lab - backdrop, axis=-1) < hidden.BACKDROP))
        self.base_mask &= ~in_front
        torso_mask &= ~in_front
        base_alpha, arm_alpha = _feathered(self.base_mask, feather), _feathered(arms, feather)
        # The person's outer edge keeps the segmentation's own soft matte, photo and all, in the layer
        # it borders: the photo comes back as it was in the reference pose, and the edge moves with
        # its part instead of staying behind as an outline.
        halo = fill.halo_width(soft)
        edge = (soft > 0.02) & ~self.mask & grow_mask(self.mask, halo)
        arm_edge = edge & grow_mask(arms, halo)
        base_edge = edge & ~arm_edge & ~in_front
        for texture, alpha, part in ((base_texture, base_alpha, base_edge), (arm_texture, arm_alpha, arm_edge)):
            texture[part] = self.reference[part]
            alpha[part] = np.maximum(alpha[part], soft[part])
        textures, alphas = [base_texture, arm_texture], [base_alpha, arm_alpha]
        if self.hair_mask.any():
            textures.append(fill.pushpull_fill(self.reference, self.hair_mask))
            alphas.append(_feathered(self.hair_mask, feather))
        if self.completed:
            textures += [fill.pushpull_fill(completed_texture, completed), fill.pushpull_fill(self.reference, in_front)]
            alphas += [_feathered(completed, feather), _feathered(in_front, feather)]
        # A body the frame's bottom cuts (at the knees, the hips, the chest) goes on below it: the base
        # layer's texture, matte and masks continue their last row, so a pose that lifts or leans it
        # shows more of the body (legs, clothes carried on straight down), not the cut edge floating in
        # the picture. A mirror instead repeats what lies above the edge (shorts below the knees). Arms
        # and hair stop at the edge. The rig's canvas is the photo with those rows below it, in the
        # photo's pixel coordinates.
        below = margin_below(self.mask, self.scale)
        self.canvas = (w, h + below)  # (width, height) of the rig's canvas
        textures = [_below(texture, below) for texture in textures]
        alphas = [_below(alpha, below, repeat=number == 0) for number, alpha in enumerate(alphas)]
        torso_mask, base_edge = _below(torso_mask, below), _below(base_edge, below)
        legs = [_below(leg, below) for leg in self.leg_masks]
        arm_masks = [_below(m, below, repeat=False) for m in self.layer_masks]
        arm_edge, hair_mask = _below(arm_edge, below, repeat=False), _below(self.hair_mask, below, repeat=False)
        self.atlas = np.concatenate([_to_uint8(texture) for texture in textures], axis=1)
        self.alpha = np.concatenate(alphas, axis=1)  # 0..1

        # 3. meshes and skinning weights, over each layer's mask grown by its feather
        # The legs take the base's texture (the body under the arms filled), drawn before the torso.
        leg_edges = [base_edge & grow_mask(leg, halo) for leg in legs]
        legs_meshes = [self._mesh(grow_mask(leg, feather) | edge, texture=0,
                                  parts=[PART_INDEX[f"{side}_{bone}"] for bone in ("thigh", "shin", "foot")])
                       for side, leg, edge in zip(("left", "right"), legs, leg_edges) if leg.any()]
        self.layers = [_merge(legs_meshes)] if legs_meshes else []
        if self.completed:  # behind everything: in the reference pose what hid them is in front
            self.layers[:0] = [_merge([self._mesh(grow_mask(mask, feather), texture=len(textures) - 2,
                                                  parts=_limb_parts(name)) for name, (mask, _) in
                                       self.completed.items()])]
            if in_front.any():
                occluder = self._mesh(grow_mask(in_front, feather), texture=len(textures) - 1, parts=[PART_INDEX["torso"]])
                self.layers.insert(1, Layer(occluder.vertices, occluder.triangles, occluder.weights, occluder.texture,
                                            static=True))
        self.layers.append(self._mesh(grow_mask(torso_mask, feather) | (base_edge & ~leg_edges[0] & ~leg_edges[1]),
                                      parts=[i for i, p in enumerate(PARTS) if p.layer == 0], texture=0))
        arm_order = list(ARM_LAYERS)
        if depth is not None:  # nearer arm (smaller z) last
            wrist_z = {1: depth[9], 2: depth[10]}
            arm_order.sort(key=lambda layer: -wrist_z[layer])
        arms_meshes = [self._mesh(grow_mask(arm_masks[layer], feather) | (arm_edge & grow_mask(arm_masks[layer], halo)),
                                  texture=1, shoulder=5 if layer == 1 else 6,
                                  parts=[i for i, p in enumerate(PARTS) if p.layer == layer] + [PART_INDEX["torso"]])
                       for layer in arm_order if arm_masks[layer].any()]
        if arms_meshes:
            # Both arms go in one mesh, the nearer one's triangles last: rasterised in order into
            # one index buffer they overlap as painted, at the cost of one pass instead of two.
            self.layers.append(_merge(arms_meshes))
        if hair_mask.any():  # in front of the arms
            self.layers.append(self._mesh(grow_mask(hair_mask, feather), texture=2,
                                          parts=[i for i, p in enumerate(PARTS) if p.layer == 0]))

    def _arm_layers(self, soft: np.ndarray, body: np.ndarray, lab: np.ndarray, hidden: set[str] = frozenset()
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both arms' layers and the hair over them, ``bool [H, W]`` each (left, right, hair), without the
        ``hidden`` segments (part names). ``lab``: the reference in Lab, float32.

        Long hair falling over an arm stays with the head: it is cut out of the arm's texture (the arm
        goes on under it in the arm's own colours) and drawn in front of the arms, moving with the body.
        What the hair's colours let into the arm layer besides (the top's frill) leaves it, and so does
        what of the torso lies over the arm (the top's fabric, the shade between arm and body): it stays
        with the torso."""
        from holdpose.animate.puppet import layers as cut

        left, right = self._cut_arms(soft, body, hidden)
        hair = cut.hair_over_arms(self.reference, self.mask, left | right, self.points, self.present)
        left, right = (cut.without_what_hair_hid(self.reference, m, hair, self.mask, self.points, self.present,
                                                 self.scale) for m in (left, right))
        garment = cut.torso_garment_colours(lab, self.mask, left | right, hair, self.points, self.present,
                                            self.scale)
        left, right = (cut.without_torso_garment(lab, m, hair, garment, self.mask, self.points, self.present,
                                                 self.scale, side) for m, side in ((left, "left"), (right, "right")))
        return left, right, hair

    def _cut_arms(self, soft: np.ndarray, body: np.ndarray, hidden: set[str] = frozenset()
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Both arms' layers ``bool [H, W]`` (left, right), without the ``hidden`` segments (part names)."""
        from holdpose.animate.puppet import layers as cut

        arms = [cut.arm_mask(self.reference, self.mask, soft > 0.2, body, self.points, self.present, self.scale,
                             side, hidden=frozenset(name[len(side) + 1:] for name in hidden if name.startswith(side)))
                for side in ("left", "right")]
        left, right = (m if m.sum() >= 20 else np.zeros_like(m) for m in arms)
        return cut.split_overlap(left, right, self.points)

    def _body_scale(self) -> float:
        """A body length in pixels: shoulder width, or hip width, whichever is known (larger)."""
        lengths = [np.linalg.norm(self.points[a] - self.points[b]) for a, b in ((5, 6), (11, 12))
                   if self.present[[a, b]].all()]
        return float(max(lengths))

    def _part_segments(self) -> np.ndarray:
        """``[len(PARTS), 2, 2]`` a reference segment per part, for skinning distances (NaN: absent)."""
        p, present = self.points, self.present
        segments = np.full((len(PARTS), 2, 2), np.nan)
        neck = p[[5, 6]].mean(0) if present[[5, 6]].all() else None
        pelvis = p[[11, 12]].mean(0) if present[[11, 12]].all() else None
        for i, part in enumerate(PARTS):
            if part.bone is not None and present[list(part.bone)].all():
                segments[i] = p[list(part.bone)]
            elif part.name == "torso":
                top = neck if neck is not None else pelvis
                bottom = pelvis if pelvis is not None else top + [0, 1.5 * self.scale]
                segments[i] = [top, bottom]
            elif part.name == "head" and present[0]:
                base = neck if neck is not None else p[0] + [0, 0.4 * self.scale]
                segments[i] = [base + 0.3 * (p[0] - base), p[0] + 0.3 * (p[0] - base)]
            elif part.name.endswith("hand"):
                wrist = 9 if part.name.startswith("left") else 10
                elbow = wrist - 2
                hand = LEFT_HAND if wrist == 9 else RIGHT_HAND
                hand_present = self.present[hand]
                if present[wrist] and hand_present.sum() >= 3:
                    segments[i] = [p[wrist], p[hand][hand_present].mean(0)]
                elif present[[wrist, elbow]].all():
                    segments[i] = [p[wrist], p[wrist] + 0.35 * (p[wrist] - p[elbow])]
        return segments

    def _part_distances(self, xy: np.ndarray) -> np.ndarray:
        """``[N, len(PARTS)]`` distance from each point to each part's segment (inf: part absent)."""
        segments = self._part_segments()
        a, b = segments[:, 0], segments[:, 1]  # [P, 2]
        ab = b - a
        denom = np.maximum((ab ** 2).sum(-1), 1e-9)
        t = np.clip(((xy[:, None, :] - a[None]) * ab[None]).sum(-1) / denom, 0, 1)
        closest = a[None] + t[..., None] * ab[None]
        distances = np.linalg.norm(xy[:, None, :] - closest, axis=-1)
        distances = np.where(np.isfinite(distances), distances, np.inf)
        # A hand with landmarks is its whole palm and fingers (the hull of its landmarks), not the line
        # from its wrist: the palm follows the hand's own fit, not a blend with the forearm's.
        for name, landmarks in (("left_hand", LEFT_HAND), ("right_hand", RIGHT_HAND)):
            found = self.present[landmarks]
            if found.sum() >= HULL_MIN_LANDMARKS and np.isfinite(distances[:, PART_INDEX[name]]).all():
                distances[:, PART_INDEX[name]] = _hull_distance(xy, self.points[landmarks][found], self.mask.shape)
        return distances

    def _mesh(self, mask: np.ndarray, parts: list[int], texture: int, shoulder: int | None = None) -> Layer:
        """A triangle mesh over ``mask`` with skinning weights over ``parts``. In an arm's layer
        (``shoulder``: its shoulder keypoint) the torso's weight falls off with the distance to
        that shoulder, not to the torso's line: a hand resting on the belly follows the arm,
        not the torso."""
        import cv2
        from scipy.spatial import Delaunay

        step = self.grid_step
        h, w = mask.shape
        gy, gx = np.mgrid[step // 2:h:step, step // 2:w:step]
        inside = mask[gy, gx]
        points = [np.stack([gx[inside], gy[inside]], 1)]
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for contour in contours:
            points.append(contour[:: max(1, step // 2), 0, :])
        vertices = np.unique(np.concatenate(points).astype(np.float64), axis=0)
        triangles = Delaunay(vertices).simplices
        centroids = vertices[triangles].mean(1)
        keep = mask[np.clip(centroids[:, 1].round().astype(int), 0, h - 1),
                    np.clip(centroids[:, 0].round().astype(int), 0, w - 1)]
        # drop long slivers that bridge concave gaps (between an arm and the body)
        edges = np.linalg.norm(vertices[triangles] - vertices[np.roll(triangles, 1, axis=1)], axis=-1)
        keep &= edges.max(1) < 3 * step
        triangles = triangles[keep]
        distances = self._part_distances(vertices)
        if shoulder is not None and self.present[shoulder]:
            distances[:, PART_INDEX["torso"]] = np.linalg.norm(vertices - self.points[shoulder], axis=1)
        allowed = np.full(len(PARTS), np.inf)
        allowed[parts] = 0
        sigma = 0.15 * self.scale
        logits = -0.5 * ((distances + allowed) / sigma) ** 2
        logits -= logits.max(1, keepdims=True)
        weights = np.exp(logits)
        weights[:, np.isinf(allowed)] = 0
        weights /= weights.sum(1, keepdims=True)
        return Layer(vertices, triangles, weights, texture)

    # --- per frame ----------------------------------------------------------------

    def deform(self, target_points: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
        """The puppet in the target pose (``[133, 2]`` pixels on the reference canvas), ``uint8 [H, W, 3]``."""
        w, h = self.canvas
        out = np.zeros((h, w, 3), np.uint8)  # beyond the photo (a cut body's continuation) nothing is shown
        out[self._photo_box()] = self.background
        for layer, moved in self._posed_layers(target_points, target_scores):  # back to front
            self._draw(out, layer, moved)
        return np.ascontiguousarray(out[self._photo_box()])

    def coverage(self, target_points: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
        """``float32 [H, W]`` in 0..1: how much of each pixel the puppet in the target pose covers."""
        w, h = self.canvas
        alpha = np.zeros((h, w), np.float32)
        for layer, moved in self._posed_layers(target_points, target_scores):
            drawn = self._sample(layer, moved, colour=False)
            if drawn is not None:
                box, _, a = drawn
                alpha[box] = a + alpha[box] * (1 - a)
        return alpha[self._photo_box()]

    def _photo_box(self) -> tuple[slice, slice]:
        """Where the photo lies on the rig's canvas (its top left)."""
        w, h = self.size
        return slice(0, h), slice(0, w)

    def posed_meshes(self, target_points: np.ndarray, target_scores: np.ndarray
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each layer's mesh, back to front, as ``(reference vertices [V, 2], triangles [F, 3],
        vertices in the target pose [V, 2])`` (pixels): where mesh skinning sends every point
        of the reference (DisPose's rig motion field reads the puppet's motion from this)."""
        for layer, moved in self._posed_layers(target_points, target_scores):
            yield layer.vertices, layer.triangles, moved

    def texture_scale(self, target_points: np.ndarray, target_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How much the puppet in the target pose stretches its texture: for every mesh triangle of
        every layer, ``(centres [F, 2], ratios [F])``, its centre in the reference (pixels) and its
        area in the target pose over its area in the reference (1: the texture keeps its scale).
        Triangles under a pixel in area are left out."""
        def area(corners):
            d1, d2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
            return np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / 2

        centres, ratios = [], []
        for vertices, triangles, moved in self.posed_meshes(target_points, target_scores):
            source = area(vertices[triangles])
            sized = source >= 1
            centres.append(vertices[triangles[sized]].mean(1))
            ratios.append(area(moved[triangles[sized]]) / source[sized])
        return np.concatenate(centres), np.concatenate(ratios)

    def _posed_layers(self, target_points: np.ndarray, target_scores: np.ndarray) -> Iterator[tuple[Layer, np.ndarray]]:
        """Each layer, back to front, with its vertices in the target pose ``[V, 2]``."""
        transforms = part_transforms(self.points, self.present, np.asarray(target_points, np.float64),
                                     np.asarray(target_scores) > MIN_SCORE)
        for layer in self.layers:
            if layer.static:
                yield layer, layer.vertices
                continue
            blended = np.einsum("vp,pij->vij", layer.weights, transforms)  # linear blend skinning
            yield layer, np.einsum("vij,vj->vi", blended[:, :2, :2], layer.vertices) + blended[:, :2, 2]

    def _draw(self, out: np.ndarray, layer: Layer, moved: np.ndarray) -> None:
        """Composite ``layer`` with its vertices at ``moved [V, 2]`` over ``out`` (in place)."""
        import cv2

        drawn = self._sample(layer, moved)
        if drawn is None:
            return
        box, rgb, alpha = drawn
        out[box] = cv2.blendLinear(rgb, out[box], alpha, 1 - alpha)

    def _sample(self, layer: Layer, moved: np.ndarray, *, colour: bool = True
                ) -> tuple[tuple[slice, slice], np.ndarray | None, np.ndarray] | None:
        """The layer in its bounding box: ``(box, rgb uint8 [h, w, 3], alpha float32 [h, w])``, None
        when off the frame; ``colour=False`` leaves the rgb out (None), for coverage alone.

        Triangles are rasterised into a triangle-index buffer; each pixel is mapped back into
        the atlas through its triangle's affine map (pixels no triangle covers map off the
        atlas, where it is transparent)."""
        import cv2

        w, h = self.canvas
        x0, y0 = np.maximum(np.floor(moved.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(moved.max(0)).astype(int) + 1, (w, h))
        if x1 <= x0 or y1 <= y0:
            return None
        corners = moved[layer.triangles]  # [F, 3, 2]
        count = len(corners)
        index = np.full((y1 - y0, x1 - x0), count, np.int32)  # which triangle covers each pixel of the box
        fixed = np.round((corners - [x0, y0]) * 16).astype(np.int32)  # 4 bits of subpixel precision
        for k, triangle in enumerate(fixed):
            cv2.fillConvexPoly(index, triangle, k, cv2.LINE_8, 4)
        source = layer.vertices[layer.triangles] + [layer.texture * w, 0]
        matrices = np.zeros((6, count + 1), np.float32)  # one row per coefficient: gathers stay contiguous
        matrices[:, :count] = triangle_maps(corners, source).T
        matrices[:, count] = (0, 0, -10, 0, 0, -10)  # uncovered: a point off the atlas
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        a, b, c, d, e, f = (np.take(row, index) for row in matrices)
        map_x = a * xs + b * ys + c
        map_y = d * xs + e * ys + f
        rgb = None if not colour else cv2.remap(self.atlas, map_x, map_y, cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = cv2.remap(self.alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return (slice(y0, y1), slice(x0, x1)), rgb, alpha


def _by_segment(sides, *, limbs: str) -> dict:
    """``{segment name: sides[0] or sides[1]}`` for the left and right segments of the arms (upper arm,
    forearm, hand) or the legs (thigh, shin): which of a pair of per-side things each segment has."""
    names = ARM_SEGMENTS if limbs == "arms" else LEG_SEGMENTS
    return {f"{side}_{name}": sides[k] for k, side in enumerate(("left", "right")) for name in names}


def _limb_parts(segment: str) -> list[int]:
    """The indices of the parts of the limb a segment (a part's name) belongs to, for its skinning."""
    side, name = segment.split("_", 1)
    parts = ARM_SEGMENTS if name in ARM_SEGMENTS else LEG_SEGMENTS + ("foot",)
    return [PART_INDEX[f"{side}_{part}"] for part in parts]


def _hull_distance(xy: np.ndarray, points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[N]``: the distance in pixels from each of ``xy [N, 2]`` to the convex hull of ``points [K, 2]``,
    0 inside, read off a distance transform over an ``(H, W)`` canvas (points off it: their nearest pixel's)."""
    import cv2

    h, w = shape
    hull = np.ones((h, w), np.uint8)
    cv2.fillConvexPoly(hull, np.round(cv2.convexHull(points.astype(np.float32))).astype(np.int32), 0)
    distance = cv2.distanceTransform(hull, cv2.DIST_L2, 3)
    x = np.clip(np.round(xy[:, 0]).astype(int), 0, w - 1)
    y = np.clip(np.round(xy[:, 1]).astype(int), 0, h - 1)
    return distance[y, x].astype(np.float64)


def margin_below(mask: np.ndarray, scale: float, contact: float = 0.25, reach: float = 0.75) -> int:
    """Rows (px) to add below the photo: ``reach`` x the body scale when ``contact`` x the body scale
    of the person's pixels (``mask [H, W]`` bool) touch its bottom edge (a photo cut at the knees,
    the hips, the chest), how far a pose may lift or lean the cut body into view before its
    continuation runs out; else 0. The sides and the top are not continued: a body does not go on
    sideways as it goes on down (a mirror there drew a twin of the person's half beside them)."""
    return int(round(reach * scale)) if mask[-1].sum() >= contact * scale else 0


def _below(image: np.ndarray, rows: int, *, repeat: bool = True) -> np.ndarray:
    """``image`` (``[H, W, ...]``, bool or numbers) with ``rows`` more at the bottom: its last row
    repeated, or zeros (False)."""
    import cv2

    if rows == 0:
        return image
    source = image.astype(np.uint8) if image.dtype == bool else image
    border = cv2.BORDER_REPLICATE if repeat else cv2.BORDER_CONSTANT
    out = cv2.copyMakeBorder(source, 0, rows, 0, 0, border, value=0)
    return out > 0 if image.dtype == bool else out


def _merge(layers: list[Layer]) -> Layer:
    """One layer holding the meshes of ``layers`` (same texture), in their order."""
    offsets = np.cumsum([0] + [len(layer.vertices) for layer in layers[:-1]])
    return Layer(np.concatenate([layer.vertices for layer in layers]),
                 np.concatenate([layer.triangles + offset for layer, offset in zip(layers, offsets)]),
                 np.concatenate([layer.weights for layer in layers]), layers[0].texture)


def _feathered(mask: np.ndarray, feather: int) -> np.ndarray:
    """``float32 [H, W]`` alpha: 1 on ``mask``, falling linearly to 0 over ``feather`` pixels outside
    it. It lives in texture space, so it moves with the part and is the same in every frame:
    edges do not crawl."""
    import cv2

    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(1 - outside / (feather + 1), 0, 1).astype(np.float32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def triangle_maps(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``[F, 6]`` affine maps (row-major 2x3) taking each target triangle ``[F, 3, 2]`` onto
    its source triangle. Degenerate (flattened) triangles map to their first source vertex."""
    d1, d2 = target[:, 1] - target[:, 0], target[:, 2] - target[:, 0]
    s1, s2 = source[:, 1] - source[:, 0], source[:, 2] - source[:, 0]
    det = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    ok = np.abs(det) > 1e-6
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    # D^-1 for D = [d1 d2] (columns), then M = S D^-1 with S = [s1 s2]
    inv = np.stack([np.stack([d2[:, 1], -d2[:, 0]], -1), np.stack([-d1[:, 1], d1[:, 0]], -1)], 1) * inv_det[:, None, None]
    linear = np.stack([s1, s2], -1) @ inv  # [F, 2, 2]
    shift = source[:, 0] - np.einsum("fij,fj->fi", linear, target[:, 0])
    shift = np.where(ok[:, None], shift, source[:, 0])
    return np.concatenate([linear[:, 0], shift[:, :1], linear[:, 1], shift[:, 1:]], axis=1)


# --- the backend ----------------------------------------------------------------------


def rig_reference(reference: np.ndarray, keypoints: np.ndarray | None = None, scores: np.ndarray | None = None,
                  **rig_options) -> PuppetRig:
    """Detect the reference's pose (unless given) and segmentation, and build its :class:`PuppetRig`.

    Without ``keypoints``, the photo's main person (:func:`holdpose.detect.reference.find_reference_person`:
    one person, never a skeleton or mask mixed from two); with them, MediaPipe's segmentation of the photo."""
    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.detect.reference import find_reference_person

    reference = check_reference(reference)
    if keypoints is None:
        person = find_reference_person(reference, segmentation=True)
        return PuppetRig(reference, person.keypoints, person.scores, person.mask, depth=person.depth, **rig_options)
    with MediaPipeDetector(segmentation=True, min_visibility=REFERENCE_MIN_VISIBILITY) as detector:
        detector.detect_one(reference)
        mask, depth = detector.last_mask, detector.last_depth
    if mask is None:
        raise HoldposeError("segmentation found no person in the reference photo")
    return PuppetRig(reference, keypoints, scores, mask, depth=depth, **rig_options)


class WarpAnimator(Animator):
    """CPU puppet animation of the reference photo, no model weights (see the module docstring).

    ``seed``, ``num_inference_steps`` and ``guidance_scale`` do not apply and are ignored.
    """

    name = "warp"
    pose_style = "openpose_full"

    def __init__(self, rig: PuppetRig | None = None):
        self.rig = rig

    @classmethod
    def from_options(cls, character, model_options: dict, options: dict):
        """The puppet of the character's photo (rigged once, shared with alignment)."""
        return cls(character.rig), dict(options)

    def __call__(self, reference: np.ndarray, poses: PoseSequence, *, seed: int = 0,
                 callback: FrameCallback | None = None, person: int = 0, **ignored) -> Iterator[np.ndarray]:
        # 1. check inputs
        reference = check_reference(reference)
        poses = check_poses(poses, reference)
        # 2. rig the reference once
        if self.rig is None or not np.array_equal(self.rig.reference, reference):
            self.rig = rig_reference(reference)
        # 3. pose it frame by frame
        for t in range(poses.num_frames):
            frame = self.rig.deform(poses.keypoints[t, person], poses.scores[t, person])
            if callback is not None:
                callback(t, frame)
            yield frame
