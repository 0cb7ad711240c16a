"""Quiet native libraries: C/C++ code (MediaPipe, TFLite, libpng) writes notices straight to
file descriptor 2, bypassing Python's logging, so only a descriptor swap keeps them off the
user's terminal. Python errors still arrive as exceptions; ``holdpose -vv`` (DEBUG
logging) keeps the native output."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading

# What native libraries print on their own, never useful to a user: TFLite's delegate notice,
# glog/absl lines (MediaPipe), libpng's complaints before OpenCV reports the failure itself.
NATIVE_NOISE = re.compile(rb"^(INFO: Created TensorFlow Lite|libpng (warning|error):|WARNING: All log messages before "
                          rb"absl::InitializeLog|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\])")


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


@contextlib.contextmanager
def native_noise_filtered():
    """While the block runs, everything written to file descriptor 2 (Python's stderr and C
    libraries' alike) passes through a filter that drops :data:`NATIVE_NOISE` lines. MediaPipe
    prints some notices from its own threads after the call that caused them has returned, so
    only a filter on the descriptor catches them all. Off when holdpose logs at DEBUG (-vv)."""
    if logging.getLogger("holdpose").isEnabledFor(logging.DEBUG):
        yield
        return
    import sys

    global _filtered_terminal
    sys.stderr.flush()
    _filtered_terminal = os.isatty(2)
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    done = threading.Event()
    pump = threading.Thread(target=_pump, args=(read_end, original, done), daemon=True,
                            name="holdpose-stderr-filter")
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)
        # Other processes (the multiprocessing resource tracker) may hold the pipe open, so
        # the pump does not wait for its end: it passes on what is there and stops. On a busy
        # machine the pump may not run for a while: wait long enough that the last line (often
        # the one error line) is never lost.
        done.set()
        pump.join(timeout=30)
        os.close(original)
        _filtered_terminal = None


_filtered_terminal: bool | None = None  # whether fd 2 was a terminal before the filter took it over


def stderr_is_terminal() -> bool:
    """Whether the user's stderr is a terminal (progress bars are drawn only then), also while
    :func:`native_noise_filtered` has put a pipe in its place."""
    return os.isatty(2) if _filtered_terminal is None else _filtered_terminal


def _pump(read_end: int, out: int, done: threading.Event) -> None:
    """Copy ``read_end`` to ``out`` line by line, without noise, until the pipe ends or ``done``
    is set and nothing is left to read; an unfinished line (a progress bar's "\\r" update) goes
    out at once unless it may be the start of a noise line."""
    import select

    pending = b""
    with open(read_end, "rb", buffering=0) as pipe:
        while True:
            readable, _, _ = select.select([pipe], [], [], 0.05)
            if not readable:
                if done.is_set():
                    break
                continue
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not NATIVE_NOISE.match(line))
            if pending and not _may_be_noise(pending):
                kept, pending = kept + pending, b""
            if kept:
                os.write(out, kept)
    if pending and not NATIVE_NOISE.match(pending):
        os.write(out, pending)


def _may_be_noise(start: bytes) -> bool:
    prefixes = (b"INFO: Created TensorFlow Lite", b"libpng", b"WARNING: All log messages")
    return any(p.startswith(start[:len(p)]) for p in prefixes) or re.match(rb"^[IWE]\d", start) is not None
