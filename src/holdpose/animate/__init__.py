"""The animate stage: :func:`animate` makes a reference character follow a pose sequence,
with any backend of :mod:`holdpose.animate.registry` (how to add one: ``docs/backends.md``)."""

from holdpose.animate.api import AnimateResult, animate, generate_image

__all__ = ["AnimateResult", "animate", "generate_image"]
