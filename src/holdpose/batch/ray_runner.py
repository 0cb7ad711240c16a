"""The Ray runner: the same jobs as Ray tasks, on an existing cluster or a local one.

Each job is one task of :func:`holdpose.batch.stages.run_job` with the stage's resource
request (``num_cpus``, ``num_gpus``, ``memory``); the task gets the job (paths and options)
and returns its record, so no frame ever goes through Ray's object store: workers read
inputs and write outputs on the file system every node sees. A task whose worker process
dies (killed, out of memory, node lost) is retried by Ray up to ``max_retries`` times; a job
that fails by itself returns a failed record and is not retried. Records are yielded as
tasks finish, while at most ``window`` tasks wait on the cluster (so a batch of 100 000
inputs does not flood the scheduler).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from holdpose.batch.jobs import Job
from holdpose.batch.stages import error_line, lost_record, run_job
from holdpose.errors import HoldposeError, require

logger = logging.getLogger(__name__)

PROBE_SECONDS = 3
TASKS_PER_CPU = 2  # tasks queued per CPU of the cluster, so a worker never waits for the driver


def connect(address: str | None = "auto", *, verbose: bool = False):
    """``ray``, connected: to ``address`` (``host:port`` or ``ray://host:port``), or with
    "auto" to the cluster ``RAY_ADDRESS`` or ``ray start`` on this machine names, else to a
    new local one sized to this machine's cores."""
    ray = require("ray", "ray")
    if ray.is_initialized():
        return ray
    _refuse_silent_address(address)
    try:
        ray.init(address=None if address in (None, "auto") else address, include_dashboard=False,
                 log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise HoldposeError(f"--ray {address}: could not connect to a Ray cluster ({error_line(err)}); start one "
                            "with `ray start --head`, or give its address (HOST:6379 or ray://HOST:10001)") from err
    return ray


def _refuse_silent_address(address: str | None) -> None:
    """Ray retries a GCS address that does not answer for ever; say so at once instead. With
    "auto" the address comes from RAY_ADDRESS or the file ``ray start`` leaves in Ray's temp
    folder, which a cluster stopped uncleanly leaves behind."""
    where = "--ray"
    if address in (None, "auto"):
        current = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"
        address, where = os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS"
        if not address and current.is_file():
            address, where = current.read_text().strip(), str(current)
    if not address or address in ("auto", "local") or "://" in address:
        return  # a new local cluster, or Ray Client, which times out by itself
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except (OSError, ValueError) as err:
        fix = {"--ray": "or give the address of a running one", "RAY_ADDRESS": "or unset RAY_ADDRESS"}.get(
            where, "or remove that stale file (`ray stop` does)")
        raise HoldposeError(f"{where}: Ray cluster {address} does not answer ({err}); start it (ray start --head) "
                            f"{fix}") from err


def run_ray(jobs: list[Job], *, address: str | None = "auto", resources: dict, workers_per_job: int = 1,
            max_retries: int = 2, verbose: bool = False) -> Iterator[dict]:
    """Yield each job's record as its task finishes. ``resources``: Ray's ``num_cpus``,
    ``num_gpus`` and ``memory`` (bytes) for every task."""

    ray = require("ray", "ray")
    owned = not ray.is_initialized()  # a caller's own connection (a test's cluster) stays open
    connect(address, verbose=verbose)
    _check_resources(ray.cluster_resources(), resources)
    task = ray.remote(run_job).options(max_retries=max_retries, retry_exceptions=False, **resources)
    window = max(8, TASKS_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    pending = list(reversed(jobs))  # popped from the end: input order
    running: dict = {}
    try:
        while pending or running:
            while pending and len(running) < window:
                job = pending.pop()
                running[task.remote(job, workers_per_job)] = job
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                job = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as err:  # its worker died more than max_retries times, its node left
                    yield lost_record(job, f"lost on the Ray cluster after {max_retries} retries: {error_line(err)}")
    finally:
        for ref in running:  # Ctrl-C: the cluster stops what this batch started
            ray.cancel(ref, force=True)
        if owned:
            ray.shutdown()


def _check_resources(cluster: dict, resources: dict) -> None:
    """Refuse requests no node of the cluster can meet now (Ray would wait for them forever),
    except GPUs, which an autoscaling cluster may add: those only warn."""
    if resources.get("num_cpus", 0) > cluster.get("CPU", 0):
        raise HoldposeError(f"each job asks for {resources['num_cpus']:g} CPUs and the Ray cluster has "
                            f"{cluster.get('CPU', 0):g}; lower --cpus-per-job")
    if resources.get("num_gpus", 0) > cluster.get("GPU", 0):
        logger.warning("each job asks for %g GPU(s) and the Ray cluster has %g now: jobs wait until GPU nodes join "
                       "(--gpus-per-job 0 runs them on CPUs)", resources["num_gpus"], cluster.get("GPU", 0))
    if resources.get("memory", 0) > cluster.get("memory", float("inf")):
        raise HoldposeError(f"each job asks for {resources['memory'] / 2**30:.1f} GiB and the Ray cluster has "
                            f"{cluster['memory'] / 2**30:.1f} GiB; lower --memory-per-job")

