"""The ``batch`` subcommand: ``holdpose batch STAGE INPUTS... -o OUT_DIR [options]``.

``holdpose.cli`` adds it with ``add_subcommand(subparsers, common)``. Each stage is a
sub-subcommand with the options of the single command it maps (those that make sense per
input), plus the batch's own: where to run (``--ray``), what to redo (``--retry-failed``)
and what each job asks for.
"""

from __future__ import annotations

import argparse

from holdpose import argtypes
from holdpose.batch.stages import STAGE_OPTIONS
from holdpose.errors import HoldposeError

FAILURES_SHOWN = 3


def add_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``batch`` to ``subparsers`` (what ``add_subparsers`` returns)."""
    batch = subparsers.add_parser(
        "batch", parents=[common], help="run a stage over many inputs, on this machine or a Ray cluster",
        description="Run one stage over many inputs: files, folders (searched for the stage's files) or list files "
        "(.txt, one path a line), or a jobs table (.csv / .jsonl). Each input gets its own output under OUT_DIR; "
        "OUT_DIR/manifest.jsonl records every job as it finishes, and running the same command again skips the "
        "jobs done. See docs/scale.md.")
    stages = batch.add_subparsers(dest="stage", required=True, metavar="STAGE")
    shared = _batch_options(common)

    p = stages.add_parser("extract", parents=[shared], help="poses of many videos (or images)")
    p.add_argument("--detector", choices=["mediapipe", "dwpose"], default="mediapipe")
    _detector_weights(p)
    p.add_argument("--max-people", type=argtypes.positive_int, default=1, help="most people per frame (default 1)")
    p.add_argument("--short-side", type=argtypes.positive_int, help="resize frames to this short side first")
    p.add_argument("--fps", type=float, help="frame rate of image inputs (default 30)")
    _pose_output(p)

    p = stages.add_parser("refine", parents=[shared], help="clean many pose files")
    p.add_argument("--track", action="store_true", help="re-assign person ids across frames")
    p.add_argument("--fill", action="store_true", help="interpolate short gaps")
    p.add_argument("--max-gap", type=argtypes.positive_int, default=5, help="longest gap filled, frames (default 5)")
    p.add_argument("--fix-swaps", action="store_true", help="repair left/right limb swaps")
    p.add_argument("--smooth", nargs="?", const="offline", choices=["offline", "one_euro"], help="smooth jitter")
    p.add_argument("--smooth-window", type=float, help="offline smoothing window, seconds (default 0.75)")
    p.add_argument("--fps", type=float, help="resample to this frame rate")
    _pose_output(p)

    p = stages.add_parser("render", parents=[shared], help="pose maps (.mp4) of many pose files")
    p.add_argument("--style", default="openpose_full", help="pose map style (default openpose_full; see holdpose "
                   "render --help)")
    p.add_argument("--size", type=argtypes.size, help="output WxH (default: each file's canvas)")
    p.add_argument("--canvas", type=argtypes.size, help="canvas WxH of pose files that do not state it")
    p.add_argument("--threshold", type=float, default=0.3, help="draw points scored above this (default 0.3)")

    p = stages.add_parser("animate", parents=[shared], help="characters x motions: every reference along every pose file",
                          description="INPUTS are motions (pose files); every --reference is animated along every "
                          "motion into OUT_DIR/REFERENCE_NAME/MOTION.mp4 (with MOTION.poses.json beside it). A jobs "
                          "table (.csv/.jsonl with reference, poses[, output] columns) names the pairs instead.")
    p.add_argument("--reference", action="append", help="character photo, folder of photos or list file; repeat")
    _animate_options(p)

    p = stages.add_parser("evaluate", parents=[shared], help="a report per generated video",
                          description="INPUTS are generated videos; each is scored against the VIDEO.poses.json "
                          "beside it (what holdpose animate writes) when there is one; a jobs table (input, target, "
                          "ground_truth columns) names other targets and ground truths. Reports go to "
                          "OUT_DIR/VIDEO_NAME/ (metrics.json, index.html).")
    p.add_argument("--detector", choices=["auto", "mediapipe", "dwpose"], default="auto")
    _detector_weights(p)
    p.add_argument("--max-people", type=argtypes.positive_int, help="most people per frame (default: the target's)")
    p.add_argument("--min-score", type=argtypes.fraction, default=0.3, help="score of a present point (default 0.3)")
    p.add_argument("--flow", choices=["dis", "farneback"], default="dis", help="optical flow for the warping error")
    p.add_argument("--worst-frames", type=int, default=4, help="worst frames in each report (default 4)")
    batch.set_defaults(func=cmd_batch)


def _animate_options(p: argparse.ArgumentParser) -> None:
    """holdpose animate's backend choice and options (the flags its backends' option
    dataclasses declare)."""
    from holdpose.animate.cli import argparse_kwargs, backend_fields, person_slot
    from holdpose.animate.options import flag_name
    from holdpose.animate.registry import DEFAULT_BACKEND, backend_names

    p.add_argument("--backend", choices=backend_names(), default=DEFAULT_BACKEND,
                   help=f"default {DEFAULT_BACKEND}; the diffusion backends ask Ray for a GPU per job")
    p.add_argument("--no-align", dest="align", action="store_false", help="the poses are already aligned")
    p.add_argument("--person", type=person_slot, help="animate only this person slot (default: all; warp follows the "
                   "first)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0): same seed and inputs, same frames")
    group = p.add_argument_group("backend options, as holdpose animate's (each names the backends that take it)")
    for name, (field, backends, defaults) in backend_fields().items():
        group.add_argument(flag_name(field), dest=name, default=None, **argparse_kwargs(field, backends, defaults))


def _batch_options(common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False, parents=[common])
    shared.add_argument("inputs", nargs="+", metavar="INPUTS", help="files, folders, list files (.txt) or one jobs "
                        "table (.csv, .jsonl)")
    shared.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder of the outputs and the "
                        "manifest")
    run = shared.add_argument_group("where and how the jobs run")
    run.add_argument("--ray", nargs="?", const="auto", metavar="auto|ADDRESS",
                     help="run the jobs as Ray tasks: on the cluster at ADDRESS (HOST:6379 or ray://HOST:10001), or "
                     "with auto on the one RAY_ADDRESS or `ray start` names, else a new local one (pip install "
                     "'holdpose[ray]'). Put it after INPUTS or give its value, as in --ray auto")
    run.add_argument("--retry-failed", action="store_true", help="run the jobs that failed before again")
    run.add_argument("--processes", type=argtypes.positive_int, help="jobs at once on this machine (default: one "
                     "per core)")
    run.add_argument("--cpus-per-job", type=argtypes.positive_int, help="processes inside each job (default: the "
                     "cores left per job; 1 on Ray)")
    run.add_argument("--gpus-per-job", type=float, help="Ray: GPUs per job (default 1 for diffusion backends, else 0)")
    run.add_argument("--memory-per-job", type=float, metavar="GIB", help="Ray: memory per job in GiB (default by "
                     "stage, 0.5 to 8)")
    run.add_argument("--max-retries", type=int, default=2, help="times a job lost with its worker process is tried "
                     "again (default 2)")
    return shared


def _detector_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pose-model", help="dwpose: the DWPose/RTMPose .onnx file (on every node)")
    p.add_argument("--det-model", help="dwpose: a YOLOX person detector .onnx file (optional)")


def _pose_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["json", "npz"], default="json", help="pose files written (default json, "
                   "OpenPose)")
    p.add_argument("--confidences", choices=["binary", "real"], default="binary", help="JSON: confidence 1 for "
                   "present points as ControlNet tools expect (default), or the detector's scores")
    p.add_argument("--normalized", action="store_true", help="JSON: coordinates in [0, 1]")


def cmd_batch(args) -> None:
    from pathlib import Path

    from holdpose.batch.jobs import plan_jobs
    from holdpose.batch.runner import BatchInterrupted, default_resources, run_batch

    options = {name: getattr(args, name) for name in STAGE_OPTIONS[args.stage] if getattr(args, name) is not None}
    if args.stage == "animate":
        options["backend_options"] = _checked_backend_options(args)
    suffix = "." + args.format if getattr(args, "format", None) else None
    jobs = plan_jobs(args.stage, args.inputs, args.output, options=options, references=getattr(args, "reference", None),
                     output_suffix=suffix)
    resources = default_resources(args.stage, options)
    if args.gpus_per_job is not None:
        resources["num_gpus"] = args.gpus_per_job
    if args.memory_per_job is not None:
        resources["memory"] = int(args.memory_per_job * 2**30)
    manifest = Path(args.output) / "manifest.jsonl"
    args.on_interrupt = f"finished jobs are recorded in {manifest}; run the same command again to do the rest"
    try:
        summary = run_batch(jobs, args.output, ray=args.ray, retry_failed=args.retry_failed, processes=args.processes,
                            cpus_per_job=args.cpus_per_job, resources=resources, max_retries=args.max_retries,
                            progress=not args.quiet, verbose=bool(args.verbose))
    except BatchInterrupted as stop:
        args.on_interrupt = (f"{stop.summary.done} job(s) finished this run and are recorded in {manifest}, with "
                             f"{stop.summary.unfinished} left; run the same command again to do the rest")
        raise
    print(summary.line())
    _refuse_failures(summary)


def _checked_backend_options(args) -> dict:
    """The backend options given, checked once here rather than failing every job alike."""
    from holdpose.animate.api import split_options
    from holdpose.animate.cli import backend_options
    from holdpose.animate.registry import get_backend

    options = backend_options(args)
    cls = get_backend(args.backend)
    cls.check_options(*split_options(cls, options))
    return options


def _refuse_failures(summary) -> None:
    """Exit non-zero while any job's last run failed, naming the first few."""
    failed = len(summary.failed) + summary.not_retried
    if not failed:
        return
    shown = "; ".join(f"{r['job']}: {r['error']}" for r in summary.failed[:FAILURES_SHOWN])
    more = f"; and {len(summary.failed) - FAILURES_SHOWN} more" if len(summary.failed) > FAILURES_SHOWN else ""
    what = f" ({shown}{more})" if shown else ""
    raise HoldposeError(f"{failed} of {summary.total} jobs failed{what}; every error is in {summary.manifest}; fix "
                        "the inputs and run the same command with --retry-failed")
