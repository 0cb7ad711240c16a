"""Errors a user can act on.

The CLI prints a :class:`HoldposeError` as one line on stderr and exits non-zero;
anything else is a bug and keeps its traceback.
"""


class HoldposeError(Exception):
    """A problem with the user's input, files or environment, with a message saying what to do."""


class MissingDependencyError(HoldposeError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


def require(module: str, extra: str | None = None, *, package: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` with the pip command that installs it:
    ``pip install "holdpose[extra]"``, or ``pip install package`` for a core dependency."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = f'"holdpose[{extra}]"' if extra else (package or module)
        raise MissingDependencyError(f"{module} is not installed; run: pip install {what}") from err
