"""What a worker runs: one job through its stage's API function, returning a small record.

:func:`run_job` is the same in a pool process and in a Ray task. It never raises for a bad
input: the job fails with a one-line ``error`` (a :class:`HoldposeError`'s message, or the
exception's type and first line for anything else, with its traceback in the record), and
the batch goes on. Every output is published atomically (the stages' writers rename a
finished temporary file into place), so a killed worker leaves no half-written output.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from holdpose.batch.jobs import Job
from holdpose.errors import HoldposeError

logger = logging.getLogger(__name__)

# stage -> the options a job carries (the CLI's argparse dests): its API function's arguments,
# and for pose files the FILE_OPTIONS of the writer
FILE_OPTIONS = ("confidences", "normalized")
STAGE_OPTIONS = {
    "extract": ("detector", "pose_model", "det_model", "max_people", "short_side", "fps", *FILE_OPTIONS),
    "refine": ("track", "fill", "max_gap", "fix_swaps", "smooth", "smooth_window", "fps", *FILE_OPTIONS),
    "render": ("style", "size", "canvas", "threshold"),
    "animate": ("backend", "align", "person", "seed"),
    "evaluate": ("detector", "pose_model", "det_model", "max_people", "min_score", "flow", "worst_frames"),
}


def _api_options(job: Job) -> dict:
    """The job's options its stage's API function takes (those set)."""
    return {key: job.options[key] for key in STAGE_OPTIONS[job.stage]
            if key not in FILE_OPTIONS and job.options.get(key) is not None}


def run_job(job: Job, workers: int = 1) -> dict:
    """Run ``job`` with ``workers`` processes inside it (extract and evaluate split frames
    over them; 1 runs in this process) and return its manifest record."""
    start = time.perf_counter()
    record = {"job": job.key, "stage": job.stage, "inputs": job.inputs, "output": job.output,
              "fingerprint": job.fingerprint}
    try:
        info = STAGE_FUNCTIONS[job.stage](job, workers) or {}
        record.update(status="done", error=None, **info)
    except Exception as err:  # noqa: BLE001 - one job's failure, whatever it is, must not stop the batch
        record.update(status="failed", error=error_line(err))
        if not isinstance(err, HoldposeError):
            record["traceback"] = traceback.format_exc()
    record.update(seconds=round(time.perf_counter() - start, 3), host=socket.gethostname(), pid=os.getpid(),
                  finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record


def error_line(err: BaseException) -> str:
    """One line for the manifest and the summary: a HoldposeError's message as it is, anything
    else with its type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if isinstance(err, HoldposeError) else f"{type(err).__name__}: {text}".rstrip(": ")


# --- the stages ------------------------------------------------------------------


def _json_options(options: dict, output: str) -> dict:
    if output.lower().endswith(".npz"):
        return {}
    return {key: options[key] for key in FILE_OPTIONS if key in options}


def _extract(job: Job, workers: int) -> dict:
    from holdpose.detect.extract import extract_poses
    from holdpose.io.posefile import save_poses

    seq = extract_poses(job.inputs["input"], workers=workers, progress=False, **_api_options(job))
    save_poses(seq, job.output, **_json_options(job.options, job.output))
    return {"frames": seq.num_frames, "frames_with_people": int((seq.track_ids >= 0).any(-1).sum())}


def _refine(job: Job, workers: int) -> dict:
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.refine.pipeline import refine

    clean = refine(load_poses(job.inputs["input"]), **_api_options(job))
    save_poses(clean, job.output, **_json_options(job.options, job.output))
    return {"frames": clean.num_frames}


def _render(job: Job, workers: int) -> dict:
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import open_writer
    from holdpose.render.openpose import render_pose_maps

    seq = load_poses(job.inputs["input"], size=job.options.get("canvas"))
    size = tuple(job.options.get("size") or seq.size)
    maps = render_pose_maps(seq, job.options.get("style", "openpose_full"), size=size,
                            threshold=job.options.get("threshold", 0.3))
    with open_writer(job.output, fps=seq.fps, size=size) as writer:
        for frame in maps:
            writer.write(frame)
    return {"frames": seq.num_frames}


def _evaluate(job: Job, workers: int) -> dict:
    from holdpose.evaluate import evaluate_video, write_report
    from holdpose.io.atomic import atomic_path

    evaluation = evaluate_video(job.inputs["input"], target=job.inputs.get("target"),
                                ground_truth=job.inputs.get("ground_truth"), workers=workers, progress=False,
                                **_api_options(job))
    with atomic_path(job.output, directory=True) as tmp:  # the whole report appears at once
        write_report(evaluation, tmp, title=Path(job.inputs["input"]).name)
    summary = {name: _finite(evaluation.metrics[name]) for name in ("pck@0.1", "oks_ap", "flicker")
               if name in evaluation.metrics}
    return {"frames": evaluation.frames.get("output"), "metrics": summary}


def _finite(value) -> float | None:
    """A number for the manifest's JSON (which has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _animate(job: Job, workers: int) -> dict:
    from holdpose.animate import animate

    options = job.options
    result = animate(job.inputs["reference"], job.inputs["poses"], job.output, backend=options.get("backend", "warp"),
                     align=options.get("align", True), person=options.get("person"), seed=options.get("seed", 0),
                     progress=False, **options.get("backend_options", {}))
    return {"frames": result.num_frames, "resumed_from": result.resumed_from}


STAGE_FUNCTIONS = {"extract": _extract, "refine": _refine, "render": _render, "evaluate": _evaluate,
                   "animate": _animate}


def lost_record(job: Job, error: str) -> dict:
    """The record of a job that its worker could not report (the worker died)."""
    return {"job": job.key, "stage": job.stage, "inputs": job.inputs, "output": job.output,
            "fingerprint": job.fingerprint, "status": "failed", "error": error, "seconds": None, "host": None,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
