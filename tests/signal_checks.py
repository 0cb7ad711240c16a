"""Stop holdpose with a signal mid-run and check what is left: the exit code and time, the
one message, temporary files, and worker processes that outlive their parent.

Shared by tests/test_signals.py and bench/bench_reliability.py (the README's figures).
Linux only (reads /proc).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXIT_LIMIT_SECONDS = 2.0


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren ...)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it yet


def make_video(path: Path, frames: int = 240, size=(160, 120)) -> Path:
    """A small video long enough for two extraction workers of a few seconds each."""
    from holdpose.io.video import VideoWriter

    rng = np.random.default_rng(0)
    with VideoWriter(path, fps=24, size=size) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 255, (size[1], size[0], 3), np.uint8))
    return path


def holdpose_command(*args) -> list[str]:
    return [sys.executable, "-m", "holdpose.cli", "-q", *map(str, args)]


def stop_mid_run(command: list[str], sig: int, *, ready, out_dir: Path, timeout: float = 120) -> dict:
    """Start ``command``, wait until ``ready(pid)`` is true, send ``sig`` to the parent alone,
    and report: exit code, seconds to exit, stderr, workers seen, survivors two seconds after
    the exit, and files left in ``out_dir``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C's default action, as in a terminal: a shell's background job starts with SIGINT ignored
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while not ready(proc.pid):
        seen |= descendants(proc.pid)
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"{command} ended or hung before it was ready: {err[-2000:]}")
        time.sleep(0.1)
    time.sleep(0.5)  # well into the work
    seen |= descendants(proc.pid)
    start = time.monotonic()
    os.kill(proc.pid, sig)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # orphaned workers hold the pipes open: stop reading them
        proc.kill()
        proc.wait()
        stderr = "(not read: the pipe stayed open after the parent's end)"
    seconds = time.monotonic() - start
    grace = time.monotonic() + EXIT_LIMIT_SECONDS
    while any(alive(pid) for pid in seen) and time.monotonic() < grace:
        time.sleep(0.05)
    return {"exit_code": proc.returncode, "seconds_to_exit": round(seconds, 3), "stderr": stderr.strip(),
            "workers_seen": len(seen), "survivors": sorted(pid for pid in seen if alive(pid)),
            "left_in_output": sorted(p.name for p in out_dir.iterdir())}


def workers_running(count: int):
    """``ready`` for :func:`stop_mid_run`: ``count`` spawned worker processes are up."""
    def ready(pid: int) -> bool:
        workers = 0
        for child in descendants(pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            workers += b"spawn_main" in cmdline
        return workers >= count
    return ready


def partial_exists(folder: Path):
    """``ready`` for :func:`stop_mid_run`: a temporary ``.partial`` is being written in ``folder``."""
    return lambda pid: any(p.name.endswith(".partial") for p in folder.iterdir())


def long_pose_file(path: Path) -> Path:
    """3000 frames of one random 512x512 pose: a render of it takes several seconds."""
    from holdpose.io.posefile import save_poses
    from holdpose.sequence import PoseSequence

    poses = PoseSequence.empty(3000, 1, size=(512, 512))
    poses.scores[:] = 1
    poses.keypoints[:] = np.random.default_rng(0).uniform(50, 450, poses.keypoints.shape)
    save_poses(poses, path)
    return path


def run_signal_checks() -> dict:
    """The figures: extraction with two workers stopped by SIGTERM, SIGINT and SIGKILL (parent
    only), a single-process render stopped by SIGTERM, and a run after a killed one."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = make_video(tmp / "clip.mp4")
        for name, sig in (("extract_sigterm", signal.SIGTERM), ("extract_sigint", signal.SIGINT),
                          ("extract_sigkill", signal.SIGKILL)):
            out = tmp / name
            out.mkdir()
            results[name] = stop_mid_run(holdpose_command("extract", video, "-o", out / "p.json", "--workers", 2),
                                         sig, ready=workers_running(2), out_dir=out)
        long_pose_file(tmp / "long.npz")
        out = tmp / "render_sigterm"
        out.mkdir()
        results["render_sigterm"] = stop_mid_run(holdpose_command("render", tmp / "long.npz", "-o", out / "m.mp4"),
                                                 signal.SIGTERM, ready=partial_exists(out), out_dir=out)
    return results
