"""Poses from keyframes, and edits of body parts over a time range.

Keyframes
---------
A motion is a JSON-able structure::

    {"size": [512, 512], "fps": 24, "duration": 3.0,          # duration optional
     "keyframes": [
        {"time": 0.0, "pose": {"nose": [225, 130], "left_wrist": [300, 400], ...}},
        {"time": 0.5, "pose": {...}, "easing": "linear"},      # easing optional
        {"time": 1.0, "pose": {"file": "clip.npz", "frame": 12, "person": 0}}]}

``time`` is in seconds and must increase. A pose is either

- a dict of named keypoints, ``{name: [x, y]}`` or ``{name: [x, y, score]}`` in pixels,
  names from ``COCO_WHOLEBODY.keypoint_names`` (``"left_wrist"``, ``"face_30"``,
  ``"right_hand_index_4"``...); points not named are missing (score 0), and a point
  missing in either keyframe of a segment is missing between them; or
- a reference into a pose file, ``{"file": path, "frame": i, "person": p}`` (any file
  :func:`holdpose.io.posefile.load_poses` reads; ``person`` defaults to 0, ``frame``
  is a 0-based frame index). A relative path is taken from the motion file's folder
  when read by :func:`load_keyframes`, else from the current directory. The file's
  canvas size must equal ``size`` (``size`` may be omitted and is then taken from it).

Between consecutive keyframes positions follow ``a + e(u) * (b - a)``, with ``u`` the
fraction of the segment's time and ``e`` an easing curve (:data:`EASINGS`): the
``easing`` argument, or a keyframe's own ``"easing"`` for the segment that starts at it.
Frames before the first keyframe hold it, frames after the last hold the last.
Frames at a keyframe's time are that keyframe exactly; other points are marked
``interpolated``.

Edits
-----
:func:`move`, :func:`rotate` and :func:`scale` change one part (:data:`PARTS`) over the
frames whose time lies in ``[start, end)`` seconds, optionally fading in and out over
``ramp`` seconds. Coordinates are image pixels, x right, y down; positive ``degrees``
turn counter-clockwise as seen on screen.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from importlib import resources
from pathlib import Path

import numpy as np

from holdpose import limits
from holdpose.errors import HoldposeError
from holdpose.refine.timeline import blend_frames
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY, Skeleton

logger = logging.getLogger(__name__)


class KeyframeError(HoldposeError, ValueError):
    """A malformed motion or edit argument (a ``ValueError`` the CLI reports in one line)."""


# --- easing ------------------------------------------------------------------------

EASINGS = {
    "linear": lambda u: u,
    "ease_in": lambda u: u * u,  # starts slowly
    "ease_out": lambda u: 1 - (1 - u) ** 2,  # ends slowly
    "ease_in_out": lambda u: u * u * (3 - 2 * u),  # smoothstep: stops at each keyframe
}
"""Easing curves ``e(u)`` on ``u`` in [0, 1] with ``e(0) = 0``, ``e(1) = 1``; all but
``ease_in``/``ease_out`` have ``e(0.5) = 0.5``."""


def _easing(name: str, where: str):
    try:
        return EASINGS[name]
    except KeyError:
        raise KeyframeError(f"{where}: unknown easing {name!r}; choose one of {', '.join(EASINGS)}") from None


# --- keyframes -------------------------------------------------------------------

def _keypoint_index(layout: Skeleton, name: str, where: str) -> int:
    try:
        return layout.index(name)
    except KeyError:
        close = difflib.get_close_matches(name, layout.keypoint_names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see Skeleton.keypoint_names"
        raise KeyframeError(f"{where}: unknown keypoint {name!r}{hint}") from None


def _pose_from_file(pose: dict, size, base_dir: Path, where: str):
    from holdpose.io.posefile import load_poses

    path = Path(pose["file"])
    if not path.is_absolute():
        path = base_dir / path
    frame, person = pose.get("frame", 0), pose.get("person", 0)
    seq = load_poses(path)
    if seq.layout.name != COCO_WHOLEBODY.name:
        raise KeyframeError(f"{where}: {path} has layout {seq.layout.name}, need {COCO_WHOLEBODY.name}")
    if not (isinstance(frame, int) and 0 <= frame < seq.num_frames):
        raise KeyframeError(f"{where}: frame {frame!r} is not a frame index of {path} (0..{seq.num_frames - 1})")
    if not (isinstance(person, int) and 0 <= person < seq.num_people):
        raise KeyframeError(f"{where}: person {person!r} is not a person slot of {path} (0..{seq.num_people - 1})")
    if size is not None and tuple(size) != seq.size:
        raise KeyframeError(f"{where}: {path} has canvas size {seq.size}, the motion has {tuple(size)}")
    return seq.keypoints[frame, person], seq.scores[frame, person], seq.size


def _parse_pose(pose, size, base_dir: Path, where: str):
    """``(keypoints [K, 2], scores [K], size or None)`` of one keyframe's pose."""
    if not isinstance(pose, dict):
        raise KeyframeError(f"{where}: a pose is a dict of named points or {{'file': ..., 'frame': ...}}, "
                            f"got {type(pose).__name__}")
    if "file" in pose:
        return _pose_from_file(pose, size, base_dir, where)
    k = COCO_WHOLEBODY.num_keypoints
    keypoints = np.zeros((k, 2), np.float32)
    scores = np.zeros(k, np.float32)
    for name, value in pose.items():
        i = _keypoint_index(COCO_WHOLEBODY, name, where)
        numbers = isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        value = np.asarray(value if numbers else [np.nan], np.float64)
        if value.shape not in ((2,), (3,)) or not np.isfinite(value).all():
            raise KeyframeError(f"{where}: point {name!r} must be [x, y] or [x, y, score], got {pose[name]!r}")
        keypoints[i] = value[:2]
        scores[i] = value[2] if len(value) == 3 else 1.0
    return keypoints, scores, None


def from_keyframes(keyframes: dict, fps: float | None = None, duration: float | None = None,
                   easing: str = "ease_in_out", *, base_dir: str | os.PathLike | None = None) -> PoseSequence:
    """Build a one-person COCO-WholeBody sequence from keyframe poses (format: module docstring).

    Args:
        keyframes: the motion dict (``size``, ``keyframes``, optional ``fps``, ``duration``).
        fps: frames per second; default the motion's ``fps``, else 24.
        duration: length in seconds; default the motion's ``duration``, else the last
            keyframe's time plus one frame (so the last keyframe is the last frame).
        easing: curve between keyframes (:data:`EASINGS`) unless a keyframe names its own.
        base_dir: folder for relative pose-file paths (default: current directory).

    Returns:
        :class:`PoseSequence` with ``round(duration * fps)`` frames, one person (track id 0).
    """
    # 1. Check the structure.
    if not isinstance(keyframes, dict) or not isinstance(keyframes.get("keyframes"), list) or not keyframes["keyframes"]:
        raise KeyframeError('a motion is {"size": [w, h], "fps": ..., "keyframes": [{"time": ..., "pose": ...}, ...]} '
                            "with at least one keyframe")
    fps = limits.fps(fps if fps is not None else keyframes.get("fps", 24), "fps")
    _easing(easing, "easing")
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    size = keyframes.get("size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2:
            raise KeyframeError(f"size must be [width, height] in pixels, got {size!r:.60}")
        size = limits.frame_size(*size, what="size")

    # 2. Parse every keyframe.
    times, poses, scores, curves = [], [], [], []
    for n, frame in enumerate(keyframes["keyframes"]):
        where = f"keyframe {n}"
        if not isinstance(frame, dict) or "time" not in frame or "pose" not in frame:
            raise KeyframeError(f'{where}: need {{"time": seconds, "pose": ...}}, got {frame!r:.80}')
        time = limits.finite(frame["time"], f"{where}: time (seconds)")
        if times and time <= times[-1]:
            raise KeyframeError(f"{where}: time {time} s does not come after the previous keyframe's {times[-1]} s")
        kp, sc, file_size = _parse_pose(frame["pose"], size, base_dir, where)
        size = size if size is not None else file_size
        times.append(time)
        poses.append(kp)
        scores.append(sc)
        curves.append(_easing(frame.get("easing", easing), where))
    if size is None:
        raise KeyframeError('the motion has no "size": [width, height] and no pose file to take it from')
    times = np.asarray(times)

    # 3. Frame times -> segment and eased weight.
    if duration is None:
        duration = keyframes.get("duration", times[-1] + 1 / fps)
    duration = limits.finite(duration, "duration (seconds)")
    num_frames = int(round(duration * fps))
    if num_frames < 1:
        raise KeyframeError(f"duration {duration!r} s at {fps:g} fps gives no frame")
    limits.pose_slots(num_frames, 1, f"duration {duration:g} s at {fps:g} fps")
    t = np.arange(num_frames) / fps
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, max(len(times) - 2, 0))
    nxt = np.minimum(seg + 1, len(times) - 1)
    span = np.where(nxt > seg, times[nxt] - times[seg], 1.0)
    u = np.clip((t - times[seg]) / span, 0.0, 1.0)
    u = np.where(u < 1e-6, 0.0, np.where(u > 1 - 1e-6, 1.0, u))
    w = np.empty_like(u)
    for s in np.unique(seg):  # one easing call per segment, vectorised over its frames
        w[seg == s] = curves[s](u[seg == s])
    w = np.where(nxt > seg, w, 0.0)

    # 4. Blend neighbouring keyframes (shared rules with resampling).
    key = PoseSequence(keypoints=np.stack(poses)[:, None], scores=np.stack(scores)[:, None],
                       track_ids=np.zeros((len(times), 1), np.int32), size=tuple(size), fps=fps)
    keypoints, scores, track_ids, interpolated = blend_frames(key, seg, key, nxt, w)
    return PoseSequence(keypoints=keypoints, scores=scores, track_ids=track_ids, size=tuple(size), fps=fps,
                        interpolated=interpolated)


def interpolate_keyframes(seq: PoseSequence, keys, easing: str = "ease_in_out", *,
                          person: int | None = None) -> PoseSequence:
    """Rebuild the frames between marked keyframes of ``seq`` from the keyframes alone.

    Args:
        seq: the sequence.
        keys: frame indices (at least two, in any order) that stay as they are; every
            frame strictly between two consecutive keys becomes the eased blend of them,
            with the rules of :func:`holdpose.refine.timeline.blend_frames` (a point
            missing in either key is missing between them; blended points are marked
            ``interpolated``). Frames outside the first and last key are not touched.
        easing: curve between keys (:data:`EASINGS`).
        person: the slot to rebuild, or ``None`` for every slot.

    Returns:
        A new sequence.
    """
    curve = _easing(easing, "easing")
    keys = np.unique(np.asarray(keys).ravel())
    if len(keys) < 2 or not np.issubdtype(keys.dtype, np.integer) or keys[0] < 0 or keys[-1] >= seq.num_frames:
        raise KeyframeError(f"interpolation needs two or more keyframe indices in 0..{seq.num_frames - 1}, "
                            f"got {keys.tolist()}")
    if person is not None and not (isinstance(person, (int, np.integer)) and 0 <= person < seq.num_people):
        raise KeyframeError(f"person must be None (everyone) or a slot 0..{seq.num_people - 1}, got {person!r}")
    frames = np.arange(keys[0], keys[-1] + 1)
    seg = np.clip(np.searchsorted(keys, frames, side="right") - 1, 0, len(keys) - 2)
    a, b = keys[seg], keys[seg + 1]
    weight = curve((frames - a) / (b - a))
    keypoints, scores, track_ids, interpolated = blend_frames(seq, a, seq, b, weight)
    slots = slice(None) if person is None else slice(person, person + 1)
    out = seq.copy()
    out.keypoints[frames, slots] = keypoints[:, slots]
    out.scores[frames, slots] = scores[:, slots]
    out.track_ids[frames, slots] = track_ids[:, slots]
    out.interpolated[frames, slots] = interpolated[:, slots]
    return out


def load_keyframes(path: str | os.PathLike) -> dict:
    """Read a motion JSON file (format: module docstring). Relative pose-file paths in it
    are made absolute from the file's folder, so ``from_keyframes(load_keyframes(p))`` works
    from anywhere."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyframeError(f"{path}: no such motion file") from None
    except json.JSONDecodeError as err:
        raise KeyframeError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("keyframes"), list):
        raise KeyframeError(f'{path}: a motion file holds {{"size": ..., "fps": ..., "keyframes": [...]}}')
    for frame in data["keyframes"]:
        pose = frame.get("pose") if isinstance(frame, dict) else None
        if isinstance(pose, dict) and isinstance(pose.get("file"), str) and not Path(pose["file"]).is_absolute():
            pose["file"] = str(path.parent.resolve() / pose["file"])
    return data


def builtin_motions() -> list[str]:
    """Names of the motions that ship with holdpose (``holdpose/data/*.json``)."""
    return sorted(p.name[:-5] for p in resources.files("holdpose").joinpath("data").iterdir()
                  if p.name.endswith(".json"))


def load_builtin_motion(name: str, fps: float | None = None, easing: str = "ease_in_out") -> PoseSequence:
    """A motion shipped with holdpose as a :class:`PoseSequence` (e.g. ``"wave"``: 3 s of
    waving for a head-and-shoulders character on a 512x512 canvas, laid out like
    scikit-image's astronaut photo)."""
    names = builtin_motions()
    if name not in names:
        raise KeyframeError(f"no built-in motion {name!r}; choose one of {', '.join(names)}")
    data = json.loads(resources.files("holdpose").joinpath("data", f"{name}.json").read_text())
    return from_keyframes(data, fps=fps, easing=easing)


# --- parts and edits -------------------------------------------------------------------

def _side_parts(side: str) -> dict:
    feet = [f"{side}_big_toe", f"{side}_small_toe", f"{side}_heel"]
    return {
        f"{side}_arm": {"points": [f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist", f"{side}_hand"],
                        "pivot": f"{side}_shoulder"},
        f"{side}_forearm": {"points": [f"{side}_elbow", f"{side}_wrist", f"{side}_hand"], "pivot": f"{side}_elbow"},
        f"{side}_hand": {"points": [f"{side}_wrist", f"{side}_hand"], "pivot": f"{side}_wrist"},
        f"{side}_leg": {"points": [f"{side}_hip", f"{side}_knee", f"{side}_ankle", *feet], "pivot": f"{side}_hip"},
        f"{side}_shin": {"points": [f"{side}_knee", f"{side}_ankle", *feet], "pivot": f"{side}_knee"},
        f"{side}_foot": {"points": [f"{side}_ankle", *feet], "pivot": f"{side}_ankle"},
    }


PARTS: dict[str, dict] = {
    "body": {"points": "all", "pivot": "centre"},
    "whole": {"points": "all", "pivot": "centre"},
    "head": {"points": ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "face"], "pivot": "neck"},
    **_side_parts("left"),
    **_side_parts("right"),
}
"""Editable parts: ``points`` lists COCO-WholeBody keypoint names or layout groups
(``face``, ``left_hand``...; ``"all"`` is every point); ``pivot`` is the joint a part turns
and scales about by default: a keypoint name, ``"neck"`` (midpoint of the shoulders) or
``"centre"`` (mean of the present shoulders and hips, else of all present points). Each
limb part holds its pivot joint, so ``move`` carries it along and ``rotate`` leaves it fixed."""


def part_indices(part: str, layout: Skeleton = COCO_WHOLEBODY) -> np.ndarray:
    """int ``[n]``: the keypoint indices of ``part`` (a key of :data:`PARTS`) in ``layout``."""
    if part not in PARTS:
        raise KeyframeError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
    points = PARTS[part]["points"]
    if points == "all":
        return np.arange(layout.num_keypoints)
    out = []
    for name in points:
        if name in layout.groups:
            out.extend(range(*layout.groups[name]))
        elif name in layout.keypoint_names:
            out.append(layout.index(name))
        else:
            raise KeyframeError(f"part {part!r} needs {name!r}, which layout {layout.name} lacks")
    return np.asarray(out)


def _pivots(seq: PoseSequence, pivot) -> tuple[np.ndarray, np.ndarray]:
    """``(xy [T, P, 2] float64, ok [T, P] bool)``: the pivot of every frame and person."""
    t, p = seq.num_frames, seq.num_people
    if not isinstance(pivot, str):
        xy = np.asarray(pivot, np.float64)
        if xy.shape != (2,):
            raise KeyframeError(f"pivot must be a part joint name, 'neck', 'centre' or (x, y) pixels, got {pivot!r}")
        return np.broadcast_to(xy, (t, p, 2)), np.ones((t, p), bool)
    layout, kp, present = seq.layout, seq.keypoints.astype(np.float64), seq.present
    if pivot in ("neck", "centre"):
        names = ["left_shoulder", "right_shoulder"] + (["left_hip", "right_hip"] if pivot == "centre" else [])
        idx = [_keypoint_index(layout, n, "pivot") for n in names]
        m = present[..., idx]
        ok = m.all(-1) if pivot == "neck" else m.any(-1)
        xy = (kp[..., idx, :] * m[..., None]).sum(-2) / np.maximum(m.sum(-1), 1)[..., None]
        if pivot == "centre":  # no torso point: mean of whatever is present
            m_all = present
            xy_all = (kp * m_all[..., None]).sum(-2) / np.maximum(m_all.sum(-1), 1)[..., None]
            xy = np.where(ok[..., None], xy, xy_all)
            ok = m_all.any(-1)
        return xy, ok
    i = _keypoint_index(layout, pivot, "pivot")
    return kp[..., i, :], present[..., i]


def _edit_weights(seq: PoseSequence, start, end, ramp: float) -> np.ndarray:
    """float64 ``[T]``: 1 inside ``[start, end)`` seconds, 0 outside, ramping linearly
    from 0 at ``start`` and down to 0 at ``end`` over ``ramp`` seconds."""
    t = np.arange(seq.num_frames) / seq.fps
    start = 0.0 if start is None else float(start)
    end = np.inf if end is None else float(end)
    if end <= start:
        raise KeyframeError(f"edit range needs start < end (seconds), got start={start}, end={end}")
    if not np.isfinite(ramp) or ramp < 0:
        raise KeyframeError(f"ramp must be >= 0 seconds, got {ramp!r}")
    inside = (t >= start - 1e-9) & (t < end - 1e-9)
    if ramp == 0:
        return inside.astype(np.float64)
    return np.where(inside, np.clip(np.minimum(t - start, end - t) / ramp, 0.0, 1.0), 0.0)


def _apply(seq: PoseSequence, part: str, start, end, ramp: float, person, pivot, transform) -> PoseSequence:
    """Shared body of the edits: ``transform(points [T, P, n, 2], pivot [T, P, 2], weight [T])``
    returns the new points; applied to present points of the chosen people where weight > 0."""
    # 1. Check inputs and resolve part, frames, people and pivot.
    idx = part_indices(part, seq.layout)
    weight = _edit_weights(seq, start, end, ramp)
    people = np.zeros(seq.num_people, bool)
    if person is None:
        people[:] = True
    elif isinstance(person, (int, np.integer)) and 0 <= person < seq.num_people:
        people[person] = True
    else:
        raise KeyframeError(f"person must be None (everyone) or a slot 0..{seq.num_people - 1}, got {person!r}")
    if pivot is None:
        pivot = PARTS[part]["pivot"]
    centre, ok = _pivots(seq, pivot)
    todo = (weight > 0)[:, None] & people[None, :] & seq.present[:, :, idx].any(-1)  # [T, P]
    missing = todo & ~ok
    if missing.any():
        logger.warning("%s: pivot %r is missing in %d frame(s); those frames are left unchanged",
                       part, pivot, int(missing.any(1).sum()))
    todo &= ok
    # 2. Transform every chosen point and keep the result where it applies.
    out = seq.copy()
    points = seq.keypoints[:, :, idx].astype(np.float64)
    moved = transform(points, centre, weight)
    apply = todo[..., None] & seq.present[:, :, idx]
    out.keypoints[:, :, idx] = np.where(apply[..., None], moved, points).astype(np.float32)
    return out


def move(seq: PoseSequence, part: str, dx: float, dy: float, start: float | None = None,
         end: float | None = None, *, ramp: float = 0.0, person: int | None = None) -> PoseSequence:
    """Shift ``part`` by ``(dx, dy)`` pixels (y down) in the frames whose time lies in
    ``[start, end)`` seconds (``None``: from the beginning / to the end). With ``ramp``
    seconds the shift fades in from 0 at ``start`` and out to 0 at ``end``. ``person``: a
    slot, or ``None`` for everyone. Returns a new sequence; missing points stay missing."""
    delta = np.array([limits.finite(dx, "move dx"), limits.finite(dy, "move dy")], np.float64)
    return _apply(seq, part, start, end, ramp, person, (0.0, 0.0),
                  lambda pts, c, w: pts + w[:, None, None, None] * delta)


def rotate(seq: PoseSequence, part: str, degrees: float, start: float | None = None, end: float | None = None,
           *, pivot=None, ramp: float = 0.0, person: int | None = None) -> PoseSequence:
    """Turn ``part`` by ``degrees`` counter-clockwise on screen about ``pivot``: by default
    the part's proximal joint (:data:`PARTS`, e.g. the elbow for ``"left_forearm"``, so the
    wrist and hand swing about it), or a joint name, ``"neck"``, ``"centre"``, or ``(x, y)``
    pixels. Frames, ramp and person as in :func:`move`; with a ramp the angle fades."""
    degrees = limits.finite(degrees, "rotate degrees")

    def turn(pts, c, w):
        a = np.deg2rad(degrees) * w[:, None, None]  # [T, 1, 1]
        cos, sin = np.cos(a), np.sin(a)
        d = pts - c[:, :, None, :]
        # y points down, so counter-clockwise on screen is x' = x cos + y sin, y' = -x sin + y cos.
        x = d[..., 0] * cos + d[..., 1] * sin
        y = -d[..., 0] * sin + d[..., 1] * cos
        return c[:, :, None, :] + np.stack([x, y], -1)

    return _apply(seq, part, start, end, ramp, person, pivot, turn)


def scale(seq: PoseSequence, part: str, factor: float, start: float | None = None, end: float | None = None,
          *, pivot=None, ramp: float = 0.0, person: int | None = None) -> PoseSequence:
    """Scale ``part`` by ``factor`` about ``pivot`` (default as in :func:`rotate`). With a
    ramp the factor fades geometrically (``factor ** weight``). Frames and person as in :func:`move`."""
    factor = limits.finite(factor, "scale factor")
    if factor <= 0:
        raise KeyframeError(f"scale factor must be > 0, got {factor!r}")

    def grow(pts, c, w):
        f = np.float64(factor) ** w[:, None, None, None]
        return c[:, :, None, :] + f * (pts - c[:, :, None, :])

    return _apply(seq, part, start, end, ramp, person, pivot, grow)
