"""Write outputs so that an interrupted or failed run never leaves a half-written file.

Everything is written under a temporary name beside the target and renamed into
place at the end; ``os.replace`` is atomic on one filesystem.
"""

from __future__ import annotations

import contextlib
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    _remove(tmp)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if directory and target.exists():
        _remove(target)
    os.replace(tmp, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
