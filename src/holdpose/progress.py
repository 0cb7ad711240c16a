"""Progress bars on stderr for long work; silent when stderr is not a terminal (CI logs, pipes)."""

from __future__ import annotations


def progress_bar(iterable=None, *, total: int | None = None, desc: str = "", enabled: bool = True, unit: str = "frame",
                 initial: int = 0):
    """A tqdm bar; ``initial`` counts work already done (a resumed run starts its bar there)."""
    import shutil

    from tqdm import tqdm

    from holdpose.quiet import stderr_is_terminal

    # Off when stderr is not a terminal; asked of holdpose.quiet, since stderr may be its noise filter's pipe
    # (which is also why the width comes from the terminal, not from stderr).
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, ncols=shutil.get_terminal_size().columns,
                initial=initial, disable=not (enabled and stderr_is_terminal()))
