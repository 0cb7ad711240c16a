"""What every benchmark records beside its numbers, and the small helpers they share."""

from __future__ import annotations

import os
import subprocess
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
