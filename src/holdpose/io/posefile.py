"""Pose files: OpenPose JSON (as ControlNet tools and ComfyUI exchange it) and NPZ.

NPZ is lossless: the arrays of :class:`PoseSequence` plus layout, size and fps.

The neck: COCO-WholeBody has none, so a sequence from a detector draws the shoulders'
midpoint. An OpenPose file's own neck (placed by CMU OpenPose, or moved in an editor)
is kept in ``PoseSequence.neck``, drawn and written back as the file gave it, and moved
with the shoulders when later stages move them.

OpenPose JSON loses, by design of the format:
- the feet (OpenPose 18 has none; BODY_25 files are read with their feet but
  written as 18 points);
- precision beyond 0.01 px (pixels) or 1e-6 (normalised);
- real confidences, in the default ``confidences="binary"`` mode: ControlNet tools
  (sd-webui-controlnet's reader and the editors built on it) treat any confidence
  below 1.0 as a missing point, so present points are written with 1.0 and
  missing ones as 0. ``confidences="real"`` keeps the scores, as CMU OpenPose does.

A sequence is a JSON list of frames (one file) or a folder of one file per frame.
Each frame: ``{"people": [{"person_id", "pose_keypoints_2d", "face_keypoints_2d",
"hand_left_keypoints_2d", "hand_right_keypoints_2d"}], "canvas_width", "canvas_height"}``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from holdpose.convert import openpose_to_wholebody, record_neck, wholebody_to_openpose
from holdpose.errors import HoldposeError
from holdpose.io.atomic import atomic_path
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY, get_layout

logger = logging.getLogger(__name__)

DEFAULT_SCORE_THRESHOLD = 0.3
NPZ_FORMAT = "holdpose-npz-1"
_PART_KEYS = {
    "body": "pose_keypoints_2d",
    "face": "face_keypoints_2d",
    "left_hand": "hand_left_keypoints_2d",
    "right_hand": "hand_right_keypoints_2d",
}


# --- dispatch -------------------------------------------------------------------

def load_poses(path: str | os.PathLike, *, size: tuple[int, int] | None = None,
               fps: float | None = None) -> PoseSequence:
    """Read a pose file: ``.npz``, an OpenPose ``.json`` sequence or frame, or a folder of frame JSONs."""
    path = Path(path)
    if not path.exists():
        raise HoldposeError(f"{path}: no such file or folder")
    if path.suffix.lower() == ".npz":
        seq = read_npz(path)
    elif path.is_dir() or path.suffix.lower() == ".json":
        seq, info = read_openpose_json(path, size=size, fps=fps)
        logger.info("%s: %d frames, %s coordinates", path, seq.num_frames, info["coordinates"])
    else:
        raise HoldposeError(f"{path}: unknown pose file type; use .json (OpenPose), a folder of .json, or .npz")
    if fps is not None:
        seq.fps = float(fps)
    return seq.validate()


def save_poses(seq: PoseSequence, path: str | os.PathLike, **json_options) -> Path:
    """Write ``seq`` by the path's form: ``.npz``, ``.json`` (one list), or a folder (one JSON per frame)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        write_npz(seq, path)
    elif path.suffix.lower() == ".json":
        write_openpose_json(seq, path, **json_options)
    elif path.suffix == "":
        write_openpose_json(seq, path, folder=True, **json_options)
    else:
        raise HoldposeError(f"{path}: unknown pose file type; use .json, .npz, or a folder name without suffix")
    return path


# --- NPZ ------------------------------------------------------------------------

def write_npz(seq: PoseSequence, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f, format=NPZ_FORMAT, keypoints=seq.keypoints, scores=seq.scores, track_ids=seq.track_ids,
                layout=seq.layout.name, size=np.array(seq.size), fps=np.array(seq.fps),
                interpolated=seq.interpolated, neck=seq.neck,
            )


def read_npz(path: str | os.PathLike) -> PoseSequence:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data.get("format", "")) != NPZ_FORMAT:
                raise HoldposeError(f"{path}: not a holdpose NPZ pose file (no format tag {NPZ_FORMAT!r})")
            return PoseSequence(
                keypoints=data["keypoints"], scores=data["scores"], track_ids=data["track_ids"],
                layout=get_layout(str(data["layout"])), size=tuple(data["size"]), fps=float(data["fps"]),
                interpolated=data["interpolated"] if "interpolated" in data else None,
                neck=data["neck"] if "neck" in data else None,
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise HoldposeError(f"{path}: cannot read NPZ pose file ({err})") from err


# --- OpenPose JSON: writing -----------------------------------------------------

def openpose_frames(seq: PoseSequence, *, normalized: bool = False, confidences: str = "binary",
                    threshold: float = DEFAULT_SCORE_THRESHOLD) -> list[dict]:
    """The OpenPose JSON frames of ``seq`` as Python objects (see the module docstring)."""
    if confidences not in ("binary", "real"):
        raise ValueError(f"confidences must be 'binary' or 'real', got {confidences!r}")
    if seq.layout is not COCO_WHOLEBODY:
        raise ValueError(f"OpenPose JSON is written from the coco_wholebody layout, got {seq.layout.name}")
    parts = wholebody_to_openpose(seq.keypoints, seq.scores, seq.neck)
    w, h = seq.size
    scale = np.array([1 / w, 1 / h] if normalized else [1, 1], np.float64)
    digits = 6 if normalized else 2
    flat = {}
    for part, (points, scores) in parts.items():
        if confidences == "binary":
            present = scores > threshold
            conf = present.astype(np.float64)
        else:
            present = scores > 0
            conf = np.round(scores.astype(np.float64), 4)
        xy = np.round(points.astype(np.float64) * scale, digits)
        triplets = np.concatenate([xy, conf[..., None]], axis=-1)
        triplets[~present] = 0
        flat[part] = triplets.reshape(triplets.shape[:-2] + (-1,))
    frames = []
    for t in range(seq.num_frames):
        people = []
        for p in range(seq.num_people):
            if seq.track_ids[t, p] < 0:
                continue
            person = {"person_id": [int(seq.track_ids[t, p])]}
            for part, key in _PART_KEYS.items():
                person[key] = flat[part][t, p].tolist()
            people.append(person)
        frames.append({"people": people, "canvas_width": w, "canvas_height": h, "fps": seq.fps})
    return frames


def write_openpose_json(seq: PoseSequence, path: str | os.PathLike, *, folder: bool = False, **options) -> None:
    """Write ``seq`` as OpenPose JSON: one file holding a list of frames, or with
    ``folder=True`` a folder of ``frame_000000.json`` files. Options as :func:`openpose_frames`."""
    frames = openpose_frames(seq, **options)
    if folder:
        with atomic_path(path, directory=True) as tmp:
            for t, frame in enumerate(frames):
                (tmp / f"frame_{t:06d}.json").write_text(json.dumps(frame, separators=(",", ":")))
    else:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(frames, separators=(",", ":")))


# --- OpenPose JSON: reading -----------------------------------------------------

def _natural_key(path: Path):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def _load_json_frames(path: Path) -> list[dict]:
    files = sorted(path.glob("*.json"), key=_natural_key) if path.is_dir() else [path]
    if not files:
        raise HoldposeError(f"{path}: folder holds no .json files")
    frames = []
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HoldposeError(f"{file}: not readable JSON ({err})") from err
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("people"), list):
                raise HoldposeError(f"{file}: not an OpenPose JSON frame (expected an object with a 'people' list)")
        frames.extend(items)
    if not frames:
        raise HoldposeError(f"{path}: holds no frames")
    return frames


def _triplets(person: dict, key: str, count: int | None, where: str) -> np.ndarray | None:
    values = person.get(key)
    if not values:
        return None
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    except (ValueError, TypeError) as err:
        raise HoldposeError(f"{where}: {key} must be a flat list of x, y, confidence numbers") from err
    if count is not None and len(arr) < count:
        raise HoldposeError(f"{where}: {key} has {len(arr)} points, expected {count}")
    if not np.isfinite(arr).all():
        raise HoldposeError(f"{where}: {key} contains NaN or infinite values")
    return arr


def read_openpose_json(path: str | os.PathLike, *, size: tuple[int, int] | None = None,
                       fps: float | None = None) -> tuple[PoseSequence, dict]:
    """Read OpenPose JSON into a COCO-WholeBody :class:`PoseSequence`.

    Coordinates may be pixels or normalised to [0, 1]; the returned info dict says
    which was found (``info["coordinates"]``). A point with confidence 0 is missing.
    Canvas size comes from ``canvas_width``/``canvas_height``, else from ``size``,
    else (pixel files only) from the extent of the points, with a warning.
    """
    path = Path(path)
    frames = _load_json_frames(path)
    per_frame = []
    all_xy = []
    for t, frame in enumerate(frames):
        people = []
        for p, person in enumerate(frame["people"]):
            where = f"{path} frame {t} person {p}"
            parts = {part: _triplets(person, key, None, where) for part, key in _PART_KEYS.items()}
            if parts["body"] is not None and len(parts["body"]) not in (18, 25):
                raise HoldposeError(f"{where}: pose_keypoints_2d has {len(parts['body'])} points; expected 18 or 25")
            pid = person.get("person_id", -1)
            pid = pid[0] if isinstance(pid, list) and pid else pid
            people.append((parts, int(pid) if isinstance(pid, (int, float)) and pid >= 0 else p))
            all_xy += [a[a[:, 2] > 0, :2] for a in parts.values() if a is not None]
        per_frame.append(people)

    xy = np.concatenate(all_xy) if all_xy else np.zeros((0, 2))
    normalised = len(xy) > 0 and bool((xy >= -0.01).all() and (xy <= 1.01).all())
    canvas = _canvas_size(frames[0], size, xy, normalised, path)
    scale = np.array(canvas, np.float64) if normalised else np.ones(2)
    frame_fps = fps or frames[0].get("fps") or 30.0

    seq = PoseSequence.empty(len(frames), max([len(p) for p in per_frame] + [1]),
                             size=canvas, fps=float(frame_fps))
    for t, people in enumerate(per_frame):
        for p, (parts, pid) in enumerate(people):
            args = []
            for part in ("body", "face", "left_hand", "right_hand"):
                arr = parts[part]
                if part == "body" and arr is None:
                    arr = np.zeros((18, 3))
                args += [None, None] if arr is None else [arr[:, :2] * scale, np.clip(arr[:, 2], 0, 1)]
            seq.keypoints[t, p], seq.scores[t, p] = openpose_to_wholebody(*args)
            seq.track_ids[t, p] = pid
            if parts["body"] is not None:
                seq.neck[t, p] = record_neck(args[0][1], args[1][1], seq.keypoints[t, p], seq.scores[t, p])
    return seq, {"coordinates": "normalised" if normalised else "pixels", "frames": len(frames)}


def _canvas_size(frame: dict, size, xy: np.ndarray, normalised: bool, path: Path) -> tuple[int, int]:
    w, h = frame.get("canvas_width"), frame.get("canvas_height")
    if w and h:
        return int(w), int(h)
    if size is not None:
        return int(size[0]), int(size[1])
    if normalised:
        raise HoldposeError(f"{path}: normalised coordinates and no canvas_width/canvas_height; pass the canvas size (--size WxH)")
    if len(xy) == 0:
        raise HoldposeError(f"{path}: no canvas size and no points to infer it from; pass --size WxH")
    w, h = (int(np.ceil(v)) + 1 for v in xy.max(axis=0))
    logger.warning("%s: no canvas size in file; using the extent of the points, %dx%d", path, w, h)
    return w, h
