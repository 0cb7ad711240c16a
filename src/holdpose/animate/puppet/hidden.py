"""Limb segments the reference hides, completed from what it shows.

A hand behind the back, a forearm behind a held helmet or under the other arm, a shin painted
over: the layer cut along such a segment would take whatever lies there (the torso, the helmet,
nothing at all), and that would swing with the limb. Each limb segment (upper arm, forearm,
hand, thigh, shin) is judged on the reference (:func:`hidden_segments`):

- *covered*: less than half of a strip along its bone's middle lies in its own layer: the
  segment is off the silhouette (painted over, the background shows) or another part in
  front took its pixels (the other arm, hair);
- *behind something the silhouette takes for the body*: MediaPipe sees its far joint badly
  (visibility below :data:`HIDDEN_VISIBILITY`) or the strip has the background's colour there (the
  segmentation's prior of a body drew the arm over the wall painted on it), and the strip's
  colour is none of the limb's own (neither the twin segment's on the other side nor the
  neighbouring segments' of the same limb).

A hidden segment leaves its limb's layer (its pixels stay with whatever is in front of it) and
gets a texture of its own (:func:`complete_segments`), drawn behind the body: in the reference
pose it stays hidden, moved clear of the body it shows. The texture is

- the *mirrored twin*: the other side's segment, reflected about its bone (the body's left and
  right are mirror images across the body's axis) and fitted to this bone's length and to the
  twin's width, every pixel in the bone's frame (along, across) taken from the twin's layer at
  (along, -across), brightened or darkened as this side's light is (a neighbouring segment seen
  on both sides tells how); or, when the twin is hidden too,
- the *limb extended*: the strip of the neighbouring visible segment next to the shared joint,
  its colours across the width repeated along the hidden bone (back and forth, no seams).

Joints the reference lacks are not guessed here: a segment needs both its joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holdpose.animate.puppet.layers import HAND_LENGTH, HAND_RADIUS, KINDRED, RADIUS_PRIOR, limb_radius

# A far joint MediaPipe sees with less visibility than this may be hidden behind something on the body.
HIDDEN_VISIBILITY = 0.5
# Lab distance within which a segment's colour is the background's there: what hides it is the backdrop.
BACKDROP = 15.0
# Fraction of a segment's middle strip that must lie in its own layer for it to count as seen.
MIN_SEEN = 0.5
# A completed segment takes its twin's (or neighbour's) pixels within this many radii of the bone:
# a sleeve or trouser leg is wider than the limb's measured width along its middle.
REACH = 1.5
EXTEND_STRIP = 0.3  # length of the neighbour's strip repeated along a hidden bone, in its bone's lengths
SPAN_BINS = 10  # steps along a bone in which a seen segment's unseen stretch is measured
LIGHTING_RANGE = (0.6, 1.6)  # how much brighter or darker a mirrored twin may be made


@dataclass(frozen=True)
class Segment:
    """One limb segment: ``part`` (a :data:`holdpose.animate.warp.PARTS` name), its bone's joints
    (a hand's bone runs from the wrist along the hand: ``joints[1]`` is None), the ``twin`` on the
    other side and the ``neighbours`` in the same limb, nearest joint first."""

    part: str
    joints: tuple[int, int | None]
    twin: str
    neighbours: tuple[str, ...]
    prior: str


def _limb(side: str, other: str, shoulder: int, hip: int) -> list[Segment]:
    elbow, wrist, knee, ankle = shoulder + 2, shoulder + 4, hip + 2, hip + 4
    return [Segment(f"{side}_upper_arm", (shoulder, elbow), f"{other}_upper_arm", (f"{side}_forearm",), "upper_arm"),
            Segment(f"{side}_forearm", (elbow, wrist), f"{other}_forearm", (f"{side}_upper_arm", f"{side}_hand"),
                    "forearm"),
            Segment(f"{side}_hand", (wrist, None), f"{other}_hand", (f"{side}_forearm",), "forearm"),
            Segment(f"{side}_thigh", (hip, knee), f"{other}_thigh", (f"{side}_shin",), "thigh"),
            Segment(f"{side}_shin", (knee, ankle), f"{other}_shin", (f"{side}_thigh",), "shin")]


SEGMENTS = {s.part: s for s in _limb("left", "right", 5, 11) + _limb("right", "left", 6, 12)}
HAND_POINTS = {"left": slice(91, 112), "right": slice(112, 133)}


@dataclass
class Bone:
    """A segment's bone in the reference: ``start``, ``end`` (pixels) and ``radius`` (pixels)."""

    start: np.ndarray
    end: np.ndarray
    radius: float

    def frame(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Per pixel of an ``(H, W)`` canvas, ``float32 [H, W]`` each: the position along the bone
        (0 at ``start``, 1 at ``end``) and the signed distance across it in radii."""
        h, w = shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        axis = (self.end - self.start).astype(np.float32)
        length2 = max(float(axis @ axis), 1e-6)
        dx, dy = xs - self.start[0], ys - self.start[1]
        along = (dx * axis[0] + dy * axis[1]) / length2
        across = (dx * -axis[1] + dy * axis[0]) / np.sqrt(length2) / self.radius
        return along, across

    def place(self, along: np.ndarray, across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pixel coordinates ``(x, y)`` of bone-frame positions (the inverse of :meth:`frame`)."""
        axis = (self.end - self.start).astype(np.float32)
        normal = np.array([-axis[1], axis[0]], np.float32) / max(float(np.linalg.norm(axis)), 1e-6)
        x = self.start[0] + along * axis[0] + across * self.radius * normal[0]
        y = self.start[1] + along * axis[1] + across * self.radius * normal[1]
        return x.astype(np.float32), y.astype(np.float32)


def segment_bones(person: np.ndarray, points: np.ndarray, present: np.ndarray, scale: float) -> dict[str, Bone]:
    """Each segment's :class:`Bone` whose joints the reference has, radii measured on ``person``
    (``bool [H, W]``) as the limb layers measure them. A hand runs from the wrist towards its
    landmarks, as far as they reach (or :data:`HAND_LENGTH` of the forearm beyond the wrist)."""
    bones = {}
    for name, segment in SEGMENTS.items():
        a, b = segment.joints
        if b is not None:
            if present[[a, b]].all():
                radius = limb_radius(person, points[a], points[b], RADIUS_PRIOR[segment.prior] * scale)
                bones[name] = Bone(points[a], points[b], radius)
            continue
        elbow, wrist = a - 2, a
        if not present[[elbow, wrist]].all():
            continue
        forearm = limb_radius(person, points[elbow], points[wrist], RADIUS_PRIOR["forearm"] * scale)
        hand = HAND_POINTS[name.split("_")[0]]
        found = present[hand]
        if found.sum() >= 5:
            landmarks = points[hand][found] - points[wrist]
            direction = landmarks.mean(0) / max(np.linalg.norm(landmarks.mean(0)), 1e-6)
            tip = points[wrist] + max(float((landmarks @ direction).max()), 1.0) * direction
        else:
            tip = points[wrist] + HAND_LENGTH * (points[wrist] - points[elbow])
        bones[name] = Bone(points[wrist], tip, HAND_RADIUS * forearm)
    return bones


def _middle(bone: Bone, shape: tuple[int, int]) -> np.ndarray:
    """``bool [H, W]``: the strip along the middle of a bone (the limb for sure, if it is seen)."""
    along, across = bone.frame(shape)
    return (np.abs(across) <= 0.5) & (along >= 0.15) & (along <= 0.85)


def seen_along(bone: Bone, layer: np.ndarray, bins: int = SPAN_BINS) -> np.ndarray:
    """``[bins]``: for equal steps along the bone, the fraction of the strip along its middle
    (half a radius either side) that lies in ``layer`` (``bool [H, W]``); NaN off the canvas."""
    along, across = bone.frame(layer.shape)
    strip = (np.abs(across) <= 0.5) & (along >= 0) & (along < 1)
    index = (along[strip] * bins).astype(int)
    total = np.bincount(index, minlength=bins)[:bins]
    seen = np.bincount(index, weights=layer[strip], minlength=bins)[:bins]
    return np.where(total >= 3, seen / np.maximum(total, 1), np.nan)


def hidden_spans(hidden: set[str], bones: dict[str, Bone], layers: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Which stretch of each segment to complete, ``{name: (start, end)}`` along its bone (0..1): the
    whole of a hidden segment, and of a seen segment that meets a hidden one the run of unseen
    steps (:func:`seen_along` below :data:`MIN_SEEN`) from the joint they share (an upper arm whose
    lower half is behind the helmet that hides its forearm)."""
    spans = {name: (0.0, 1.0) for name in hidden if name in bones}
    for name, bone in bones.items():
        if name in hidden or name not in layers:
            continue
        segment = SEGMENTS[name]
        seen = seen_along(bone, layers[name]) >= MIN_SEEN  # NaN (off the canvas) counts as unseen
        for other in segment.neighbours:
            if other not in hidden or other not in bones:
                continue
            if origin_ends_at(bone, bones[other]):  # they share this bone's end: walk back from it
                run = np.argmax(seen[::-1]) if seen.any() else len(seen)
                if run:
                    spans[name] = (1 - run / len(seen), 1.0)
            else:
                run = np.argmax(seen) if seen.any() else len(seen)
                if run:
                    spans[name] = (0.0, run / len(seen))
    return spans


def hidden_segments(lab: np.ndarray, backdrop: np.ndarray, bones: dict[str, Bone], layers: dict[str, np.ndarray],
                    person: np.ndarray, scores: np.ndarray) -> set[str]:
    """The names of the segments the reference hides (see the module's docstring).

    ``lab``: the photo in Lab, float32 ``[H, W, 3]``; ``backdrop``: the same for the background
    without the person (filled); ``bones``: :func:`segment_bones`; ``layers``: each segment's limb
    layer, ``bool [H, W]``, as cut (segments without one are not judged); ``person``: the
    silhouette; ``scores``: the reference's per-keypoint visibility ``[133]``."""
    shape = person.shape
    # a hand without landmarks is not judged on its own: where it lies is a guess (it goes with its forearm)
    judged = [name for name in bones if name in layers
              and not (name.endswith("hand") and (scores[HAND_POINTS[name.split("_")[0]]] > 0).sum() < 5)]
    middles = {name: _middle(bones[name], shape) for name in judged}
    middles = {name: strip for name, strip in middles.items() if strip.sum() >= 10}  # on the canvas
    covered = {name for name, strip in middles.items() if layers[name][strip].mean() < MIN_SEEN}
    colours = {name: np.median(lab[strip & person], axis=0) for name, strip in middles.items()
               if name not in covered and (strip & person).sum() >= 10}
    # behind something: MediaPipe sees its far end badly, or its colour is the background's (the
    # segmentation's prior of a body drew the limb over what hides it)
    behind = {name for name, colour in colours.items() if _far_visibility(SEGMENTS[name], scores) < HIDDEN_VISIBILITY
              or np.linalg.norm(colour - np.median(backdrop[middles[name]], axis=0)) < BACKDROP}
    hidden = set(covered)
    for name in behind:
        segment = SEGMENTS[name]
        own = [colours[other] for other in (segment.twin, *segment.neighbours) if other in colours and other not in behind]
        if own and min(np.linalg.norm(colours[name] - c) for c in own) > KINDRED:
            hidden.add(name)
    for side in ("left", "right"):  # a hand without landmarks at the end of a hidden forearm is hidden too
        if f"{side}_forearm" in hidden and f"{side}_hand" in bones and (scores[HAND_POINTS[side]] > 0).sum() < 5:
            hidden.add(f"{side}_hand")
    return hidden


def _far_visibility(segment: Segment, scores: np.ndarray) -> float:
    """How well MediaPipe sees a segment's far end: its far joint's visibility (a hand's: its wrist's)."""
    a, b = segment.joints
    return float(scores[b if b is not None else a])


def complete_segments(hidden: set[str], bones: dict[str, Bone], layers: dict[str, np.ndarray],
                      textures: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each hidden segment's completed layer, ``{name: (mask bool [H, W], texture float32 [H, W, 3])}``
    (the texture is valid on the mask), from its mirrored twin or, when the twin is hidden too,
    its visible neighbour extended along the bone; also the unseen stretch of a seen segment next
    to a hidden one (:func:`hidden_spans`), from its twin. ``layers`` and ``textures``: each
    segment's limb layer and the texture that layer is drawn with. Segments with no source are
    left out."""
    import cv2

    completed = {}
    for name, (start, end) in sorted(hidden_spans(hidden, bones, layers).items()):
        segment = SEGMENTS[name]
        source = _source(segment, hidden, bones, layers)
        if source is None or (name not in hidden and not source[1]):
            continue
        other, mirrored = source
        target, origin = bones[name], bones[other]
        shape = layers[other].shape
        if mirrored:
            target = Bone(target.start, target.end, origin.radius)
        else:
            target = Bone(target.start, target.end, origin.radius * _radius_ratio(segment, SEGMENTS[other]))
        along, across = target.frame(shape)
        region = segment_region(target, shape, start, end, frame=(along, across))
        if mirrored:
            source_along, source_across = along, -across
        else:
            source_along, source_across = _strip(along, target, origin, distal=origin_ends_at(origin, target)), across
        map_x, map_y = origin.place(source_along, source_across)
        taken = cv2.remap(layers[other].astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        texture = cv2.remap(textures[other].astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        if mirrored:
            texture = texture * _lighting(segment, hidden, bones, layers, textures)
        mask = region & taken
        if mask.sum() >= 20:
            completed[name] = (mask, texture)
    return completed


def _lighting(segment: Segment, hidden: set[str], bones: dict[str, Bone], layers: dict[str, np.ndarray],
              textures: dict[str, np.ndarray]) -> np.ndarray:
    """``[3]`` per-channel gain from the twin's light to this side's: the two sides of a body are lit
    differently (one arm in the light, the other in shade), which the first neighbour seen on both
    sides tells (the mean colour of its middle strip here over its twin's), kept within
    :data:`LIGHTING_RANGE`; 1 when no neighbour is seen on both sides."""
    for other in segment.neighbours:
        twin = SEGMENTS[other].twin
        if {other, twin} & hidden or not {other, twin} <= bones.keys() or not {other, twin} <= layers.keys():
            continue
        means = []
        for name in (other, twin):
            strip = _middle(bones[name], layers[name].shape) & layers[name]
            if strip.sum() < 10:
                break
            means.append(textures[name][strip].mean(0))
        else:
            return np.clip(means[0] / np.maximum(means[1], 1.0), *LIGHTING_RANGE).astype(np.float32)
    return np.ones(3, np.float32)


def segment_region(bone: Bone, shape: tuple[int, int], start: float = 0.0, end: float = 1.0, *,
                   frame: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``bool [H, W]``: the pixels a completed segment may cover, within :data:`REACH` radii of its
    bone from ``start`` to ``end`` along it (0..1). ``frame``: :meth:`Bone.frame`, when at hand."""
    along, across = bone.frame(shape) if frame is None else frame
    return (along >= start) & (along <= end) & (np.abs(across) <= REACH)


def _source(segment: Segment, hidden: set[str], bones: dict[str, Bone],
            layers: dict[str, np.ndarray]) -> tuple[str, bool] | None:
    """Where a hidden segment's texture comes from: ``(segment name, mirrored)``, the twin first."""
    if segment.twin in bones and segment.twin not in hidden and segment.twin in layers:
        return segment.twin, True
    for other in segment.neighbours:
        if other in bones and other not in hidden and other in layers:
            return other, False
    return None


def _radius_ratio(segment: Segment, other: Segment) -> float:
    """A hidden segment's width over its neighbour's, from the priors (a hand extends its forearm at its width)."""
    return RADIUS_PRIOR[segment.prior] / RADIUS_PRIOR[other.prior]


def origin_ends_at(origin: Bone, target: Bone) -> bool:
    """Whether the neighbour ``origin`` meets the hidden bone ``target`` at its own end (the
    neighbour is the nearer the body: an upper arm before its forearm)."""
    return np.linalg.norm(origin.end - target.start) <= np.linalg.norm(origin.start - target.end)


def _strip(along: np.ndarray, target: Bone, origin: Bone, *, distal: bool) -> np.ndarray:
    """Positions along the neighbour ``origin`` for positions ``along`` the hidden ``target``: the
    neighbour's strip of :data:`EXTEND_STRIP` of its length next to the shared joint (inside its
    last tenth, where the joint blurs), walked back and forth along the hidden bone."""
    target_length = float(np.linalg.norm(target.end - target.start))
    origin_length = max(float(np.linalg.norm(origin.end - origin.start)), 1e-6)
    phase = np.mod(along * target_length / (EXTEND_STRIP * origin_length), 2.0)
    wave = np.where(phase <= 1, phase, 2 - phase)  # 0..1..0: mirrored repeats, no seams
    if distal:
        return (0.9 - EXTEND_STRIP * wave).astype(np.float32)
    return (0.1 + EXTEND_STRIP * wave).astype(np.float32)
