"""What every benchmark records beside its numbers, and the small helpers they share."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_state() -> str:
    """Short commit of the measured code, with "+dirty" when tracked files were changed."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def rel(path: Path) -> str:
    """``path`` relative to the repository, for reports that read the same on every machine."""
    try:
        return os.path.relpath(Path(path).resolve(), REPO)
    except ValueError:
        return str(path)


def load() -> list[float]:
    """The machine's load averages (1, 5, 15 min): timings taken under load say so."""
    return [round(v, 2) for v in os.getloadavg()]


def video_ok(path: Path, frames: int, size: tuple[int, int]) -> bool:
    """Whether a benchmark input made by an earlier run is there and whole (else it is rewritten)."""
    from holdpose.io.video import FrameSource

    if not path.is_file():
        return False
    try:
        source = FrameSource(path)
    except Exception:  # noqa: BLE001 - a damaged leftover is simply rewritten
        return False
    return source.num_frames == frames and tuple(source.size) == tuple(size)


def holdpose_prefix() -> list[str]:
    """The installed ``holdpose`` command of this venv (or ``python -m holdpose.cli``)."""
    exe = Path(sys.executable).parent / "holdpose"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "holdpose.cli"]


def run_process(cmd: list[str], *, monitor=None) -> dict:
    """Run ``cmd`` from the repo root: wall-clock seconds from launch to exit, CPU seconds
    of it and every descendant it reaped, and its stdout. stderr (MediaPipe logs there) is
    shown only when the command fails, which stops the benchmark.

    ``monitor(pid)``, when given, is started once the process exists and must return an
    object with ``finish() -> dict``, called after the exit; its dict joins the result
    (bench_extract samples the process tree's memory this way)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = monitor(proc.pid) if monitor is not None else None
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    extra = watcher.finish() if watcher is not None else {}
    if proc.returncode != 0:
        sys.stderr.write(stderr[-5000:])
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # counts every reaped descendant
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "stdout": stdout, **extra}


def dance_bench_arguments(description: str, argv=None) -> argparse.Namespace:
    """``--label`` (names the result file and the contact sheets) and ``--stride`` (every Nth
    frame of the fixture dance) of the warp animator's look benches."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="after", help="names the result file and the contact sheets")
    parser.add_argument("--stride", type=int, default=3, help="use every Nth frame of the dance")
    return parser.parse_args(argv)
