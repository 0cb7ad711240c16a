"""Progress bars on stderr for long work; silent when stderr is not a terminal (CI logs, pipes)."""

from __future__ import annotations


def progress_bar(iterable=None, *, total: int | None = None, desc: str = "", enabled: bool = True, unit: str = "frame",
                 initial: int = 0):
    """A tqdm bar; ``initial`` counts work already done (a resumed run starts its bar there)."""
    from tqdm import tqdm

    # disable=None lets tqdm switch itself off when stderr is not a TTY.
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, initial=initial,
                disable=None if enabled else True)
