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
from typing import Iterator

import numpy as np

from holdpose.convert import wholebody_to_openpose
from holdpose.render.styles import STYLES, PoseMapStyle, get_style  # noqa: F401 (re-exported)
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


def _pixel(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Integer pixel positions as the reference computes them: normalise, scale back, truncate."""
    wh = np.array(size, np.float64)
    return (points.astype(np.float64) / wh * wh).astype(np.int64)


class PoseMapRenderer:
    """Draws pose maps of one style and size. Set up once, call per frame.

    ``renderer(keypoints [P, 133, 2], scores [P, 133])`` returns ``uint8 [H, W, 3]``.
    Points with score <= ``threshold`` are not drawn.

    Drawing is split in two: :meth:`plan` does all the geometry (positions, limb
    ellipses, colours, what is visible, the pixels of every joint disk) in numpy for
    any number of frames at once; :meth:`draw` then makes only the OpenCV fill calls
    and one scatter per group of disks for one frame.
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
            "joint_color": joint_color.astype(np.uint8),
        }
        plan.update(_disk_plan("joint", xy, present, self.size, DISK_4))
        for name in ("left_hand", "right_hand", "face"):
            points, scores = parts[name]
            pxy = _pixel(points, self.size)
            # The reference skips points whose integer pixel x or y is 0 (its "eps" test).
            visible = (scores > threshold) & (pxy[..., 0] > 0) & (pxy[..., 1] > 0)
            plan.update(_disk_plan(name, pxy, visible, self.size, DISK_3 if name == "face" else DISK_4))
            if name != "face":
                plan[f"{name}_edge_drawn"] = visible[..., EDGE_A] & visible[..., EDGE_B]
        return plan

    def draw(self, plan: dict[str, np.ndarray], frame: int | tuple = ()) -> np.ndarray:
        """Draw one frame of a :meth:`plan` (``frame`` indexes its leading axes; () when it has none)."""
        w, h = self.size
        canvas = np.zeros((h, w, 3), np.uint8)
        pixels = canvas.reshape(-1, 3)
        view = {key: value[frame] for key, value in plan.items()}
        style = self.style
        # One conversion to Python lists per frame: OpenCV takes points as sequences of ints.
        if style.body:
            limbs = [view[k].tolist() for k in ("limb_drawn", "limb_center", "limb_half_length", "limb_angle",
                                                "limb_color")]
        if style.hands:
            hands = {hand: (view[f"{hand}_edge_drawn"].tolist(), view[f"{hand}_xy"].tolist())
                     for hand in ("left_hand", "right_hand")}
        # The reference draws person by person: body, left hand, right hand, face.
        for p in range(view["joint_visible"].shape[0]):
            if style.body:
                self._draw_limbs(canvas, *(limb[p] for limb in limbs))
                self._stamp(pixels, view, p, "joint", DISK_4, view["joint_color"][p])
            if style.hands:
                for hand in ("left_hand", "right_hand"):
                    drawn, xy = hands[hand]
                    self._draw_hand_edges(canvas, drawn[p], xy[p])
                    self._stamp(pixels, view, p, hand, DISK_4, HAND_JOINT_COLOR)
            if style.face:
                self._stamp(pixels, view, p, "face", DISK_3, FACE_COLOR)
        if style.channel_order == "BGR":
            canvas = np.ascontiguousarray(canvas[..., ::-1])
        return canvas

    def _draw_limbs(self, canvas, drawn, centers, half_lengths, angles, colors):
        cv2 = self._cv2
        for limb, is_drawn in enumerate(drawn):
            if is_drawn:
                polygon = cv2.ellipse2Poly(centers[limb], (half_lengths[limb], STICK_HALF_WIDTH), angles[limb], 0, 360, 1)
                cv2.fillConvexPoly(canvas, polygon, colors[limb])

    def _stamp(self, pixels, view, p, part, disk, color):
        """Filled disks at the visible points of ``part`` (one colour, or one per point)."""
        visible = view[f"{part}_visible"][p]
        color = np.asarray(color, np.uint8)
        if view[f"{part}_border"][p][visible].any():  # rare: clip every disk at the canvas edge, as OpenCV does
            flat, keep = _clipped_disks(view[f"{part}_xy"][p][visible], self.size, disk)
            colors = color if color.ndim == 1 else np.repeat(color[visible], len(disk), axis=0)[keep.ravel()]
            _fill(pixels, flat[keep], colors)
            return
        colors = color if color.ndim == 1 else np.repeat(color[visible], len(disk), axis=0)
        _fill(pixels, view[f"{part}_flat"][p][visible].ravel(), colors)

    def _draw_hand_edges(self, canvas, drawn, xy):
        cv2 = self._cv2
        for e, is_drawn in enumerate(drawn):
            if is_drawn:
                cv2.line(canvas, xy[EDGE_A_LIST[e]], xy[EDGE_B_LIST[e]], HAND_EDGE_COLORS[e], thickness=2)


EDGE_A_LIST, EDGE_B_LIST = EDGE_A.tolist(), EDGE_B.tolist()


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


def _disk_plan(part: str, centers: np.ndarray, visible: np.ndarray, size: tuple[int, int], disk: np.ndarray) -> dict:
    """For disks at integer ``centers [..., K, 2]``: their pixels as flat indices into a ``size``
    canvas ``[..., K, D]`` (valid where the disk lies inside), which disks cross the canvas
    edge, and which points are drawn."""
    w, h = size
    radius = int(np.abs(disk).max())
    x, y = centers[..., 0], centers[..., 1]
    border = (x < radius) | (y < radius) | (x >= w - radius) | (y >= h - radius)
    flat = (y * w + x).astype(np.int64)[..., None] + (disk[:, 1] * w + disk[:, 0])
    return {f"{part}_xy": centers, f"{part}_visible": visible, f"{part}_border": border, f"{part}_flat": flat}


def _clipped_disks(centers: np.ndarray, size: tuple[int, int], disk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``[K, D]`` of disks at ``centers [K, 2]`` and which pixels lie inside the canvas."""
    w, h = size
    pixel = centers[:, None, :] + disk  # [K, D, 2]
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < w) & (pixel[..., 1] >= 0) & (pixel[..., 1] < h)
    return pixel[..., 1] * w + pixel[..., 0], inside


def _fill(pixels: np.ndarray, flat: np.ndarray, colors: np.ndarray) -> None:
    """``pixels[flat] = colors`` (``[3]`` or ``[N, 3]``). In numpy, later entries of ``flat`` win
    where indices repeat, so overlapping disks come out as ``cv2.circle`` calls in order
    would draw them. One colour: three scalar scatters beat one ``[N, 3]`` scatter."""
    if colors.ndim == 1:
        for channel in range(3):
            pixels[flat, channel] = colors[channel]
    else:
        pixels[flat] = colors


PLAN_CHUNK = 256  # frames planned at once: vectorised, yet memory stays flat with length


def render_pose_maps(seq: PoseSequence, style: str | PoseMapStyle = "openpose_full", *,
                     size: tuple[int, int] | None = None,
                     threshold: float = DEFAULT_SCORE_THRESHOLD) -> Iterator[np.ndarray]:
    """Yield one pose map per frame of ``seq`` (``uint8 [H, W, 3]``).

    ``size`` draws on another canvas, scaling the keypoints to it; by default the
    sequence's own canvas. Empty person slots are skipped. A style with its own threshold
    (``humansd``) ignores ``threshold``.
    """
    size = tuple(size or seq.size)
    style = get_style(style)
    if style.drawing == "humansd":  # HumanSD's own drawing, at its own score threshold
        from holdpose.render.humansd import render_humansd_maps

        yield from render_humansd_maps(seq, size, threshold=style.threshold)
        return
    renderer = PoseMapRenderer(size, style, threshold)
    scale = np.array(size, np.float32) / np.array(seq.size, np.float32)
    for start in range(0, seq.num_frames, PLAN_CHUNK):
        chunk = slice(start, start + PLAN_CHUNK)
        scores = np.where(seq.track_ids[chunk, :, None] >= 0, seq.scores[chunk], 0)  # empty slots draw nothing
        plan = renderer.plan(wholebody_to_openpose(seq.keypoints[chunk] * scale, scores, seq.neck[chunk]))
        for t in range(len(scores)):
            yield renderer.draw(plan, t)


def overlay_pose_map(frame: np.ndarray, pose_map: np.ndarray, *, alpha: float = 1.0, dim: float = 1.0) -> np.ndarray:
    """``pose_map`` drawn over ``frame`` (both ``uint8 [H, W, 3]``), for checking by eye: where
    the map has a colour, ``alpha`` of it over the frame; the rest of the frame times ``dim``."""
    drawn = pose_map.any(-1, keepdims=True)
    base = frame if dim == 1.0 else (frame * dim).astype(np.uint8)
    over = pose_map if alpha == 1.0 else (alpha * pose_map + (1 - alpha) * frame).astype(np.uint8)
    return np.where(drawn, over, base)
