"""OpenPose-style pose maps, drawn the way the public OpenPose ControlNets saw them in training.

Pixel-compatible with controlnet_aux 0.0.10 ``open_pose/util.py`` (``draw_bodypose``,
``draw_handpose``, ``draw_facepose`` on a black canvas):

- body: 17 limbs, each a filled ellipse along the segment (half-width 4 px) at 60 %
  of its colour, then 18 joints as filled circles of radius 4 at full colour;
- hands: 20 edges, edge e coloured by hue e/20 (full saturation and value), 2 px
  wide, then joints as blue circles of radius 4;
- face: white dots of radius 3.
As in the reference, hand and face points whose integer pixel x or y is 0 are
skipped, and pixel positions are truncated, not rounded.

The speed comes from doing the geometry for all limbs and people at once in numpy,
precomputing colours, and leaving only the OpenCV fill calls in the loop (the
reference recomputes colours with matplotlib for every hand edge of every frame).

Styles differ per consumer (see :data:`STYLES`): which parts are drawn, the channel
order (MusePose, MimicMotion and DisPose feed red and blue swapped), and
confidence-weighted colours (MimicMotion).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from holdpose.convert import wholebody_to_openpose
from holdpose.io.posefile import DEFAULT_SCORE_THRESHOLD
from holdpose.sequence import PoseSequence
from holdpose.skeleton import HAND_EDGES, OPENPOSE_LIMBS

BODY_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
LIMB_COLORS = tuple(tuple(int(c * 0.6) for c in color) for color in BODY_COLORS[:17])
HAND_EDGE_COLORS = tuple(
    tuple(255.0 * c for c in colorsys.hsv_to_rgb(e / len(HAND_EDGES), 1.0, 1.0)) for e in range(len(HAND_EDGES))
)
HAND_JOINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)
STICK_HALF_WIDTH = 4
LIMB_A = np.array([a for a, _ in OPENPOSE_LIMBS])
LIMB_B = np.array([b for _, b in OPENPOSE_LIMBS])
EDGE_A = np.array([a for a, _ in HAND_EDGES])
EDGE_B = np.array([b for _, b in HAND_EDGES])


@dataclass(frozen=True)
class PoseMapStyle:
    """How one consumer wants its pose maps.

    Attributes:
        body, hands, face: parts to draw.
        channel_order: "RGB" as in ControlNet's maps, or "BGR" (red and blue swapped).
        confidence_weighted: scale each limb's colour by the product of its endpoint
            scores and each joint's by its score (MimicMotion).
    """

    name: str
    body: bool = True
    hands: bool = False
    face: bool = False
    channel_order: str = "RGB"
    confidence_weighted: bool = False


STYLES = {
    style.name: style
    for style in (
        PoseMapStyle("openpose"),
        PoseMapStyle("openpose_hand", hands=True),
        PoseMapStyle("openpose_face", face=True),
        PoseMapStyle("openpose_full", hands=True, face=True),
        PoseMapStyle("openpose_full_bgr", hands=True, face=True, channel_order="BGR"),  # MusePose, DisPose
        PoseMapStyle("mimicmotion", hands=True, face=True, channel_order="BGR", confidence_weighted=True),
    )
}


def get_style(style: str | PoseMapStyle) -> PoseMapStyle:
    if isinstance(style, PoseMapStyle):
        return style
    try:
        return STYLES[style]
    except KeyError as err:
        raise ValueError(f"unknown pose map style {style!r}; choose one of {', '.join(STYLES)}") from err


def _pixel(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel positions as the reference computes them: normalise, scale back, truncate (float64)."""
    w, h = size
    norm = points.astype(np.float64) / np.array([w, h])
    return norm * np.array([w, h], np.float64)


class PoseMapRenderer:
    """Draws pose maps of one style and size. Set up once, call per frame.

    ``renderer(keypoints [P, 133, 2], scores [P, 133])`` returns ``uint8 [H, W, 3]``.
    Points with score <= ``threshold`` are not drawn.
    """

    def __init__(self, size: tuple[int, int], style: str | PoseMapStyle = "openpose_full",
                 threshold: float = DEFAULT_SCORE_THRESHOLD):
        import cv2  # OpenCV's rasteriser is what the reference draws with

        self._cv2 = cv2
        self.size = (int(size[0]), int(size[1]))
        self.style = get_style(style)
        self.threshold = threshold

    def __call__(self, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        parts = wholebody_to_openpose(np.asarray(keypoints), np.asarray(scores))
        return self.draw_parts(parts)

    def draw_parts(self, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Draw OpenPose parts (``{"body": ([P,18,2], [P,18]), "left_hand": ..., ...}``)."""
        w, h = self.size
        canvas = np.zeros((h, w, 3), np.uint8)
        style = self.style
        # The reference draws person by person: body, left hand, right hand, face.
        for p in range(parts["body"][0].shape[0]):
            if style.body:
                self._draw_body(canvas, *(a[p] for a in parts["body"]))
            if style.hands:
                self._draw_hand(canvas, *(a[p] for a in parts["left_hand"]))
                self._draw_hand(canvas, *(a[p] for a in parts["right_hand"]))
            if style.face:
                self._draw_face(canvas, *(a[p] for a in parts["face"]))
        if style.channel_order == "BGR":
            canvas = np.ascontiguousarray(canvas[..., ::-1])
        return canvas

    def _draw_body(self, canvas, points, scores):
        cv2 = self._cv2
        present = scores > self.threshold
        if not present.any():
            return
        xy = _pixel(points, self.size)
        a, b = xy[LIMB_A], xy[LIMB_B]
        center = ((a + b) / 2).astype(np.int64)
        delta = a - b
        half_length = (np.sqrt(delta[:, 0] ** 2 + delta[:, 1] ** 2) / 2).astype(np.int64)
        angle = np.degrees(np.arctan2(delta[:, 1], delta[:, 0])).astype(np.int64)
        drawn = present[LIMB_A] & present[LIMB_B]
        weighted = self.style.confidence_weighted
        for i in np.flatnonzero(drawn):
            polygon = cv2.ellipse2Poly((int(center[i, 0]), int(center[i, 1])), (int(half_length[i]), STICK_HALF_WIDTH),
                                       int(angle[i]), 0, 360, 1)
            color = LIMB_COLORS[i]
            if weighted:
                alpha = float(scores[LIMB_A[i]] * scores[LIMB_B[i]])
                color = tuple(int(c * alpha) for c in color)
            cv2.fillConvexPoly(canvas, polygon, color)
        colors = np.array(BODY_COLORS, np.float64)[present]
        if weighted:
            colors = np.floor(colors * scores[present, None].astype(np.float64))
        _stamp(canvas, xy[present].astype(np.int64), DISK_4, colors.astype(np.uint8))

    def _draw_hand(self, canvas, points, scores):
        cv2 = self._cv2
        present = scores > self.threshold
        if not present.any():
            return
        xy = _pixel(points, self.size).astype(np.int64)
        # The reference skips points whose integer pixel x or y is 0 (its "eps" test).
        visible = present & (xy[:, 0] > 0) & (xy[:, 1] > 0)
        for e in np.flatnonzero(visible[EDGE_A] & visible[EDGE_B]):
            p, q = xy[EDGE_A[e]], xy[EDGE_B[e]]
            cv2.line(canvas, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), HAND_EDGE_COLORS[e], thickness=2)
        _stamp(canvas, xy[visible], DISK_4, np.array(HAND_JOINT_COLOR, np.uint8))

    def _draw_face(self, canvas, points, scores):
        xy = _pixel(points, self.size).astype(np.int64)
        visible = (scores > self.threshold) & (xy[:, 0] > 0) & (xy[:, 1] > 0)
        _stamp(canvas, xy[visible], DISK_3, np.array(FACE_COLOR, np.uint8))


def _disk_offsets(radius: int) -> np.ndarray:
    """``[N, 2]`` (dx, dy) offsets of the pixels ``cv2.circle(..., radius, thickness=-1)`` fills
    around an integer centre: the same for every centre, so a stamp reproduces it exactly."""
    import cv2

    size = 2 * radius + 3
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (radius + 1, radius + 1), radius, 1, thickness=-1)
    dy, dx = np.nonzero(mask)
    return np.stack([dx - radius - 1, dy - radius - 1], axis=1)


DISK_3 = _disk_offsets(3)
DISK_4 = _disk_offsets(4)


def _stamp(canvas: np.ndarray, centers: np.ndarray, disk: np.ndarray, colors: np.ndarray) -> None:
    """Fill disks at integer ``centers [N, 2]`` with ``colors`` ([3] or [N, 3]) in one scatter.

    Equivalent to N ``cv2.circle`` calls in order (about 4x faster): numpy assigns
    repeated indices in order, so where disks overlap the later one wins, as when
    drawn one by one.
    """
    if len(centers) == 0:
        return
    h, w = canvas.shape[:2]
    radius = disk[-1, 1]  # offsets are sorted by row: the last row is +radius
    flat = (centers[:, 1] * w + centers[:, 0])[:, None] + (disk[:, 1] * w + disk[:, 0])[None, :]  # [N, D]
    if colors.ndim == 2:
        colors = np.repeat(colors, disk.shape[0], axis=0)
    if centers.min() < radius or centers[:, 0].max() >= w - radius or centers[:, 1].max() >= h - radius:
        pixels = centers[:, None, :] + disk[None, :, :]  # clip disks at the border, as OpenCV does
        inside = ((pixels >= 0) & (pixels < (w, h))).all(-1).ravel()
        flat = flat.ravel()[inside]
        colors = colors[inside] if colors.ndim == 2 else colors
    pixels_rgb = canvas.reshape(-1, 3)
    if colors.ndim == 1:  # one colour: three scalar scatters beat one [N, 3] scatter
        flat = flat.ravel()
        for channel in range(3):
            pixels_rgb[flat, channel] = colors[channel]
    else:
        pixels_rgb[flat.ravel()] = colors


def render_pose_maps(seq: PoseSequence, style: str | PoseMapStyle = "openpose_full", *,
                     size: tuple[int, int] | None = None,
                     threshold: float = DEFAULT_SCORE_THRESHOLD) -> Iterator[np.ndarray]:
    """Yield one pose map per frame of ``seq`` (``uint8 [H, W, 3]``).

    ``size`` draws on another canvas, scaling the keypoints to it; by default the
    sequence's own canvas. Empty person slots are skipped.
    """
    size = tuple(size or seq.size)
    renderer = PoseMapRenderer(size, style, threshold)
    scale = np.array(size, np.float32) / np.array(seq.size, np.float32)
    parts = wholebody_to_openpose(seq.keypoints * scale, seq.scores)  # once, for all frames
    for t in range(seq.num_frames):
        people = seq.track_ids[t] >= 0
        yield renderer.draw_parts({name: (p[t, people], s[t, people]) for name, (p, s) in parts.items()})
