"""The research systems' trainers: the one place their names appear for ``holdpose train``.

A trainer is a light module (no torch at import, so ``holdpose --help`` stays fast) with
``add_arguments(parser)`` and ``run(args)``; it lives beside its system under
``holdpose.animate.diffusion`` and is listed here as ``name -> module``. The shared
mechanisms (loop, checkpoints, side networks, injection) are in :mod:`holdpose.train`.
"""

from __future__ import annotations

# name -> module with add_arguments(parser) and run(args); each also has a one-line HELP string
TRAINERS: dict[str, str] = {
    "posecrafter": "holdpose.animate.diffusion.posecrafter.cli",
    "stablepose": "holdpose.animate.diffusion.stablepose.cli",
    "dispose": "holdpose.animate.diffusion.dispose.cli",
}

