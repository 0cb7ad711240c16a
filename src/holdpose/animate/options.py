"""Backend options as dataclasses, with what the CLI needs to offer them as flags.

Every backend declares two dataclasses (see ``docs/backends.md``): the options of its
constructor (``model_options_class``: which models to load, on which device) and the
options of its call (``options_class``: prompt, steps ...). Each field is made with
:func:`option`, whose help text and flag spelling ``holdpose animate`` turns into a
command-line flag, so the flags, their help and the "only for backend X" checks all come
from these declarations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from holdpose.errors import HoldposeError


def option(default: Any = None, help: str = "", *, flag: str | None = None, cli: bool = True,
           type: Callable | None = None, action: str | None = None, choices: tuple | None = None,
           metavar: str | None = None) -> Any:
    """A dataclass field of backend options.

    Args:
        default: the value when the option is not given (immutable: a str, number, None).
        help: one line for ``--help``.
        flag: the flag's name without dashes when it differs from the field's
            (``steps`` for ``num_inference_steps``).
        cli: False for options only the Python API can pass (arrays, animators).
        type, action, choices, metavar: as :meth:`argparse.ArgumentParser.add_argument`
            takes them; a bool field defaults to ``action="store_true"``.
    """
    metadata = {"help": help, "flag": flag, "cli": cli, "type": type, "action": action, "choices": choices,
                "metavar": metavar}
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    """``--steps`` for a field declared with ``flag="steps"``, else ``--field-name``."""
    return "--" + (field.metadata.get("flag") or field.name).replace("_", "-")


@dataclass
class Options:
    """Base of every backend's option dataclasses (a backend without options uses it as is)."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls, options: dict, backend: str):
        """The options from keyword arguments; an unknown name is an error that lists the valid ones."""
        names = cls.names()
        unknown = [name for name in options if name not in names]
        if unknown:
            takes = ", ".join(sorted(names)) if names else "no options"
            raise HoldposeError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                                f"for the {backend} backend; it takes: {takes}")
        return cls(**options)


def check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int when it is an integer >= ``minimum``; else a :class:`HoldposeError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__") or value < minimum:
        raise HoldposeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(value, name: str, low: float | None = None, high: float | None = None, *,
                low_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``); else an error naming it."""
    from holdpose.limits import in_range

    return in_range(value, name, low, high, low_open=low_open)
