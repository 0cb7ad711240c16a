"""BVH motion capture: parse, forward kinematics, projection to a 2-D PoseSequence.

BVH (Biovision Hierarchy) holds a joint tree (``HIERARCHY``: ``ROOT``/``JOINT`` with an
``OFFSET`` from the parent and ``CHANNELS``; ``End Site`` leaves with only an offset) and
one row of channel values per frame (``MOTION``: ``Frames:``, ``Frame Time:`` seconds).

Conventions used here (those of the format and of most exporters):

- Rotation channels are in degrees. A joint's local rotation is the product of its
  rotation channels in the order listed, ``R = R_c1 @ R_c2 @ R_c3`` (intrinsic
  rotations: "Zrotation Xrotation Yrotation" turns about Z, then the new X, then the
  new Y), acting on column vectors: ``p_parent = R @ p_local + t``.
- A joint's translation ``t`` is its ``OFFSET``; where the joint has position channels
  (usually only the root) those values replace the offset, as in three.js' loader.
- End Sites become joints named ``<parent>_End`` with no channels, so the tips of the
  head, hands and feet have positions too.
- Up: BVH files are usually Y-up, but not all are (the AnimatedDrawings ``fair1``
  skeleton is Z-up). :class:`Camera` finds the up axis from the motion (root to head)
  unless told. Image y points down: world up maps to image -y.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY, HAND_POINT_NAMES

logger = logging.getLogger(__name__)

CHANNEL_NAMES = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")


class BVHError(HoldposeError, ValueError):
    """A BVH file that cannot be read, with the line or token at fault."""


class BVHData(NamedTuple):
    """A parsed BVH file (unpacks as the 6-tuple ``read_bvh`` documents).

    Attributes:
        names: J joint names in file order (parents before children); End Sites are
            ``<parent>_End``.
        parents: int ``[J]``, index of each joint's parent, -1 for a root.
        offsets: float64 ``[J, 3]``, offset from the parent in file units.
        channels: J tuples of channel names (``"Xrotation"``...), empty for End Sites.
        motion: float64 ``[F, C]``, one row per frame, columns in joint then channel order.
        frame_time: seconds per frame.
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    motion: np.ndarray
    frame_time: float

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


# --- parsing ----------------------------------------------------------------------

def _parse_hierarchy(text: str, path) -> tuple[list, list, list, list]:
    tokens = text.replace("{", " { ").replace("}", " } ").split()
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []  # open joints; -2 marks an End Site block
    i = 0

    def expect(n: int, what: str) -> list[str]:
        if i + n > len(tokens):
            raise BVHError(f"{path}: HIERARCHY ends inside {what}")
        return tokens[i:i + n]

    if not tokens or tokens[0].upper() != "HIERARCHY":
        raise BVHError(f"{path}: not a BVH file (does not start with HIERARCHY)")
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        key = tok.upper()
        if key in ("ROOT", "JOINT"):
            if key == "JOINT" and not stack:
                raise BVHError(f"{path}: JOINT outside a ROOT")
            name = expect(2, key)[1]
            parent = stack[-1] if stack else -1
            if parent == -2:
                raise BVHError(f"{path}: joint {name!r} inside an End Site")
            names.append(name), parents.append(parent), offsets.append(None), channels.append(())
            i += 2
            if expect(1, name)[0] != "{":
                raise BVHError(f"{path}: expected '{{' after {key} {name}, got {tokens[i]!r}")
            stack.append(len(names) - 1)
            i += 1
        elif key == "END":
            if not stack or stack[-1] < 0:
                raise BVHError(f"{path}: End Site outside a joint")
            parent = stack[-1]
            name = f"{names[parent]}_End"
            while name in names:
                name += "_"
            names.append(name), parents.append(parent), offsets.append(None), channels.append(())
            i += 2  # "End Site"
            if expect(1, "End Site")[0] != "{":
                raise BVHError(f"{path}: expected '{{' after End Site of {names[parent]}")
            stack.append(len(names) - 1)
            i += 1
        elif key == "OFFSET":
            if not stack:
                raise BVHError(f"{path}: OFFSET outside a joint")
            try:
                offsets[stack[-1]] = [float(v) for v in expect(4, "OFFSET")[1:]]
            except ValueError as err:
                raise BVHError(f"{path}: bad OFFSET of {names[stack[-1]]}: {tokens[i:i + 4]}") from err
            i += 4
        elif key == "CHANNELS":
            if not stack:
                raise BVHError(f"{path}: CHANNELS outside a joint")
            try:
                n = int(expect(2, "CHANNELS")[1])
            except ValueError as err:
                raise BVHError(f"{path}: bad channel count {tokens[i + 1]!r} of {names[stack[-1]]}") from err
            chans = tuple(expect(2 + n, "CHANNELS")[2:])
            bad = [c for c in chans if c not in CHANNEL_NAMES]
            if bad:
                raise BVHError(f"{path}: unknown channel(s) {bad} of {names[stack[-1]]}; "
                               f"known: {', '.join(CHANNEL_NAMES)}")
            channels[stack[-1]] = chans
            i += 2 + n
        elif tok == "}":
            if not stack:
                raise BVHError(f"{path}: unbalanced '}}' in HIERARCHY")
            stack.pop()
            i += 1
        else:
            raise BVHError(f"{path}: unexpected {tok!r} in HIERARCHY")
    if stack:
        raise BVHError(f"{path}: HIERARCHY ends with {len(stack)} unclosed block(s)")
    if not names:
        raise BVHError(f"{path}: HIERARCHY has no ROOT")
    missing = [n for n, o in zip(names, offsets) if o is None]
    if missing:
        raise BVHError(f"{path}: joint(s) without OFFSET: {', '.join(missing[:5])}")
    return names, parents, offsets, channels


def read_bvh(path: str | os.PathLike) -> BVHData:
    """Parse a BVH file.

    Returns:
        :class:`BVHData` ``(names, parents [J], offsets [J, 3], channels, motion [F, C],
        frame_time)``; a NamedTuple, so it unpacks as a 6-tuple.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BVHError(f"{path}: no such BVH file") from None
    m = re.search(r"^\s*MOTION\s*$", text, re.MULTILINE | re.IGNORECASE)
    if m is None:
        raise BVHError(f"{path}: no MOTION section")
    names, parents, offsets, channels = _parse_hierarchy(text[:m.start()], path)
    header = re.match(r"\s*Frames:\s*(\d+)\s*Frame\s+Time:\s*([-+0-9.eE]+)", text[m.end():], re.IGNORECASE)
    if header is None:
        raise BVHError(f"{path}: MOTION must start with 'Frames: N' and 'Frame Time: seconds'")
    num_frames, frame_time = int(header.group(1)), float(header.group(2))
    if frame_time <= 0:
        raise BVHError(f"{path}: Frame Time must be positive, got {frame_time}")
    num_channels = sum(len(c) for c in channels)
    try:
        values = np.array(text[m.end() + header.end():].split(), np.float64)
    except ValueError as err:
        raise BVHError(f"{path}: non-numeric value in MOTION ({err})") from err
    if num_channels == 0:
        motion = np.zeros((num_frames, 0))
    elif values.size == num_frames * num_channels:
        motion = values.reshape(num_frames, num_channels)
    elif values.size % num_channels == 0:
        logger.warning("%s: header says %d frames, data holds %d; using the data",
                       path, num_frames, values.size // num_channels)
        motion = values.reshape(-1, num_channels)
    else:
        raise BVHError(f"{path}: MOTION holds {values.size} values, not a multiple of the {num_channels} channels")
    return BVHData(names, np.asarray(parents, int), np.asarray(offsets, np.float64), channels, motion, frame_time)


# --- forward kinematics ------------------------------------------------------------------

def _axis_rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    """``[F, 3, 3]`` right-handed rotations by ``degrees [F]`` about axis 0/1/2 (x/y/z)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    r = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r[:, axis, axis] = 1
    r[:, i, i] = c
    r[:, j, j] = c
    r[:, i, j] = -s
    r[:, j, i] = s
    return r


def forward_kinematics(bvh: BVHData) -> np.ndarray:
    """float64 ``[F, J, 3]``: world position of every joint (End Sites included) in every
    frame, in file units and axes (rotations as described in the module docstring)."""
    names, parents, offsets, channels, motion, _ = bvh
    f, j = motion.shape[0], len(names)
    positions = np.zeros((f, j, 3))
    rotations = np.zeros((f, j, 3, 3))
    column = 0
    for k in range(j):
        local_t = np.broadcast_to(offsets[k], (f, 3)).copy()
        local_r = np.broadcast_to(np.eye(3), (f, 3, 3))
        for name in channels[k]:
            axis = "XYZ".index(name[0])
            if name.endswith("position"):
                local_t[:, axis] = motion[:, column]
            else:
                local_r = local_r @ _axis_rotation(axis, motion[:, column])
            column += 1
        p = parents[k]
        if p < 0:
            positions[:, k] = local_t
            rotations[:, k] = local_r
        else:
            positions[:, k] = positions[:, p] + np.einsum("fab,fb->fa", rotations[:, p], local_t)
            rotations[:, k] = rotations[:, p] @ local_r
    return positions


# --- joint names -> COCO-WholeBody -------------------------------------------------------

def _normalise(name: str) -> str:
    """Lower case, namespace (``mixamorig:``) and separators removed: ``Left_Fore-Arm`` -> ``leftforearm``."""
    return re.sub(r"[^a-z0-9]", "", name.split(":")[-1].lower())


def _sided(side: str, bases: list[str]) -> list[str]:
    """Normalised candidates for one side: ``left<base>``, ``l<base>``, ``<base>left``, ``<base>l``."""
    words = ("left", "l") if side == "left" else ("right", "r")
    return [w + b for b in bases for w in words] + [b + w for b in bases for w in words]


def _default_table() -> dict[str, list]:
    table: dict[str, list] = {
        # BVH skeletons have no face; the nose is put 40 % of the way from the head joint
        # (base of the skull) to the head's tip, a rough stand-in so the head is drawn.
        "nose": ["nose", ("head", "headend", 0.4), ("head", "headtopend", 0.4), ("head", "headtop", 0.4)],
    }
    for side in ("left", "right"):
        table[f"{side}_eye"] = _sided(side, ["eye"])
        table[f"{side}_ear"] = _sided(side, ["ear"])
        # The glenohumeral joint: "LeftArm" (CMU, Mixamo, fair1); "LeftShoulder" is the
        # clavicle there, so it only counts when no upper-arm joint exists.
        table[f"{side}_shoulder"] = _sided(side, ["arm", "upperarm", "shldr", "humerus", "shoulder"])
        table[f"{side}_elbow"] = _sided(side, ["forearm", "lowerarm", "elbow", "radius"])
        table[f"{side}_wrist"] = _sided(side, ["hand", "wrist"])
        table[f"{side}_hip"] = _sided(side, ["upleg", "upperleg", "thigh", "femur", "hip"])
        table[f"{side}_knee"] = _sided(side, ["leg", "lowerleg", "shin", "knee", "calf", "tibia"])
        table[f"{side}_ankle"] = _sided(side, ["foot", "ankle"])
        table[f"{side}_big_toe"] = _sided(side, ["toeend", "toebaseend", "toebase", "toe", "toes", "ball"])
        table[f"{side}_heel"] = _sided(side, ["heel"])
        # Fingers (Mixamo style LeftHandIndex1..4, 1 = knuckle, 4 = tip) map to the hand
        # points of the same name; used only when all five fingers are complete.
        table[f"{side}_hand_wrist"] = _sided(side, ["hand", "wrist"])
        for point in HAND_POINT_NAMES[1:]:
            finger, n = point.split("_")
            table[f"{side}_hand_{point}"] = _sided(side, [f"hand{finger}{n}"])
    return table


JOINT_TABLE: dict[str, list] = _default_table()
"""COCO-WholeBody point -> candidate BVH joints, best first, in normalised form (lower
case, no separators or namespace). A candidate is a joint name or ``(a, b, t)``, the
point ``a + t * (b - a)`` between two joints."""


def match_joints(names: list[str], mapping: dict[str, str | None] | None = None) -> dict[str, tuple]:
    """Map BVH joint ``names`` to COCO-WholeBody points.

    Args:
        names: joint names as in :class:`BVHData`.
        mapping: overrides, COCO name -> BVH joint name (``None`` leaves the point missing).

    Returns:
        COCO name -> ``(joint_a, joint_b, t)`` indices (``joint_a == joint_b``, ``t = 0``
        for a plain joint). Points without a match are absent.
    """
    index = {}
    for k, name in enumerate(names):
        index.setdefault(_normalise(name), k)
    out: dict[str, tuple] = {}
    for point, candidates in JOINT_TABLE.items():
        for cand in candidates:
            if isinstance(cand, tuple):
                a, b, t = cand
                if a in index and b in index:
                    out[point] = (index[a], index[b], t)
                    break
            elif cand in index:
                out[point] = (index[cand], index[cand], 0.0)
                break
    for side in ("left", "right"):  # fingers only as complete hands
        fingers = [f"{side}_hand_{p}" for p in HAND_POINT_NAMES[1:]]
        if not all(f in out for f in fingers):
            for f in fingers + [f"{side}_hand_wrist"]:
                out.pop(f, None)
    for point, joint in (mapping or {}).items():
        if point not in COCO_WHOLEBODY.keypoint_names:
            raise BVHError(f"mapping: {point!r} is not a COCO-WholeBody keypoint name")
        if joint is None:
            out.pop(point, None)
        elif joint in names:
            k = names.index(joint)
            out[point] = (k, k, 0.0)
        else:
            raise BVHError(f"mapping: BVH has no joint {joint!r} (for {point}); joints: {', '.join(names)}")
    return out


# --- camera and projection -------------------------------------------------------------

@dataclass
class Camera:
    """How a 3-D motion is seen.

    Attributes:
        azimuth: degrees about the up axis, counter-clockwise seen from above; 0 looks
            at the figure's front (its left side on the image's right, as in a photo).
        elevation: degrees above the figure's horizontal plane (positive looks down).
        focal_length: None for an orthographic view; else a perspective view whose
            focal length, in pixels, sets the field of view on the canvas (the camera
            stands as far away as that field of view needs to take the figure in).
        margin: fraction of the canvas left free on each side when fitting the figure.
        up: world up axis, ``"+y"``, ``"+z"``, ``"-y"``... or ``"auto"`` (the axis that
            points from the root to the head, on average over the motion).
        facing: the figure's forward direction, a 3-vector in file axes, or ``"auto"``
            (perpendicular to the up axis and the left-to-right shoulder line, hips if
            no shoulders).
    """

    azimuth: float = 0.0
    elevation: float = 0.0
    focal_length: float | None = None
    margin: float = 0.1
    up: str = "auto"
    facing: str | tuple[float, float, float] = "auto"


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _point_positions(positions: np.ndarray, matches: dict[str, tuple]) -> tuple[list[str], np.ndarray]:
    """Names and ``[F, M, 3]`` positions of the matched COCO points."""
    names = list(matches)
    a = np.array([matches[n][0] for n in names], int)
    b = np.array([matches[n][1] for n in names], int)
    t = np.array([matches[n][2] for n in names])[None, :, None]
    return names, positions[:, a] + t * (positions[:, b] - positions[:, a])


def _up_axis(camera: Camera, positions: np.ndarray, bvh: BVHData) -> np.ndarray:
    if camera.up != "auto":
        m = re.fullmatch(r"([+-]?)([xyz])", camera.up.lower())
        if m is None:
            raise BVHError(f"camera.up must be 'auto' or an axis like '+y' or '-z', got {camera.up!r}")
        v = np.zeros(3)
        v["xyz".index(m.group(2))] = -1.0 if m.group(1) == "-" else 1.0
        return v
    heads = [k for k, n in enumerate(bvh.names) if "head" in n.lower() or "neck" in n.lower()]
    if not heads:
        logger.info("no head or neck joint; assuming BVH's usual +Y up")
        return np.array([0.0, 1.0, 0.0])
    root = int(np.flatnonzero(bvh.parents < 0)[0])
    rise = (positions[:, heads].mean(1) - positions[:, root]).mean(0)
    axis = int(np.argmax(np.abs(rise)))
    v = np.zeros(3)
    v[axis] = np.sign(rise[axis]) or 1.0
    return v


def _facing(camera: Camera, up: np.ndarray, points: dict[str, np.ndarray]) -> np.ndarray:
    if not isinstance(camera.facing, str):
        f = np.asarray(camera.facing, np.float64)
        f = f - (f @ up) * up
        if f.shape != (3,) or np.linalg.norm(f) < 1e-9:
            raise BVHError(f"camera.facing must be a 3-vector not along the up axis, got {camera.facing!r}")
        return _unit(f)
    for left, right in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        if left in points and right in points:
            across = points[right] - points[left]  # [F, 3], towards the figure's right
            across = across - (across @ up)[:, None] * up
            r = across.mean(0)
            if np.linalg.norm(r) < 1e-6 * max(np.linalg.norm(across, axis=1).mean(), 1e-12):
                r = across[0]  # turns around during the motion: use the first frame
            if np.linalg.norm(r) > 0:
                return _unit(np.cross(up, _unit(r)))  # forward = up x right
    # No left/right pair: the usual BVH forward (+Z for Y-up, -Y for Z-up files).
    logger.info("no shoulders or hips to find the figure's front; using the file's usual forward axis")
    f = np.array([0.0, 0.0, 1.0]) if abs(up[2]) < 0.5 else np.array([0.0, -1.0, 0.0])
    return f


def project(points: np.ndarray, camera: Camera, up: np.ndarray, forward: np.ndarray,
            size: tuple[int, int]) -> np.ndarray:
    """Project world points ``[..., 3]`` to pixels ``[..., 2]`` on a ``size = (width, height)``
    canvas: view as set by ``camera`` around the figure with ``up`` and ``forward`` unit
    vectors, then a uniform scale and shift that fits all points inside the canvas less
    its margin (one fit for the whole motion, so the figure's own movement is kept)."""
    # 1. Camera basis: c points from the figure to the camera; image x right, image up.
    az, el = np.deg2rad(camera.azimuth), np.deg2rad(camera.elevation)
    side = np.cross(up, forward)  # the figure's left
    c = np.cos(el) * (np.cos(az) * forward + np.sin(az) * side) + np.sin(el) * up
    x_axis = np.cross(up, c)
    if np.linalg.norm(x_axis) < 1e-9:  # straight down or up: the limit of u x c is the figure's left
        x_axis = side
    x_axis = _unit(x_axis)
    y_axis = np.cross(c, x_axis)
    flat = points.reshape(-1, 3)
    centre = (flat.min(0) + flat.max(0)) / 2
    rel = flat - centre
    # 2. Orthographic or perspective projection (image y down = minus world up).
    u, v = rel @ x_axis, -(rel @ y_axis)
    if camera.focal_length is not None:
        if camera.focal_length <= 0:
            raise BVHError(f"camera.focal_length must be > 0 pixels, got {camera.focal_length}")
        radius = np.linalg.norm(rel, axis=1).max()
        usable = min(size) * (1 - 2 * camera.margin) / 2
        distance = camera.focal_length * radius / usable + radius  # figure fits the field of view
        depth = distance - rel @ c
        u, v = camera.focal_length * u / depth, camera.focal_length * v / depth
    # 3. Fit to the canvas.
    w, h = size
    span_u, span_v = max(np.ptp(u), 1e-9), max(np.ptp(v), 1e-9)
    s = min(w * (1 - 2 * camera.margin) / span_u, h * (1 - 2 * camera.margin) / span_v)
    x = (u - (u.min() + u.max()) / 2) * s + w / 2
    y = (v - (v.min() + v.max()) / 2) * s + h / 2
    return np.stack([x, y], -1).reshape(points.shape[:-1] + (2,))


def bvh_to_sequence(path: str | os.PathLike, size: tuple[int, int] = (512, 512), camera: Camera | None = None,
                    mapping: dict[str, str | None] | None = None) -> PoseSequence:
    """Read a BVH file as a one-person COCO-WholeBody :class:`PoseSequence`.

    Args:
        path: the ``.bvh`` file.
        size: canvas ``(width, height)`` in pixels; the figure is fitted into it.
        camera: view (:class:`Camera`; default orthographic, from the front).
        mapping: COCO name -> BVH joint name overrides of :data:`JOINT_TABLE`.

    Returns:
        ``[F, 1, 133, 2]`` keypoints in pixels; matched points (:func:`match_joints`) have
        score 1, the others are missing. World up (BVH's +Y, or as found) points to image
        -y, since image y runs down.
    """
    # 1. Check inputs.
    camera = camera if camera is not None else Camera()
    if len(size) != 2 or min(size) <= 0:
        raise BVHError(f"size must be (width, height) in pixels, got {size!r}")
    if not 0 <= camera.margin < 0.5:
        raise BVHError(f"camera.margin must be in [0, 0.5), got {camera.margin}")
    # 2. Parse and pose the skeleton.
    bvh = read_bvh(path)
    positions = forward_kinematics(bvh)
    matches = match_joints(bvh.names, mapping)
    if not matches:
        raise BVHError(f"{path}: no BVH joint matches a COCO-WholeBody point; pass mapping=... "
                       f"(joints: {', '.join(bvh.names[:12])}...)")
    names, points = _point_positions(positions, matches)
    logger.info("%s: %d frames at %.2f fps; %d points matched", path, bvh.num_frames, bvh.fps, len(names))
    # 3. Orient the view and project.
    up = _up_axis(camera, positions, bvh)
    forward = _facing(camera, up, {n: points[:, i] for i, n in enumerate(names)})
    xy = project(points, camera, up, forward, size)
    # 4. Pack into a sequence.
    seq = PoseSequence.empty(bvh.num_frames, 1, size=size, fps=bvh.fps)
    idx = [COCO_WHOLEBODY.index(n) for n in names]
    seq.keypoints[:, 0, idx] = xy
    seq.scores[:, 0, idx] = 1.0
    seq.track_ids[:] = 0
    return seq  # at the file's frame rate; holdpose.refine.timeline.resample changes it
