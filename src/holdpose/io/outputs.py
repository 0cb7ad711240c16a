"""Checks on an output path made before any work starts, so a long run never fails at
its end on something that was knowable at its start.

:func:`check_output` refuses an output that is one of the inputs, has a suffix the
command does not write, or lies under a file or a folder that cannot be written. What
cannot be known in advance (a full disk, ``/proc``) is reported by the CLI as one line
naming the path and the reason (see :func:`describe_os_error`).
"""

from __future__ import annotations

import os
from pathlib import Path

from holdpose.errors import HoldposeError

POSE_SUFFIXES = (".json", ".npz", "")  # "" is a folder of one JSON per frame


def check_output(output: str | os.PathLike, *, inputs=(), suffixes=None, what: str = "output",
                 folder: bool = False) -> Path:
    """``output`` as a Path after the checks; raises :class:`HoldposeError` naming it and the fix.

    Args:
        inputs: paths the command reads (None entries ignored); writing over one is refused.
        suffixes: the suffixes it may have (lower case, ``""`` for a folder); None: any.
        folder: the output is a folder (it may exist as a folder, not as a file).
    """
    path = Path(output)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        shown = ", ".join(s or "a folder (no suffix)" for s in suffixes)
        raise HoldposeError(f"{path}: {what} must be {shown}; got {path.suffix or 'no suffix'}")
    for source in inputs:
        if source is not None and _same_path(path, Path(source)):
            raise HoldposeError(f"{path}: {what} is also an input; write it to another path")
    if folder and path.exists() and not path.is_dir():
        raise HoldposeError(f"{path}: is a file, not a folder; the {what} is a folder")
    if not folder and path.is_dir() and path.suffix:
        raise HoldposeError(f"{path}: is a folder; the {what} is a file")
    _check_parent_writable(path, what)
    return path


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        return False
    return a.resolve() == b.resolve()


def _check_parent_writable(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder we can create a file in: tried
    for real with a temporary file, since permission bits do not tell a read-only or special
    file system (``/proc``), nor what root may do."""
    import tempfile

    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise HoldposeError(f"{path}: cannot create the {what}: {parent} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".holdpose-probe-"):
            pass
    except OSError as err:
        raise HoldposeError(f"{path}: cannot create the {what} in {parent}: {err.strerror or err}") from err


def describe_os_error(err: OSError) -> str:
    """One line for an OS error: the path(s) it names and the reason, e.g.
    ``out/x.json: No space left on device``."""
    import re

    reason = err.strerror or str(err) or type(err).__name__
    # a temporary file of atomic_path (".NAME.PID.partial") is named as the output it becomes
    names = [re.sub(r"(^|/)\.([^/]+)\.\d+\.partial$", r"\1\2", str(n)) for n in (err.filename, err.filename2)
             if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason
