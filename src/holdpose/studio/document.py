"""The pose file a studio session edits: validated edits, undo/redo, atomic save and export.

Every edit arrives as a small JSON object from the page (see :data:`EDITS`), is checked
completely before anything changes, and is recorded as one undoable step (the frames it
touched, before and after). A malformed edit raises :class:`EditError` with one line
saying what is wrong; the sequence and the file stay as they were.

Files are written only to the paths fixed when the document is opened: the pose file
itself, the "save as" base path with a ``.json`` or ``.npz`` suffix, and the export path.
Nothing the page sends names a path.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.io.posefile import load_poses, read_openpose_json, save_poses
from holdpose.refine.keyframes import EASINGS, interpolate_keyframes
from holdpose.sequence import PoseSequence
from holdpose.skeleton import Skeleton

logger = logging.getLogger(__name__)

MAX_HISTORY = 500  # undo steps kept; the oldest are dropped first


class EditError(HoldposeError, ValueError):
    """An edit, save or export request the document refuses (the page shows the message)."""


# --- left/right swaps -------------------------------------------------------------

# A part's points are named with one of these words (checked in this order).
SWAP_WORDS = {
    "hand": ("_hand_",),
    "arm": ("shoulder", "elbow", "wrist"),
    "leg": ("hip", "knee", "ankle", "toe", "heel"),
    "head": ("nose", "eye", "ear", "face_"),
}
SWAP_PARTS = ("arm", "hand", "leg", "head", "body")


def swap_part_of(name: str) -> str:
    """The swappable part a keypoint belongs to (``"left_hand_index_2"`` -> ``"hand"``)."""
    for part, words in SWAP_WORDS.items():
        if any(word in name for word in words):
            return part
    return "body"


def swap_pairs(layout: Skeleton, part: str) -> np.ndarray:
    """int ``[n, 2]``: the flip pairs of ``layout`` that a swap of ``part`` exchanges.
    An arm carries its hand along; ``"body"`` is every pair."""
    if part not in SWAP_PARTS:
        raise EditError(f"swap part must be one of {', '.join(SWAP_PARTS)}, got {part!r}")
    owners = {"arm": ("arm", "hand"), "body": tuple(SWAP_WORDS)}.get(part, (part,))
    pairs = [(i, j) for i, j in layout.flip_pairs if swap_part_of(layout.keypoint_names[i]) in owners]
    return np.asarray(pairs, int).reshape(-1, 2)


def keypoint_side(name: str) -> str:
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "centre"


# --- checking what the page sends ------------------------------------------------------

def _field(edit: dict, key: str, kind, what: str):
    if key not in edit:
        raise EditError(f"{edit.get('op', 'request')}: missing field {key!r} ({what})")
    value = edit[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise EditError(f"{edit.get('op')}: {key} must be a whole number ({what}), got {value!r:.40}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise EditError(f"{edit.get('op')}: {key} must be a finite number ({what}), got {value!r:.40}")
    if kind is str and not isinstance(value, str):
        raise EditError(f"{edit.get('op')}: {key} must be a string ({what}), got {value!r:.40}")
    return value


def _index(edit: dict, key: str, count: int, what: str) -> int:
    value = _field(edit, key, int, what)
    if not 0 <= value < count:
        raise EditError(f"{edit['op']}: {key} {value} is outside 0..{count - 1} ({what})")
    return value


# op -> (required fields, optional fields)
EDITS = {
    "move": ({"frame", "person", "keypoint", "x", "y"}, set()),
    "delete": ({"frame", "person", "keypoint"}, set()),
    "restore": ({"frame", "person", "keypoint"}, set()),
    "swap": ({"frame", "person", "part"}, set()),
    "interpolate": ({"keys"}, {"person", "easing"}),
}


def check_fields(request: dict, allowed: dict) -> str:
    """The ``op`` of ``request`` after checking it names a known operation and carries
    only that operation's fields (``allowed``: op -> (required, optional))."""
    if not isinstance(request, dict):
        raise EditError(f"a request is a JSON object, got {type(request).__name__}")
    op = request.get("op")
    if op not in allowed:
        raise EditError(f"unknown operation {op!r}; known: {', '.join(allowed)}")
    required, optional = allowed[op]
    unknown = set(request) - required - optional - {"op"}
    if unknown:
        raise EditError(f"{op}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    return op


# --- the document ----------------------------------------------------------------------

@dataclass
class Step:
    """One undoable edit: frames ``[start, stop)`` before and after, as
    ``(keypoints, scores, track_ids, interpolated)`` copies."""

    label: str
    start: int
    stop: int
    before: tuple
    after: tuple


def _frames_state(seq: PoseSequence, start: int, stop: int) -> tuple:
    return tuple(a[start:stop].copy() for a in (seq.keypoints, seq.scores, seq.track_ids, seq.interpolated))


def _set_frames_state(seq: PoseSequence, start: int, state: tuple) -> None:
    stop = start + len(state[0])
    for target, value in zip((seq.keypoints, seq.scores, seq.track_ids, seq.interpolated), state):
        target[start:stop] = value


def read_pose_file(path: Path) -> tuple[PoseSequence, dict]:
    """``(sequence, json options that write it back as it was)``. An OpenPose JSON file keeps
    its coordinates (pixels or normalised) and its confidences (real, or 0/1 as ControlNet
    tools want); NPZ needs no options."""
    if path.suffix.lower() == ".npz" or not path.exists():
        return load_poses(path), {}  # the loader's own one-line messages
    if path.is_dir() or path.suffix.lower() == ".json":
        seq, info = read_openpose_json(path)
        seq.validate()
        binary = bool(np.isin(seq.scores, (0.0, 1.0)).all())
        return seq, {"normalized": info["coordinates"] == "normalised", "confidences": "binary" if binary else "real"}
    return load_poses(path), {}  # raises the loader's one-line message


class PoseDocument:
    """A pose file opened for editing.

    Args:
        path: the pose file (``.json``, ``.npz`` or a folder of OpenPose frames).
        save_as: base path of "save as" (its suffix becomes ``.json`` or ``.npz``);
            default ``<stem>.edited`` beside ``path``.
        export: pose-map video written by :meth:`export`; default ``<stem>.maps.mp4``.
    """

    def __init__(self, path, *, save_as=None, export=None):
        self.path = Path(path)
        self.seq, self.json_options = read_pose_file(self.path)
        self.original = self.seq.copy()
        stem = self.path.with_suffix("") if self.path.suffix else self.path
        base = Path(save_as) if save_as else stem.with_name(stem.name + ".edited")
        if base.suffix.lower() in (".json", ".npz"):
            base = base.with_suffix("")
        self.save_paths = {fmt: base.with_name(f"{base.name}.{fmt}") for fmt in ("json", "npz")}
        self.export_path = Path(export) if export else stem.with_name(stem.name + ".maps.mp4")
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._saved_at: Step | None = None  # top of the undo stack when last saved

    # --- state ------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return (self._undo[-1] if self._undo else None) is not self._saved_at

    def status(self) -> dict:
        return {"dirty": self.dirty, "can_undo": bool(self._undo), "can_redo": bool(self._redo),
                "undo_label": self._undo[-1].label if self._undo else None,
                "redo_label": self._redo[-1].label if self._redo else None}

    # --- edits ------------------------------------------------------------------

    def apply(self, edit: dict) -> tuple[int, int]:
        """Check and apply one edit (:data:`EDITS`); returns the frame range ``(start, stop)`` it changed."""
        op = check_fields(edit, EDITS)
        if op == "interpolate":
            return self._interpolate(edit)
        seq = self.seq
        t = _index(edit, "frame", seq.num_frames, "frame index")
        p = _index(edit, "person", seq.num_people, "person slot")
        if seq.track_ids[t, p] < 0:
            raise EditError(f"{op}: person slot {p} is empty in frame {t}")
        if op == "swap":
            pairs = swap_pairs(seq.layout, _field(edit, "part", str, "arm, hand, leg, head or body"))
            return self._record(f"swap {edit['part']}", t, t + 1, lambda: self._swap(t, p, pairs))
        k = _index(edit, "keypoint", seq.num_keypoints, "keypoint index")
        name = seq.layout.keypoint_names[k]
        if op == "move":
            x = _field(edit, "x", float, "pixels")
            y = _field(edit, "y", float, "pixels")
            w, h = seq.size
            if not (-w <= x <= 2 * w and -h <= y <= 2 * h):
                raise EditError(f"move: ({x:.1f}, {y:.1f}) is far outside the {w}x{h} canvas")
            if seq.scores[t, p, k] <= 0:
                raise EditError(f"move: {name} is missing in frame {t}; restore it first")
            return self._record(f"move {name}", t, t + 1, lambda: self._set_point(t, p, k, (x, y), seq.scores[t, p, k]))
        if op == "delete":
            if seq.scores[t, p, k] <= 0:
                raise EditError(f"delete: {name} is already missing in frame {t}")
            return self._record(f"delete {name}", t, t + 1, lambda: self._set_point(t, p, k, (0, 0), 0))
        xy, score = self._restored_point(t, p, k)
        return self._record(f"restore {name}", t, t + 1, lambda: self._set_point(t, p, k, xy, score))

    def _set_point(self, t: int, p: int, k: int, xy, score) -> None:
        self.seq.keypoints[t, p, k] = xy
        self.seq.scores[t, p, k] = score
        self.seq.interpolated[t, p, k] = False  # placed by hand

    def _swap(self, t: int, p: int, pairs: np.ndarray) -> None:
        seq = self.seq
        for array in (seq.keypoints, seq.scores, seq.interpolated):
            array[t, p, pairs[:, 0]], array[t, p, pairs[:, 1]] = array[t, p, pairs[:, 1]].copy(), array[t, p, pairs[:, 0]].copy()

    def _restored_point(self, t: int, p: int, k: int) -> tuple[np.ndarray, float]:
        """Where a restored point goes: where the file had it, else where the nearest frame has it."""
        name = self.seq.layout.keypoint_names[k]
        if self.seq.scores[t, p, k] > 0:
            raise EditError(f"restore: {name} is present in frame {t}")
        if self.original.scores[t, p, k] > 0:
            return self.original.keypoints[t, p, k], float(self.original.scores[t, p, k])
        present = np.flatnonzero(self.seq.scores[:, p, k] > 0)
        if len(present) == 0:
            raise EditError(f"restore: {name} of person {p} is missing in every frame; nothing to restore it from")
        nearest = present[np.argmin(np.abs(present - t))]
        return self.seq.keypoints[nearest, p, k], float(self.seq.scores[nearest, p, k])

    def _interpolate(self, edit: dict) -> tuple[int, int]:
        keys = edit["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
            raise EditError(f"interpolate: keys must be a list of frame indices, got {keys!r:.60}")
        person = edit.get("person")
        if person is not None:
            person = _index(edit, "person", self.seq.num_people, "person slot")
        easing = edit.get("easing", "linear")
        if easing not in EASINGS:
            raise EditError(f"interpolate: easing must be one of {', '.join(EASINGS)}, got {easing!r:.40}")
        try:
            result = interpolate_keyframes(self.seq, keys, easing, person=person)
        except HoldposeError as err:
            raise EditError(str(err)) from err
        start, stop = min(keys), max(keys) + 1

        def replace_frames():
            _set_frames_state(self.seq, start, _frames_state(result, start, stop))

        return self._record(f"interpolate {start}..{stop - 1}", start, stop, replace_frames)

    def _record(self, label: str, start: int, stop: int, change) -> tuple[int, int]:
        before = _frames_state(self.seq, start, stop)
        change()
        self._undo.append(Step(label, start, stop, before, _frames_state(self.seq, start, stop)))
        del self._undo[:-MAX_HISTORY]
        self._redo.clear()
        return start, stop

    def undo(self) -> tuple[int, int]:
        """Take back the last edit; the frame range it touched."""
        return self._replay(self._undo, self._redo, "before", "nothing to undo")

    def redo(self) -> tuple[int, int]:
        """Apply again the last edit taken back; the frame range it touched."""
        return self._replay(self._redo, self._undo, "after", "nothing to redo")

    def _replay(self, source: list, target: list, state: str, empty: str) -> tuple[int, int]:
        if not source:
            raise EditError(empty)
        step = source.pop()
        _set_frames_state(self.seq, step.start, getattr(step, state))
        target.append(step)
        return step.start, step.stop

    # --- files ------------------------------------------------------------------

    def save(self, fmt: str | None = None) -> Path:
        """Write the sequence atomically: to the pose file itself (``fmt=None``), or
        "save as" ``"json"`` or ``"npz"`` beside it (:attr:`save_paths`)."""
        if fmt is not None and fmt not in self.save_paths:
            raise EditError(f"save as: format must be json or npz, got {fmt!r:.40}")
        path = self.path if fmt is None else self.save_paths[fmt]
        is_json = path.suffix.lower() != ".npz"
        options = (self.json_options or {"normalized": False, "confidences": "binary"}) if is_json else {}
        self.seq.validate()
        save_poses(self.seq, path, **options)
        if fmt is None:
            self._saved_at = self._undo[-1] if self._undo else None
        logger.info("%s: saved %d frames", path, self.seq.num_frames)
        return path

    def export(self, style: str = "openpose_full") -> Path:
        """Render the pose maps of the current sequence to :attr:`export_path` (a video), atomically."""
        from holdpose.io.video import open_writer
        from holdpose.render.openpose import STYLES, render_pose_maps

        if style not in STYLES:
            raise EditError(f"export: style must be one of {', '.join(STYLES)}, got {style!r:.40}")
        seq = self.seq
        with open_writer(self.export_path, fps=seq.fps, size=seq.size) as writer:
            for frame in render_pose_maps(seq, style):
                writer.write(frame)
        return self.export_path
