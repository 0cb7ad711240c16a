"""Quiet native libraries: C/C++ code (MediaPipe, TFLite, libpng) writes notices straight to
file descriptor 2, bypassing Python's logging, so only a descriptor swap keeps them off the
user's terminal. Python errors still arrive as exceptions; ``holdpose -vv`` (DEBUG
logging) keeps the native output."""

from __future__ import annotations

import contextlib
import logging
import os


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null while the block runs (unless holdpose logs at DEBUG)."""
    if logging.getLogger("holdpose").isEnabledFor(logging.DEBUG):
        yield
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
