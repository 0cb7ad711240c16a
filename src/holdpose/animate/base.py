"""The one interface every animation backend implements.

A backend makes a reference character follow a pose sequence::

    animator = WarpAnimator()                      # set up once (models, caches)
    for frame in animator(reference, poses, seed=0):   # uint8 [H, W, 3] RGB, one per pose frame
        writer.write(frame)

``reference`` is the character's photo, ``uint8 [H, W, 3]`` RGB; ``poses`` a
:class:`~holdpose.sequence.PoseSequence` already aligned to the character (see
:func:`holdpose.refine.align.align_to_reference`) on the canvas of the output.
Frames are yielded as they are made, so memory does not grow with the clip and a
caller can write (and resume) as it goes. Every backend takes the same keyword
names for the same things (``seed``, ``num_inference_steps``, ``guidance_scale``,
``callback``); a backend ignores what does not apply to it and says so in its docstring.

``pose_style`` names the pose-map style (:data:`holdpose.render.openpose.STYLES`)
the backend's model was trained on, so callers render the right maps for it.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

FrameCallback = Callable[[int, np.ndarray], None]


class Animator:
    """Base class of animation backends."""

    name: str = "base"
    pose_style: str = "openpose_full"

    def __call__(self, reference: np.ndarray, poses: PoseSequence, *, seed: int = 0,
                 callback: FrameCallback | None = None, **options) -> Iterator[np.ndarray]:
        raise NotImplementedError


def check_reference(reference: np.ndarray) -> np.ndarray:
    """Validate a reference image: ``uint8 [H, W, 3]``."""
    reference = np.asarray(reference)
    if reference.ndim != 3 or reference.shape[2] != 3 or reference.dtype != np.uint8:
        raise HoldposeError(f"reference must be an RGB uint8 image [H, W, 3], got {reference.dtype} "
                            f"{list(reference.shape)}")
    return reference


def check_poses(poses: PoseSequence, reference: np.ndarray | None = None) -> PoseSequence:
    """Validate a pose sequence for animation: not empty, and on the reference's canvas if given."""
    if poses.num_frames == 0:
        raise HoldposeError("the pose sequence has no frames")
    if reference is not None and poses.size != (reference.shape[1], reference.shape[0]):
        raise HoldposeError(
            f"poses.size {poses.size} differs from the reference image {(reference.shape[1], reference.shape[0])}; "
            "run `holdpose align` with this reference first (it puts the poses on the reference's canvas)")
    return poses.validate()
