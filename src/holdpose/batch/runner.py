"""Run a batch: skip what the manifest says is done, run the rest on the embedded pool or on
Ray, record each job as it finishes, and sum up."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from holdpose.batch.jobs import Job
from holdpose.batch.manifest import MANIFEST_NAME, ManifestWriter, plan_run, read_manifest
from holdpose.progress import progress_bar

logger = logging.getLogger(__name__)

GIB = 2**30
# What one job of each stage asks of a Ray node (with one CPU; memory from the peak RSS of
# one worker on the fixture videos, rounded up). Diffusion backends also ask for a GPU.
RESOURCES = {"extract": {"num_cpus": 1, "memory": 1 * GIB}, "refine": {"num_cpus": 1, "memory": GIB // 2},
             "render": {"num_cpus": 1, "memory": GIB // 2}, "evaluate": {"num_cpus": 1, "memory": 1 * GIB},
             "animate": {"num_cpus": 1, "memory": 2 * GIB}}
DIFFUSION_RESOURCES = {"num_cpus": 1, "num_gpus": 1, "memory": 8 * GIB}


def default_resources(stage: str, options: dict) -> dict:
    """Ray's resource request for one job of ``stage`` with ``options``."""
    if stage == "animate" and options.get("backend", "warp") != "warp":
        return dict(DIFFUSION_RESOURCES)
    return dict(RESOURCES[stage])


@dataclass
class BatchSummary:
    """What a batch did: counts, this run's failures and the manifest that holds every record."""

    manifest: Path
    total: int
    done: int = 0  # finished in this run
    already_done: int = 0  # skipped: done in an earlier run
    failed: list[dict] = field(default_factory=list)  # failed in this run
    not_retried: int = 0  # failed in an earlier run, skipped without --retry-failed
    seconds: float = 0.0

    @property
    def unfinished(self) -> int:
        return self.total - self.done - self.already_done - len(self.failed) - self.not_retried

    def line(self) -> str:
        parts = [f"{self.done} done"]
        if self.already_done:
            parts.append(f"{self.already_done} done before")
        parts.append(f"{len(self.failed)} failed")
        if self.not_retried:
            parts.append(f"{self.not_retried} failed before (not retried)")
        rate = f", {self.done / self.seconds:.2f} jobs/s" if self.done and self.seconds else ""
        return f"{self.manifest}: {self.total} jobs: {', '.join(parts)}; {self.seconds:.1f} s{rate}"


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch; ``summary`` counts the jobs recorded before it."""

    def __init__(self, summary: BatchSummary):
        super().__init__()
        self.summary = summary


def run_batch(jobs: list[Job], out_dir: str | os.PathLike, *, ray: str | None = None, retry_failed: bool = False,
              processes: int | None = None, cpus_per_job: int | None = None, resources: dict | None = None,
              max_retries: int = 2, progress: bool = True, verbose: bool = False) -> BatchSummary:
    """Run ``jobs`` (from :func:`holdpose.batch.jobs.plan_jobs`) and record them in
    ``out_dir/manifest.jsonl``.

    Args:
        ray: None runs on this machine (a pool of ``processes``, default one per core);
            "auto" or an address runs Ray tasks (see :func:`holdpose.batch.ray_runner.connect`).
        retry_failed: run jobs that failed in an earlier run again (else they are skipped).
        cpus_per_job: processes inside each job (default: the cores a job's share of this
            machine holds; 1 on Ray, or ``resources["num_cpus"]``).
        resources: Ray's request per task (default :func:`default_resources`).
        max_retries: times a job lost with its worker process is tried again.

    Raises:
        BatchInterrupted: on Ctrl-C, after every finished job is recorded.
    """
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST_NAME
    plan = plan_run(jobs, read_manifest(path), retry_failed=retry_failed)
    summary = BatchSummary(path, len(jobs), already_done=len(plan.done), not_retried=len(plan.failed))
    if plan.failed:
        logger.warning("%d job(s) failed in an earlier run and are skipped; --retry-failed runs them again",
                       len(plan.failed))
    if not plan.todo:
        return summary
    records = _records(plan.todo, ray=ray, processes=processes, cpus_per_job=cpus_per_job, resources=resources,
                       max_retries=max_retries, verbose=verbose)
    start = time.perf_counter()
    desc = f"batch {plan.todo[0].stage}"
    with ManifestWriter(path) as manifest, progress_bar(total=len(plan.todo), desc=desc, unit="job",
                                                          enabled=progress) as bar:
        try:
            for record in records:
                manifest.append(record)
                _count(summary, record)
                bar.update(1)
        except KeyboardInterrupt as err:
            summary.seconds = time.perf_counter() - start
            raise BatchInterrupted(summary) from err
        finally:
            records.close()  # stops the pool or cancels the Ray tasks still running
    summary.seconds = time.perf_counter() - start
    _remove_leftovers(plan.todo)
    return summary


def _remove_leftovers(jobs: list[Job]) -> None:
    """Delete the temporary outputs of workers that died mid-job (``.NAME.PID.partial``, see
    :func:`holdpose.io.atomic.atomic_path`); no job of ``jobs`` runs any more."""
    import shutil

    for job in jobs:
        output = Path(job.output)
        for leftover in output.parent.glob(f".{output.name}.*.partial"):
            logger.info("%s: removing what a dead worker left", leftover)
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _records(todo: list[Job], *, ray, processes, cpus_per_job, resources, max_retries, verbose):
    if ray is None:
        from holdpose.batch.local import run_local, share_cores

        processes, shared = share_cores(len(todo), processes=processes)
        return run_local(todo, processes=processes, workers_per_job=cpus_per_job or shared, max_retries=max_retries)
    from holdpose.batch.ray_runner import run_ray

    resources = dict(resources or default_resources(todo[0].stage, todo[0].options))
    if cpus_per_job:
        resources["num_cpus"] = cpus_per_job
    workers = max(1, int(resources.get("num_cpus", 1)))
    return run_ray(todo, address=ray, resources=resources, workers_per_job=workers, max_retries=max_retries,
                   verbose=verbose)


def _count(summary: BatchSummary, record: dict) -> None:
    if record["status"] == "done":
        summary.done += 1
    else:
        summary.failed.append(record)
        logger.warning("%s failed: %s", record["job"], record["error"])
