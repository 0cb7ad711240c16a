"""The embedded runner: a pool of processes on this machine, no cluster.

Jobs go to a pool of spawned processes, at most one job per process at a time, and records
come back as jobs finish. A process lives for the whole batch, so Python, NumPy, OpenCV and
MediaPipe are imported once per process rather than once per input: that is what a batch
of short clips gains over one ``holdpose`` command per clip.

Where the cores go: ``processes`` jobs at once, each with ``workers_per_job`` processes
inside (extract and evaluate split a video's frames over them). Many short inputs are
fastest one job per core, each job in one process (a short clip split in two pays a second
model load and restarts MediaPipe's tracking mid-clip); a few long videos are fastest with
the cores inside the job. :func:`share_cores` picks between them.

A process that dies (killed, out of memory, a crash in native code) takes its job with it:
the pool is rebuilt and the jobs that were running are tried again, up to ``max_retries``
times each, then recorded as failed.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

from holdpose.batch.jobs import Job
from holdpose.batch.stages import lost_record, run_job
from holdpose.parallel import spawn_pool, stop_pool

logger = logging.getLogger(__name__)


def share_cores(num_jobs: int, cores: int | None = None, *, processes: int | None = None) -> tuple[int, int]:
    """``(processes, workers_per_job)`` for ``num_jobs`` on ``cores``: one process per job up
    to the number of cores, and the cores left over inside each job."""
    cores = cores or os.cpu_count() or 1
    processes = max(1, min(processes or cores, num_jobs))
    return processes, max(1, cores // processes)


def run_local(jobs: list[Job], *, processes: int, workers_per_job: int = 1, max_retries: int = 2) -> Iterator[dict]:
    """Yield each job's record as it finishes (in finishing order)."""
    if processes == 1:
        for job in jobs:  # one at a time: no pool to start, the job's own workers use the cores
            yield run_job(job, workers_per_job)
        return
    pending = list(reversed(jobs))  # popped from the end: input order
    attempts: dict[str, int] = {}
    while pending:
        pool = spawn_pool(processes)
        try:
            yield from _drain(pool, processes, pending, workers_per_job, attempts, max_retries)
        finally:
            stop_pool(pool)  # after Ctrl-C: outputs are published atomically, nothing is half-written


def _drain(pool: ProcessPoolExecutor, processes: int, pending: list[Job], workers_per_job: int, attempts: dict,
           max_retries: int) -> Iterator[dict]:
    """Run ``pending`` on ``pool``, ``processes`` jobs at a time, until done or the pool breaks;
    jobs lost with a broken pool go back on ``pending`` (or fail, out of retries)."""
    running: dict[Future, Job] = {}
    while pending or running:
        while pending and len(running) < processes:
            job = pending.pop()
            running[pool.submit(run_job, job, workers_per_job)] = job
        wait(running, return_when=FIRST_COMPLETED)
        lost = []
        for future in [f for f in running if f.done()]:
            job = running.pop(future)
            try:
                yield future.result()
            except BrokenProcessPool:
                lost.append(job)
        if lost:  # the pool is unusable: every job still running on it is lost too
            yield from _lost(lost + list(running.values()), pending, attempts, max_retries)
            return


def _lost(jobs: list[Job], pending: list[Job], attempts: dict, max_retries: int) -> Iterator[dict]:
    """Jobs that were running when a pool process died: tried again, or failed when out of retries."""

    for job in jobs:
        attempts[job.key] = attempts.get(job.key, 0) + 1
        if attempts[job.key] > max_retries:
            yield lost_record(job, f"a worker process died while running it, {attempts[job.key]} times")
        else:
            logger.warning("%s: its worker process died; trying again", job.key)
            pending.append(job)
