"""For the batch tests and bench: short clips cut from the fixture videos at test time, corrupt
copies, and a thread that kills a Ray worker running a batch job, by pid."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np

from holdpose.io.video import FrameSource, open_writer

# (fixture video, start second): 12 cuts over the dance and the talking head
CUTS = [("dance_musepose_dance.mp4", s) for s in (0, 1.5, 3, 4.5, 6, 7.5, 9)] + \
       [("talk_animateanyone_talkinghead_3.mp4", s) for s in (0, 0.8, 1.6, 2.4)] + \
       [("posevid_animateanyone_anyone-video-1_kps.mp4", 1.0)]


def cut_clip(source: Path, output: Path, start: float, seconds: float, *, short_side: int | None = None) -> Path:
    """Frames [start, start + seconds) of ``source`` re-encoded to ``output`` (H.264)."""
    probe = FrameSource(source)
    first = int(round(start * probe.fps))
    frames = FrameSource(source, short_side=short_side, start=first, stop=first + int(round(seconds * probe.fps)))
    with open_writer(output, fps=frames.fps, size=frames.size) as writer:
        for frame in frames:
            writer.write(frame)
    return output


def cut_clips(videos_dir: Path, out_dir: Path, cuts=CUTS, *, seconds: float = 2.0,
              short_side: int | None = 256) -> list[Path]:
    """``cuts`` ((fixture video, start second) pairs) as ``clip_00.mp4``... in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [cut_clip(videos_dir / name, out_dir / f"clip_{i:02d}.mp4", start, seconds, short_side=short_side)
            for i, (name, start) in enumerate(cuts)]


def truncate_copy(source: Path, output: Path, keep: float = 0.4) -> Path:
    """The first ``keep`` of ``source``'s bytes: the container says more frames than there are."""
    data = source.read_bytes()
    output.write_bytes(data[: int(len(data) * keep)])
    return output


def garble_copy(source: Path, output: Path, seed: int = 0) -> Path:
    """``source`` with its first 4 KB (the container header) replaced by noise."""
    shutil.copyfile(source, output)
    noise = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with open(output, "r+b") as f:
        f.write(noise)
    return output


def ray_job_workers() -> list[int]:
    """Pids of Ray worker processes running a batch job now (Ray titles them ``ray::run_job``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::run_job"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(pids)


class WorkerKiller(threading.Thread):
    """SIGKILLs one Ray worker ``after`` seconds after the first job is seen running; ``killed``
    is its pid (None if no job ran within ``patience`` seconds), ``at`` the seconds since start."""

    def __init__(self, after: float, patience: float = 300):
        super().__init__(daemon=True)
        self.after, self.patience, self.killed, self.at = after, patience, None, None

    def run(self):
        start = time.time()
        while time.time() - start < self.patience and not ray_job_workers():
            time.sleep(0.05)
        time.sleep(self.after)
        running = ray_job_workers()
        if running:
            os.kill(running[-1], signal.SIGKILL)
            self.killed, self.at = running[-1], round(time.time() - start, 2)
