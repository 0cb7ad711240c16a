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
    """Integer pixel positions as the reference computes them: normalise, scale back, truncate."""
    wh = np.array(size, np.float64)
    return (points.astype(np.float64) / wh * wh).astype(np.int64)


class PoseMapRenderer:
    """Draws pose maps of one style and size. Set up once, call per frame.

    ``renderer(keypoints [P, 133, 2], scores [P, 133])`` returns ``uint8 [H, W, 3]``.
    Points with score <= ``threshold`` are not drawn.

    Drawing is split in two: :meth:`plan` does all the geometry (positions, limb
    ellipses, colours, what is visible) in numpy for any number of frames at once;
    :meth:`draw` then makes only the OpenCV fill calls and disk stamps of one frame.
    """

    def __init__(self, size: tuple[int, int], style: str | PoseMapStyle = "openpose_full",
                 threshold: float = DEFAULT_SCORE_THRESHOLD):
        import cv2  # OpenCV's rasteriser is what the reference draws with

        self._cv2 = cv2
        self.size = (int(size[0]), int(size[1]))
        self.style = get_style(style)
        self.threshold = threshold
        w = self.size[0]
        self._disk3 = DISK_3[:, 1] * w + DISK_3[:, 0]  # flat offsets of the disk pixels
        self._disk4 = DISK_4[:, 1] * w + DISK_4[:, 0]

    def __call__(self, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        parts = wholebody_to_openpose(np.asarray(keypoints), np.asarray(scores))
        return self.draw(self.plan(parts))

    def draw_parts(self, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Draw OpenPose parts of one frame (``{"body": ([P,18,2], [P,18]), "left_hand": ..., ...}``)."""
        return self.draw(self.plan(parts))

    def plan(self, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        """Geometry of everything to draw, for parts with any leading axes ``[..., P, K, 2]``."""
        w, h = self.size
        threshold = self.threshold
        body, body_scores = parts["body"]
        present = body_scores > threshold
        xy = _pixel(body, self.size)
        exact = body.astype(np.float64) / np.array([w, h]) * np.array([w, h])
        a, b = exact[..., LIMB_A, :], exact[..., LIMB_B, :]
        delta = a - b
        limb_color = np.broadcast_to(np.array(LIMB_COLORS, np.float64), delta.shape[:-1] + (3,))
        joint_color = np.broadcast_to(np.array(BODY_COLORS, np.float64), body.shape[:-1] + (3,))
        if self.style.confidence_weighted:
            limb_color = np.floor(limb_color * (body_scores[..., LIMB_A] * body_scores[..., LIMB_B])[..., None])
            joint_color = np.floor(joint_color * body_scores[..., None])
        plan = {
            "limb_drawn": present[..., LIMB_A] & present[..., LIMB_B],
            "limb_center": ((a + b) / 2).astype(np.int64),
            "limb_half_length": (np.sqrt(delta[..., 0] ** 2 + delta[..., 1] ** 2) / 2).astype(np.int64),
            "limb_angle": np.degrees(np.arctan2(delta[..., 1], delta[..., 0])).astype(np.int64),
            "limb_color": limb_color.astype(np.int64),
            "joint_visible": present,
            "joint_flat": xy[..., 1] * w + xy[..., 0],
            "joint_xy": xy,
            "joint_color": joint_color.astype(np.uint8),
        }
        for name in ("left_hand", "right_hand", "face"):
            points, scores = parts[name]
            pxy = _pixel(points, self.size)
            # The reference skips points whose integer pixel x or y is 0 (its "eps" test).
            visible = (scores > threshold) & (pxy[..., 0] > 0) & (pxy[..., 1] > 0)
            plan[f"{name}_visible"] = visible
            plan[f"{name}_xy"] = pxy
            plan[f"{name}_flat"] = pxy[..., 1] * w + pxy[..., 0]
            if name != "face":
                plan[f"{name}_edge_drawn"] = visible[..., EDGE_A] & visible[..., EDGE_B]
        return plan

    def draw(self, plan: dict[str, np.ndarray], frame: int | tuple = ()) -> np.ndarray:
        """Draw one frame of a :meth:`plan` (``frame`` indexes its leading axes; () when it has none)."""
        w, h = self.size
        canvas = np.zeros((h, w, 3), np.uint8)
        view = {key: value[frame] for key, value in plan.items()}
        style = self.style
        # The reference draws person by person: body, left hand, right hand, face.
        for p in range(view["joint_visible"].shape[0]):
            if style.body:
                self._draw_body(canvas, view, p)
            if style.hands:
                self._draw_hand(canvas, view, p, "left_hand")
                self._draw_hand(canvas, view, p, "right_hand")
            if style.face:
                self._stamp_points(canvas, view, p, "face", self._disk3, DISK_3, FACE_COLOR)
        if style.channel_order == "BGR":
            canvas = np.ascontiguousarray(canvas[..., ::-1])
        return canvas

    def _draw_body(self, canvas, view, p):
        cv2 = self._cv2
        drawn = np.flatnonzero(view["limb_drawn"][p])
        for center, half_length, angle, color in zip(view["limb_center"][p][drawn].tolist(),
                                                     view["limb_half_length"][p][drawn].tolist(),
                                                     view["limb_angle"][p][drawn].tolist(),
                                                     view["limb_color"][p][drawn].tolist()):
            polygon = cv2.ellipse2Poly(center, (half_length, STICK_HALF_WIDTH), angle, 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, color)
        visible = view["joint_visible"][p]
        if visible.any():
            _stamp(canvas, view["joint_xy"][p][visible], view["joint_flat"][p][visible], self._disk4, DISK_4,
                   view["joint_color"][p][visible])

    def _draw_hand(self, canvas, view, p, hand):
        cv2 = self._cv2
        xy = view[f"{hand}_xy"][p]
        for e in np.flatnonzero(view[f"{hand}_edge_drawn"][p]).tolist():
            start, end = xy[EDGE_A[e]].tolist(), xy[EDGE_B[e]].tolist()
            cv2.line(canvas, start, end, HAND_EDGE_COLORS[e], thickness=2)
        self._stamp_points(canvas, view, p, hand, self._disk4, DISK_4, HAND_JOINT_COLOR)

    @staticmethod
    def _stamp_points(canvas, view, p, part, disk_flat, disk, color):
        visible = view[f"{part}_visible"][p]
        if visible.any():
            _stamp(canvas, view[f"{part}_xy"][p][visible], view[f"{part}_flat"][p][visible], disk_flat, disk,
                   np.array(color, np.uint8))


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


def _stamp(canvas: np.ndarray, centers: np.ndarray, center_flat: np.ndarray, disk_flat: np.ndarray,
           disk: np.ndarray, colors: np.ndarray) -> None:
    """Fill disks at integer ``centers [N, 2]`` (flat indices ``center_flat [N]``) with ``colors``
    ([3] or [N, 3]) in one scatter. ``disk`` holds the disk's (dx, dy) offsets, ``disk_flat``
    the same as flat offsets for this canvas width.

    Equivalent to N ``cv2.circle`` calls in order (about 4x faster): numpy assigns
    repeated indices in order, so where disks overlap the later one wins, as when
    drawn one by one.
    """
    h, w = canvas.shape[:2]
    radius = disk[-1, 1]  # offsets are sorted by row: the last row is +radius
    flat = (center_flat[:, None] + disk_flat[None, :]).ravel()  # [N * D]
    if colors.ndim == 2:
        colors = np.repeat(colors, disk.shape[0], axis=0)
    if centers.min() < radius or centers[:, 0].max() >= w - radius or centers[:, 1].max() >= h - radius:
        pixels = centers[:, None, :] + disk[None, :, :]  # clip disks at the border, as OpenCV does
        inside = ((pixels >= 0) & (pixels < (w, h))).all(-1).ravel()
        flat = flat[inside]
        colors = colors[inside] if colors.ndim == 2 else colors
    pixels_rgb = canvas.reshape(-1, 3)
    if colors.ndim == 1:  # one colour: three scalar scatters beat one [N, 3] scatter
        for channel in range(3):
            pixels_rgb[flat, channel] = colors[channel]
    else:
        pixels_rgb[flat] = colors


PLAN_CHUNK = 256  # frames planned at once: vectorised, yet memory stays flat with length


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
    for start in range(0, seq.num_frames, PLAN_CHUNK):
        chunk = slice(start, start + PLAN_CHUNK)
        scores = np.where(seq.track_ids[chunk, :, None] >= 0, seq.scores[chunk], 0)  # empty slots draw nothing
        plan = renderer.plan(wholebody_to_openpose(seq.keypoints[chunk] * scale, scores))
        for t in range(len(scores)):
            yield renderer.draw(plan, t)
