"""Chunks of work on every core, with one progress bar: the pool that extraction and
evaluation share.

A job is a module-level function called as ``function(*args, progress)``, where
``progress.put(n)`` reports ``n`` more frames done. One job runs in this process; more
run in a pool of spawned processes, which report progress through a queue that the
parent drains into the bar while it waits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

import numpy as np

from holdpose.errors import HoldposeError


# A worker pays ~1.5 s to start (imports, detector models), and MediaPipe's tracking mode
# needs a few frames to settle: chunks shorter than this are not worth a process.
MIN_FRAMES_PER_WORKER = 24


def frame_chunks(num_frames: int, workers: int | None = None) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges covering ``num_frames``, one per worker: as many
    workers as cores (or ``workers``), fewer when the chunks would be too short."""
    if workers is None:
        workers = os.cpu_count() or 1
    workers = max(1, min(workers, num_frames // MIN_FRAMES_PER_WORKER))
    bounds = np.linspace(0, num_frames, workers + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class _BarQueue:
    """Stands in for the progress queue in this process: ticks the bar."""

    def __init__(self, bar):
        self.bar = bar

    def put(self, n):
        self.bar.update(n)


_progress_queue = None


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when its parent ends, however the parent ends (SIGKILL included): on
    Linux the kernel sends SIGKILL (PR_SET_PDEATHSIG); elsewhere, and as a second guard, a
    thread sees the worker re-parented and exits."""
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        except OSError:
            pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.25)
        os._exit(1)

    if os.getppid() != parent_pid:  # the parent died before the guard was up
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="holdpose-parent-watch").start()


def _init_worker(progress_queue, quiet_native_logs: bool, parent_pid: int):
    global _progress_queue
    _die_with_parent(parent_pid)
    _progress_queue = progress_queue
    if quiet_native_logs:
        quiet_native_logs_here()


def quiet_native_logs_here() -> None:
    """Send this worker process's fd 2 to /dev/null. MediaPipe/TFLite print model-loading
    notices there from their own threads, at moments no wrapper can catch; a worker reports
    errors by exception, not stderr."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _call_in_worker(function, args):
    return function(*args, _progress_queue)


def run_chunks(function: Callable, jobs: Sequence[tuple], bar) -> list:
    """``[function(*job, progress) for job in jobs]``, in parallel when there are several
    jobs. A worker's exception is raised here."""
    if len(jobs) == 1:
        return [function(*jobs[0], _BarQueue(bar))]
    # Workers pay only their own imports, which they would pay anyway for the models.
    progress_queue = mp.get_context("spawn").Queue()
    pool = spawn_pool(len(jobs), progress_queue)
    try:
        pending = [pool.submit(_call_in_worker, function, tuple(job)) for job in jobs]
        while not all(job.done() for job in pending):
            try:
                bar.update(progress_queue.get(timeout=0.2))
            except queue.Empty:
                pass
        try:
            results = [job.result() for job in pending]
        except BrokenProcessPool as err:
            raise HoldposeError(
                "a worker process died before finishing. If you call holdpose from your own script, put the "
                "calls under `if __name__ == \"__main__\":` (worker processes start by importing the script, "
                "see 'Safe importing of main module' in Python's multiprocessing docs); or pass workers=1") from err
    except BaseException:
        # Ctrl-C, SIGTERM or a worker's error: stop the other workers now rather than wait for
        # their chunks (the executor's own shutdown would wait, ~minutes on a long video).
        stop_pool(pool)
        raise
    finally:
        progress_queue.cancel_join_thread()  # never block exit on a queue nobody reads any more
    pool.shutdown()
    return results


def spawn_pool(processes: int, progress_queue=None) -> ProcessPoolExecutor:
    """A pool of ``processes`` spawned workers that die with this process and keep native
    libraries' notices off the terminal (unless holdpose logs at DEBUG); ``progress_queue``
    (a spawn context's Queue) is where :func:`run_chunks`' workers count their frames.

    Spawn, not fork: a parent that already runs MediaPipe (or any library's threads) can
    deadlock a forked child. An executor rather than a Pool: when a worker dies, a Pool
    quietly starts another one (forever, if every start fails), while an executor reports it."""
    quiet = not logging.getLogger("holdpose").isEnabledFor(logging.DEBUG)
    return ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(progress_queue, quiet, os.getpid()))


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes and reap them (at most ~1 s)."""
    processes = list((pool._processes or {}).values())  # the executor offers no public way to kill them
    for process in processes:
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=1)
