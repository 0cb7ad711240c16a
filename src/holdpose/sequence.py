"""PoseSequence: the one data type every stage of holdpose passes along."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.skeleton import COCO_WHOLEBODY, Skeleton


@dataclass
class PoseSequence:
    """Keypoints of P person slots over T frames, in pixels of a ``size`` canvas.

    Attributes:
        keypoints: float32 ``[T, P, K, 2]``, (x, y) in pixels, origin top-left.
            Values of missing points are meaningless (kept at 0).
        scores: float32 ``[T, P, K]`` in [0, 1]; 0 means missing.
        track_ids: int32 ``[T, P]``; the same id is the same person across frames,
            -1 marks an empty slot.
        layout: the :class:`Skeleton` giving the meaning of the K axis.
        size: canvas ``(width, height)`` in pixels.
        fps: frames per second.
        interpolated: bool ``[T, P, K]``, True where a point was not detected but
            filled in by refinement (gap filling, resampling), so later stages can tell.
        neck: float32 ``[T, P, 7]``, the neck an OpenPose file gave (x, y px, score; 0:
            none, the shoulders' midpoint is used) and the two shoulders it was read
            with, so it follows them when they move (:func:`holdpose.convert.file_neck`).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    layout: Skeleton = field(default=COCO_WHOLEBODY)
    size: tuple[int, int] = (512, 512)
    fps: float = 30.0
    interpolated: np.ndarray | None = None
    neck: np.ndarray | None = None

    def __post_init__(self):
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int32)
        self.size = (int(self.size[0]), int(self.size[1]))
        self.fps = float(self.fps)
        if self.interpolated is None:
            self.interpolated = np.zeros(self.scores.shape, bool)
        self.interpolated = np.asarray(self.interpolated, dtype=bool)
        t, p, k = self.scores.shape if self.scores.ndim == 3 else (None, None, None)
        if self.keypoints.shape != (t, p, k, 2) or self.track_ids.shape != (t, p) or self.interpolated.shape != (t, p, k):
            raise ValueError(
                f"inconsistent shapes: keypoints {self.keypoints.shape} (want [T, P, K, 2]), "
                f"scores {self.scores.shape} (want [T, P, K]), track_ids {self.track_ids.shape} (want [T, P])"
            )
        if self.neck is None or np.shape(self.neck)[:2] != self.scores.shape[:2]:
            # None, or left over from arrays replaced without it (dataclasses.replace with other
            # frames): no file neck, the shoulders' midpoint is drawn, as for detected poses.
            self.neck = np.zeros(self.scores.shape[:2] + (7,), np.float32)
        self.neck = np.asarray(self.neck, dtype=np.float32)
        if self.neck.shape != (t, p, 7):
            raise ValueError(f"inconsistent shapes: neck {self.neck.shape} (want [T, P, 7])")
        if k != self.layout.num_keypoints:
            raise ValueError(f"layout {self.layout.name} has {self.layout.num_keypoints} keypoints, arrays have {k}")

    # --- construction -------------------------------------------------------

    @classmethod
    def empty(cls, num_frames: int, num_people: int = 1, *, layout: Skeleton = COCO_WHOLEBODY,
              size=(512, 512), fps: float = 30.0) -> "PoseSequence":
        """A sequence with every point missing and every slot empty (within :func:`holdpose.limits.pose_slots`)."""
        from holdpose.limits import pose_slots

        pose_slots(num_frames, num_people)
        k = layout.num_keypoints
        return cls(
            keypoints=np.zeros((num_frames, num_people, k, 2), np.float32),
            scores=np.zeros((num_frames, num_people, k), np.float32),
            track_ids=np.full((num_frames, num_people), -1, np.int32),
            layout=layout, size=size, fps=fps,
        )

    @classmethod
    def from_frames(cls, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *,
                    layout: Skeleton = COCO_WHOLEBODY, size=(512, 512), fps: float = 30.0) -> "PoseSequence":
        """Stack per-frame ``(keypoints [P_t, K, 2], scores [P_t, K], track_ids [P_t])``;
        frames with fewer people are padded with empty slots."""
        num_people = max([len(f[1]) for f in frames] + [1])
        seq = cls.empty(len(frames), num_people, layout=layout, size=size, fps=fps)
        for t, (kp, sc, ids) in enumerate(frames):
            n = len(sc)
            seq.keypoints[t, :n] = kp
            seq.scores[t, :n] = sc
            seq.track_ids[t, :n] = ids
        return seq

    @classmethod
    def single_pose(cls, keypoints: np.ndarray, scores: np.ndarray, *, layout: Skeleton = COCO_WHOLEBODY,
                    size=(512, 512), fps: float = 30.0) -> "PoseSequence":
        """One frame of one person (track id 0): ``keypoints [K, 2]``, ``scores [K]``."""
        return cls.from_frames([(np.asarray(keypoints)[None], np.asarray(scores)[None], np.zeros(1, np.int32))],
                               layout=layout, size=size, fps=fps)

    # --- shape ----------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]

    @property
    def num_people(self) -> int:
        return self.keypoints.shape[1]

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[2]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.fps

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, frames) -> "PoseSequence":
        """Select frames by slice, index array or int (an int keeps the T axis, length 1)."""
        if isinstance(frames, (int, np.integer)):
            frames = slice(frames, frames + 1 if frames != -1 else None)
        return replace(self, keypoints=self.keypoints[frames], scores=self.scores[frames],
                       track_ids=self.track_ids[frames], interpolated=self.interpolated[frames],
                       neck=self.neck[frames])

    def select_people(self, slots) -> "PoseSequence":
        """The same frames with only the person slots ``slots`` (a list of slot indices), in that order."""
        slots = list(slots)
        return replace(self, keypoints=self.keypoints[:, slots], scores=self.scores[:, slots],
                       track_ids=self.track_ids[:, slots], interpolated=self.interpolated[:, slots],
                       neck=self.neck[:, slots])

    def put_person(self, frames, slot: int, source: "PoseSequence", source_slots, track_id: int) -> None:
        """Write person ``source_slots`` of ``source`` (one per frame of ``frames``) into ``slot`` of
        those frames, every per-point field, under ``track_id``. In place."""
        self.keypoints[frames, slot] = source.keypoints[frames, source_slots]
        self.scores[frames, slot] = source.scores[frames, source_slots]
        self.interpolated[frames, slot] = source.interpolated[frames, source_slots]
        self.neck[frames, slot] = source.neck[frames, source_slots]
        self.track_ids[frames, slot] = track_id

    def copy(self) -> "PoseSequence":
        return replace(self, keypoints=self.keypoints.copy(), scores=self.scores.copy(),
                       track_ids=self.track_ids.copy(), interpolated=self.interpolated.copy(),
                       neck=self.neck.copy())

    def scaled_to(self, size: tuple[int, int]) -> "PoseSequence":
        """The same poses on a ``size`` = ``(width, height)`` canvas: every x scaled by the
        ratio of the widths, every y by that of the heights (a resized video's poses)."""
        scale = np.array(size, np.float32) / np.array(self.size, np.float32)
        neck = self.neck.copy()
        for xy in (slice(0, 2), slice(3, 5), slice(5, 7)):  # the file neck and the two shoulders it was read with
            neck[..., xy] *= scale
        return replace(self, keypoints=self.keypoints * scale, scores=self.scores.copy(),
                       track_ids=self.track_ids.copy(), interpolated=self.interpolated.copy(), neck=neck,
                       size=tuple(int(v) for v in size))

    @property
    def present(self) -> np.ndarray:
        """bool ``[T, P, K]``: the point was detected."""
        return self.scores > 0

    # --- checks -----------------------------------------------------------------

    def validate(self, *, margin: float = 1.0) -> "PoseSequence":
        """Raise :class:`HoldposeError` for NaN/inf values, scores outside [0, 1], or present
        points farther than ``margin`` canvas sizes outside the canvas. Returns self."""
        if not np.isfinite(self.keypoints).all() or not np.isfinite(self.scores).all():
            t = int(np.argwhere(~np.isfinite(self.keypoints).all(axis=(2, 3)) | ~np.isfinite(self.scores).all(axis=2))[0, 0])
            raise HoldposeError(f"keypoints contain NaN or infinite values (first in frame {t})")
        if (self.scores < 0).any() or (self.scores > 1).any():
            raise HoldposeError(f"scores must lie in [0, 1]; found {self.scores.min():.3g}..{self.scores.max():.3g}")
        w, h = self.size
        if w <= 0 or h <= 0:
            raise HoldposeError(f"canvas size must be positive, got {self.size}")
        lo = -margin * np.array([w, h])
        hi = (1 + margin) * np.array([w, h])
        outside = self.present & ((self.keypoints < lo) | (self.keypoints > hi)).any(-1)
        if outside.any():
            t, p, k = np.argwhere(outside)[0]
            x, y = self.keypoints[t, p, k]
            raise HoldposeError(
                f"keypoint {self.layout.keypoint_names[k]} of person slot {p} (track id {self.track_ids[t, p]}) in frame "
                f"{t} is at ({x:.1f}, {y:.1f}), far outside the {w}x{h} canvas ({int(outside.any(-1).sum())} "
                f"person-frames are); are the coordinates normalised or is the canvas size wrong? To keep only "
                f"some people: --person ID|largest|longest"
            )
        return self

    # --- geometry ---------------------------------------------------------------

    def boxes(self, min_score: float = 0.0) -> np.ndarray:
        """float32 ``[T, P, 4]`` boxes (x0, y0, x1, y1) around points with score > ``min_score``;
        NaN where a slot has no such point."""
        mask = self.scores > min_score
        big = np.float32(np.inf)
        x = self.keypoints[..., 0]
        y = self.keypoints[..., 1]
        with np.errstate(invalid="ignore"):
            out = np.stack([
                np.where(mask, x, big).min(-1), np.where(mask, y, big).min(-1),
                np.where(mask, x, -big).max(-1), np.where(mask, y, -big).max(-1),
            ], axis=-1)
        out[~mask.any(-1)] = np.nan
        return out
