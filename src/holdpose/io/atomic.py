"""Write outputs so that an interrupted or failed run never leaves a half-written file.

Everything is written under a temporary name beside the target and renamed into
place at the end; ``os.replace`` is atomic on one filesystem.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False):
    """Yield a temporary path beside ``path``; on success move it to ``path``, on error delete it.

    With ``directory=True`` the temporary path is a fresh folder and an existing
    folder at ``path`` is replaced as a whole.
    """
    target = Path(path)
    created = _missing_ancestor(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    remove_stale_partials(target)
    _remove(tmp)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        _remove_empty_folders(target.parent, created)
        raise
    if directory and target.exists():
        _remove(target)
    os.replace(tmp, target)


def _missing_ancestor(target: Path) -> Path | None:
    """The outermost folder of ``target``'s parents that does not exist yet (None: all exist)."""
    missing = None
    for parent in target.parents:
        if parent.exists():
            break
        missing = parent
    return missing


def _remove_empty_folders(folder: Path, up_to: Path | None) -> None:
    """Remove the folders this call created for a failed output, if they are still empty."""
    if up_to is None:
        return
    for parent in [folder, *folder.parents]:
        try:
            parent.rmdir()
        except OSError:
            return
        if parent == up_to:
            return


def remove_stale_partials(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary files or folders of ``target`` left by runs that died (killed
    with SIGKILL, power lost): ``.NAME.PID.partial`` whose PID is no running process.
    Returns what was removed."""
    target = Path(target)
    removed = []
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
        pid = stale.name[len(target.name) + 2:-len(".partial")]
        if pid.isdigit() and not _process_alive(int(pid)):
            _remove(stale)
            removed.append(stale)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier call: not in use
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (what a manifest records to check a file
    was written whole and not changed since)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
