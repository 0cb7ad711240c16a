"""The animation backends: the one place their names appear.

Adding a backend is one module (an :class:`~holdpose.animate.base.Animator` subclass with
its option dataclasses) and one line here; ``holdpose animate --backend NAME`` and
:func:`holdpose.animate.animate` then offer it, with its flags. See ``docs/backends.md``.
Modules are imported when a backend is asked for, so listing names costs nothing.
"""

from __future__ import annotations

import importlib

from holdpose.errors import HoldposeError

# name -> "module:class"
BACKENDS: dict[str, str] = {
    "warp": "holdpose.animate.warp:WarpAnimator",
    "controlnet": "holdpose.animate.diffusion.controlnet:ControlNetAnimator",
    "animatediff": "holdpose.animate.diffusion.animatediff:AnimateDiffAnimator",
    "posecrafter": "holdpose.animate.diffusion.posecrafter.animator:PoseCrafterAnimator",
    "stablepose": "holdpose.animate.diffusion.stablepose.animator:StablePoseAnimator",
    "dispose": "holdpose.animate.diffusion.dispose.animator:DisPoseAnimator",
}
DEFAULT_BACKEND = "warp"


def backend_names() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> type:
    """The :class:`~holdpose.animate.base.Animator` subclass registered as ``name``."""
    if name not in BACKENDS:
        raise HoldposeError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)
