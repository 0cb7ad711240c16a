"""Closed-loop adherence: every frame judged as it is written, the ones that drift made again.

:func:`holdpose.animate.animate` (and :func:`holdpose.animate.resume.run_animation`) with
``verify=VerifySettings(...)`` (CLI: ``holdpose animate ... --verify``) hands each frame,
once it is on disk, to a :class:`FrameVerifier` that ``VerifySettings.start`` builds (the
animate stage only calls it, so it needs nothing from this package). It re-detects the pose on the frame and judges it against the
frame's target (:mod:`holdpose.evaluate.verdicts`); a frame that drifts is made again by
the backend (:meth:`~holdpose.animate.base.Animator.regenerate`), up to ``max_retries``
times, each retry with its own seed derived from (seed, frame, retry) and, on later
retries, a stronger control. The first retry that holds replaces the frame; when none
does, the try with the best PCK@0.05 is kept (never a worse frame than the first).

Every try and verdict is appended to ``verdicts.jsonl`` beside the run's manifest, one line
per frame, once its final frame is on disk. A rerun after an interruption judges only the
frames without a line, and since retries are deterministic the final frames are those of an
uninterrupted run. A backend that cannot make a frame again (the warp puppet, which holds
the pose by construction) has its verdicts recorded all the same.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from holdpose.animate.base import retry_seed
from holdpose.errors import HoldposeError
from holdpose.evaluate.verdicts import FrameJudge, Thresholds
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

VERDICTS_NAME = "verdicts.jsonl"


@dataclass
class VerifySettings:
    """What ``verify`` checks and how hard it tries.

    Attributes:
        thresholds: when a frame drifts (:class:`~holdpose.evaluate.verdicts.Thresholds`).
        max_retries: tries after the first, per drifting frame.
        detector: "auto", "mediapipe", "dwpose" (with ``pose_model``), or a callable
            ``image -> (keypoints [N, 133, 2], scores [N, 133])``.
        pose_model, det_model: DWPose weights for ``detector="dwpose"``/"auto".
    """

    thresholds: Thresholds = field(default_factory=Thresholds)
    max_retries: int = 2
    detector: Any = "auto"
    pose_model: str | None = None
    det_model: str | None = None

    def __post_init__(self):
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or not \
                0 <= self.max_retries <= 20:
            raise HoldposeError(f"max_retries (--max-retries) must be an integer in [0, 20], got {self.max_retries!r}")

    def start(self, animator, reference: np.ndarray, poses: PoseSequence, seed: int, options: dict,
              record_path: str | os.PathLike) -> "FrameVerifier":
        """The verifier of one run (its detector built, the records already on disk read)."""
        return FrameVerifier(self, animator, reference, poses, seed, options, record_path)

    def describe(self) -> dict:
        """JSON-able, for the run's manifest (a rerun with other settings is another run)."""
        detector = self.detector if isinstance(self.detector, str) else type(self.detector).__name__
        return {"thresholds": asdict(self.thresholds), "max_retries": self.max_retries, "detector": detector,
                "pose_model": self.pose_model}


class FrameVerifier:
    """Judges the frames of one run and remakes the ones that drift (see the module docstring)."""

    def __init__(self, settings: VerifySettings, animator, reference: np.ndarray, poses: PoseSequence, seed: int,
                 options: dict, record_path: str | os.PathLike):
        self.settings, self.animator, self.reference, self.poses = settings, animator, reference, poses
        self.seed, self.options = seed, options
        self.record_path = Path(record_path)
        max_people = max(1, int(((poses.scores > 0).any(-1) & (poses.track_ids >= 0)).sum(-1).max(initial=1)))
        self.judge = FrameJudge(settings.thresholds, detector=settings.detector, max_people=max_people,
                                pose_model=settings.pose_model, det_model=settings.det_model)
        self.records = read_records(self.record_path)

    def close(self) -> None:
        self.judge.close()

    def verify(self, index: int, frame: np.ndarray) -> np.ndarray:
        """The frame to keep for ``index`` (``frame`` itself when it holds its pose), with its
        record appended to ``verdicts.jsonl`` by :meth:`record` once the caller has it on disk."""
        target = self.poses.keypoints[index], np.where(self.poses.track_ids[index, :, None] >= 0,
                                                       self.poses.scores[index], 0)
        verdict = self.judge(frame, *target)
        tries = [{"attempt": 0, "seed": self.seed, **verdict.to_json()}]
        best, best_frame, kept = verdict, frame, 0
        if verdict.drift and getattr(self.animator, "can_regenerate", False):
            for attempt in range(1, self.settings.max_retries + 1):
                retry = np.asarray(self.animator.regenerate(self.reference, self.poses, index, seed=self.seed,
                                                            attempt=attempt, **self.options))
                if retry.shape != frame.shape or retry.dtype != np.uint8:
                    raise HoldposeError(f"the {self.animator.name} animator remade frame {index} as {retry.dtype} "
                                        f"{list(retry.shape)}; expected uint8 {list(frame.shape)}")
                verdict = self.judge(retry, *target)
                tries.append({"attempt": attempt, "seed": retry_seed(self.seed, index, attempt), **verdict.to_json()})
                if _better(verdict, best):
                    best, best_frame, kept = verdict, retry, attempt
                if not verdict.drift:
                    break
        self._pending = {"frame": index, "kept": kept,
                         "drift": best.drift, "tries": tries}
        if best.drift:
            logger.info("frame %d still drifts after %d tries (%s)", index, len(tries), best.reason)
        return best_frame

    def record(self) -> None:
        """Append the last verified frame's record (call it once the kept frame is on disk)."""
        record = self._pending
        with open(self.record_path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[record["frame"]] = record


def _better(candidate, best) -> bool:
    """A holding frame beats a drifting one; among drifting ones, a higher PCK@0.05 wins."""
    if candidate.drift != best.drift:
        return not candidate.drift
    a, b = candidate.pck, best.pck
    return (not np.isnan(a)) and (np.isnan(b) or a > b)


def read_records(path: str | os.PathLike) -> dict[int, dict]:
    """``{frame: record}`` from a run's ``verdicts.jsonl`` (empty when there is none). A last line
    cut short by a kill is ignored: that frame is judged again."""
    path = Path(path)
    records: dict[int, dict] = {}
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            records[int(record["frame"])] = record
        except (ValueError, KeyError, TypeError):
            logger.info("%s: ignoring a damaged line (a run killed while writing it)", path)
    return records


# --- what the report shows -------------------------------------------------------------------

STATES = {  # state -> (colour, meaning), in the order of the report's legend
    "held": ("#3a9d4a", "held its pose at the first try"),
    "regenerated": ("#e0a526", "drifted, made again, holds"),
    "corrected": ("#3b7dd8", "drifted, limbs moved back by holdpose correct"),
    "drifting": ("#d0453a", "still drifts"),
    "unjudged": ("#555555", "not judged"),
}


def frame_states(records: dict[int, dict], num_frames: int) -> dict[str, list]:
    """Per frame: its state (a key of :data:`STATES`), the tries it took, PCK@0.05 of its first
    try ("before") and of the frame kept ("after"); None where a frame was not judged. Records
    of ``holdpose correct`` (with ``before``/``after`` verdicts) read the same way."""
    state, tries, before, after = [], [], [], []
    for index in range(num_frames):
        record = records.get(index)
        if record is None:
            state.append("unjudged"), tries.append(None), before.append(None), after.append(None)
            continue
        if "tries" in record:  # made by the loop of holdpose animate --verify
            first, kept = record["tries"][0], record["tries"][record["kept"]]
            state.append("drifting" if record["drift"] else "regenerated" if record["kept"] > 0 else "held")
            tries.append(len(record["tries"]))
        else:  # made by holdpose correct
            first, kept = record["before"], record["after"]
            state.append("drifting" if kept["drift"] else "corrected" if record["corrected"] else "held")
            tries.append(None)
        before.append(first["pck"])
        after.append(kept["pck"])
    return {"state": state, "tries": tries, "pck_before": before, "pck_after": after}


def closed_loop_summary(records: dict[int, dict], num_frames: int) -> dict:
    """The counts of each state, the tries in all, and the per-frame states of a run's records,
    as metrics.json keeps them."""
    states = frame_states(records, num_frames)
    counts = {name: states["state"].count(name) for name in STATES}
    return {"counts": counts, "tries": sum(n or 0 for n in states["tries"]), "per_frame": states}
