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
holdpose adds ``"fps"`` and ``"coordinates": "pixels" | "normalized"``, which it reads
back; files without the marker (other tools') get the coordinates guessed from the
values, with a warning.

Every value read is checked (:mod:`holdpose.limits`): finite numbers, fps in (0, 1000],
canvas and array sizes within the caps, ids in int32 range. Whatever is wrong with a file
is a :class:`HoldposeError` naming the file and the place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from holdpose import limits
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
_PART_MIN_POINTS = {"face": 68, "left_hand": 21, "right_hand": 21}  # iBUG 68 (+ 2 pupils); 21 per hand
COORDINATES_KEY = "coordinates"
_COORDINATES = {"pixels": False, "normalized": True, "normalised": True}
_NPZ_ARRAYS = ("keypoints", "scores", "track_ids", "interpolated", "neck")
_OPTIONAL_NPZ_ARRAYS = ("interpolated", "neck")  # files written before they existed lack them


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
        seq.fps = limits.fps(fps, "fps")
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
            if _npz_scalar(data, "format", path) != NPZ_FORMAT:
                raise HoldposeError(f"{path}: not a holdpose NPZ pose file (no format tag {NPZ_FORMAT!r})")
            _check_npz_array_sizes(data, path)
            size = np.asarray(data["size"])
            if size.shape != (2,) or size.dtype.kind not in "iuf":
                raise HoldposeError(f"{path}: size must be [width, height], got {size.tolist()!r:.60}")
            arrays = {name: data[name] for name in _NPZ_ARRAYS if name in data}
            for name, array in arrays.items():
                if array.dtype.kind not in ("b" if name == "interpolated" else "iuf"):
                    raise HoldposeError(f"{path}: {name} has dtype {array.dtype}, expected numbers")
            ids = arrays["track_ids"]
            if ids.size and (ids.min() < -1 or ids.max() > limits.INT32_MAX):
                raise HoldposeError(f"{path}: track_ids must lie in [-1, {limits.INT32_MAX}]")
            return PoseSequence(
                keypoints=arrays["keypoints"], scores=arrays["scores"], track_ids=ids,
                layout=get_layout(_npz_scalar(data, "layout", path)),
                size=limits.frame_size(*size, what=f"{path}: canvas size"),
                fps=limits.fps(_npz_number(data, "fps", path), f"{path}: fps"),
                interpolated=arrays.get("interpolated"),
                neck=arrays.get("neck"),
            )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError, zlib.error, OverflowError,
            NotImplementedError) as err:  # NotImplementedError: zipfile meets an unknown compression or version
        raise HoldposeError(f"{path}: cannot read NPZ pose file ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _npz_scalar(data, name: str, path) -> str:
    """A 0-d string entry of an NPZ (``format``, ``layout``); '' when absent."""
    if name not in data:
        return ""
    value = data[name]
    if value.shape != () or value.dtype.kind not in "US":
        raise HoldposeError(f"{path}: {name} must be a string")
    return str(value)


def _npz_number(data, name: str, path) -> float:
    value = np.asarray(data[name])
    if value.shape != () or value.dtype.kind not in "iuf":
        raise HoldposeError(f"{path}: {name} must be a number")
    return float(value)


def _check_npz_array_sizes(data, path) -> None:
    """Read each array's header (not its data) and refuse shapes beyond the pose-slot cap, so a
    small file that claims a huge array never allocates it."""
    for name in _NPZ_ARRAYS:
        if name not in data:
            if name in _OPTIONAL_NPZ_ARRAYS:
                continue
            raise HoldposeError(f"{path}: NPZ pose file lacks the {name!r} array")
        with data.zip.open(f"{name}.npy") as member:
            try:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, _ = read_header(member)
            except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
                raise
            except Exception as err:  # noqa: BLE001 - NumPy parses the header text with tokenize/ast: any error
                raise HoldposeError(f"{path}: {name} has a damaged array header ({_first_line(err)})") from err
        if len(shape) < 2:
            raise HoldposeError(f"{path}: {name} has shape {list(shape)}, expected [frames, people, ...]")
        limits.pose_slots(shape[0], shape[1], f"{path}: {name}")
        if int(np.prod(shape[2:], dtype=object)) > 1024:
            raise HoldposeError(f"{path}: {name} has shape {list(shape)}; too many keypoints per person")


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
        frames.append({"people": people, "canvas_width": w, "canvas_height": h, "fps": seq.fps,
                       COORDINATES_KEY: "normalized" if normalized else "pixels"})
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
            raise HoldposeError(f"{file}: not readable JSON ({_first_line(err)})") from err
        except RecursionError as err:
            raise HoldposeError(f"{file}: not an OpenPose JSON file (nested too deeply)") from err
        except ValueError as err:  # e.g. an integer of more than 4300 digits
            raise HoldposeError(f"{file}: not usable JSON ({_first_line(err)})") from err
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("people"), list):
                raise HoldposeError(f"{file}: not an OpenPose JSON frame (expected an object with a 'people' list)")
            if not all(isinstance(person, dict) for person in item["people"]):
                raise HoldposeError(f"{file}: each entry of 'people' must be an object of keypoint lists")
        frames.extend(items)
    if not frames:
        raise HoldposeError(f"{path}: holds no frames")
    return frames


def _triplets(person: dict, key: str, count: int | None, where: str) -> np.ndarray | None:
    values = person.get(key)
    if values is None or values == []:
        return None
    numbers = isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numbers or len(values) % 3:
        raise HoldposeError(f"{where}: {key} must be a flat list of x, y, confidence numbers")
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    except OverflowError as err:  # an integer too large for a float
        raise HoldposeError(f"{where}: {key} holds a number too large for a coordinate") from err
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
            for part, minimum in _PART_MIN_POINTS.items():
                if parts[part] is not None and len(parts[part]) < minimum:
                    raise HoldposeError(f"{where}: {_PART_KEYS[part]} has {len(parts[part])} points; "
                                        f"expected {minimum} or more")
            people.append((parts, _person_id(person.get("person_id"), p, where)))
            all_xy += [a[a[:, 2] > 0, :2] for a in parts.values() if a is not None]
        per_frame.append(people)

    xy = np.concatenate(all_xy) if all_xy else np.zeros((0, 2))
    normalised = _coordinates_are_normalised(frames[0], xy, path)
    canvas = _canvas_size(frames[0], size, xy, normalised, path)
    scale = np.array(canvas, np.float64) if normalised else np.ones(2)
    if fps is not None:
        frame_fps = limits.fps(fps, "fps")
    elif frames[0].get("fps") is not None:
        frame_fps = limits.fps(frames[0]["fps"], f"{path}: fps")
    else:
        frame_fps = 30.0

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


def _person_id(value, slot: int, where: str) -> int:
    """A person's id: OpenPose's ``[id]`` or ``id``; -1 or none means "no id" (the slot is used)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1):
        return slot
    return limits.whole(value, f"{where}: person_id", 0, limits.INT32_MAX)


def _coordinates_are_normalised(frame: dict, xy: np.ndarray, path: Path) -> bool:
    """The file's ``coordinates`` marker, or (files without one) a guess from the values, with a warning."""
    marker = frame.get(COORDINATES_KEY)
    if marker is not None:
        if not isinstance(marker, str) or marker not in _COORDINATES:
            raise HoldposeError(f"{path}: {COORDINATES_KEY} must be 'pixels' or 'normalized', got {marker!r:.40}")
        return _COORDINATES[marker]
    normalised = len(xy) > 0 and bool((xy >= -0.01).all() and (xy <= 1.01).all())
    if len(xy):
        logger.warning("%s: no %r marker; read as %s, guessed from the values (%.3g..%.3g)", path, COORDINATES_KEY,
                       "normalised [0, 1]" if normalised else "pixels", xy.min(), xy.max())
    return normalised


def _canvas_size(frame: dict, size, xy: np.ndarray, normalised: bool, path: Path) -> tuple[int, int]:
    w, h = frame.get("canvas_width"), frame.get("canvas_height")
    if w is not None or h is not None:
        if w is None or h is None:
            raise HoldposeError(f"{path}: canvas_width and canvas_height come together; one is missing")
        return limits.frame_size(w, h, f"{path}: canvas")
    if size is not None:
        return limits.frame_size(*size, what="canvas size")
    if normalised:
        raise HoldposeError(f"{path}: normalised coordinates and no canvas_width/canvas_height; pass the canvas size (--size WxH)")
    if len(xy) == 0:
        raise HoldposeError(f"{path}: no canvas size and no points to infer it from; pass --size WxH")
    w, h = limits.frame_size(*(int(np.ceil(max(v, 0))) + 1 for v in xy.max(axis=0)), what=f"{path}: points' extent")
    logger.warning("%s: no canvas size in file; using the extent of the points, %dx%d", path, w, h)
    return w, h
