"""The one interface every animation backend implements (how to add one: ``docs/backends.md``).

A backend makes a reference character follow a pose sequence::

    animator = WarpAnimator(rig)                           # set up once (models, caches)
    for frame in animator(reference, poses, seed=0):       # uint8 [H, W, 3] RGB, one per pose frame
        writer.write(frame)

``reference`` is the character's photo, ``uint8 [H, W, 3]`` RGB; ``poses`` a
:class:`~holdpose.sequence.PoseSequence` already aligned to the character (see
:func:`holdpose.refine.align.align_to_reference`) on the canvas of the output.
Frames are yielded as they are made, so memory does not grow with the clip and a
caller can write (and resume) as it goes. Every backend takes the same keyword
names for the same things (``seed``, ``num_inference_steps``, ``guidance_scale``,
``callback``).

A backend declares its options as two dataclasses (:mod:`holdpose.animate.options`):
``model_options_class`` (its constructor's keywords) and ``options_class`` (its call's
keywords). :func:`holdpose.animate.animate` checks both before anything loads, then
builds the backend with :meth:`Animator.from_options`.

``pose_style`` names the pose-map style (:data:`holdpose.render.openpose.STYLES`)
the backend's model was trained on, so callers render the right maps for it.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from holdpose.animate.options import Options
from holdpose.errors import HoldposeError
from holdpose.io.video import check_rgb_image
from holdpose.sequence import PoseSequence

FrameCallback = Callable[[int, np.ndarray], None]


class Animator:
    """Base class of animation backends.

    Class attributes a backend sets:
        name: its name in the registry (:mod:`holdpose.animate.registry`).
        pose_style: the pose-map style its model reads.
        options_class, model_options_class: its option dataclasses (:class:`Options`
            subclasses; the base :class:`Options` for none).
        resumable: True when ``__call__`` takes ``start_frame`` and skips the frames
            before it (otherwise a resumed run re-makes them and drops them).
        keep_frames: whether :func:`holdpose.animate.animate` keeps the PNG frames beside
            the video by default (worth it when a frame costs seconds).
        can_regenerate: True when :meth:`regenerate` can make a frame again differently
            (``verify=True`` retries the frames that drift; a deterministic backend only
            records its verdicts).
        single_image: True when one pose and a prompt make an image without a reference
            photo (``holdpose generate``; the reference then only sets the canvas).
        reference_help: what the backend's reference argument is, for ``--help`` (a photo
            unless :meth:`load_character` says otherwise).
    """

    name: str = "base"
    pose_style: str = "openpose_full"
    options_class: type[Options] = Options
    model_options_class: type[Options] = Options
    resumable: bool = False
    keep_frames: bool = False
    can_regenerate: bool = False
    single_image: bool = False
    reference_help: str = "the character's photo"

    @classmethod
    def load_character(cls, reference):
        """The :class:`~holdpose.animate.character.Character` that :func:`holdpose.animate.animate`'s
        ``reference`` names for this backend, or None (the default) for a photo, which
        ``animate`` reads itself (a path or ``uint8 [H, W, 3]``; a Character as it is). A backend
        whose reference is something else (PoseCrafter: a tuned folder) returns its own Character."""
        return None

    def __call__(self, reference: np.ndarray, poses: PoseSequence, *, seed: int = 0,
                 callback: FrameCallback | None = None, **options) -> Iterator[np.ndarray]:
        raise NotImplementedError

    @classmethod
    def check_options(cls, model_options: dict, options: dict) -> None:
        """Check the options before anything is loaded or written; raises :class:`HoldposeError`
        naming the option. The default builds both dataclasses (unknown names are refused)."""
        cls.model_options_class.from_kwargs(model_options, cls.name)
        cls.options_class.from_kwargs(options, cls.name)

    @classmethod
    def from_options(cls, character, model_options: dict, options: dict) -> tuple["Animator", dict]:
        """Build the backend for ``character`` (a :class:`~holdpose.animate.character.Character`;
        load its models) and return it with the
        keyword arguments of its call. Backends that need the character's rig or pose
        (to start from the warp animator, to anchor on the reference pose) override this."""
        return cls(**model_options), dict(options)

    def retry_options(self, reference: np.ndarray, options: dict, attempt: int) -> dict:
        """The call options of retry ``attempt`` (1, 2, ...) of a frame that drifted; backends
        with a control strength raise it on later tries. The default changes nothing (the
        retry differs by its seed)."""
        return dict(options)

    def regenerate(self, reference: np.ndarray, poses: PoseSequence, index: int, *, seed: int, attempt: int,
                   **options) -> np.ndarray:
        """Frame ``index`` made again for retry ``attempt``: the seed is derived from (seed,
        index, attempt), so a resumed run retries exactly as an uninterrupted one did. The
        default runs a resumable backend from ``start_frame=index`` and keeps its first frame."""
        if not (self.can_regenerate and self.resumable):
            raise HoldposeError(f"the {self.name} backend cannot make a frame again")
        frames = self(reference, poses, seed=retry_seed(seed, index, attempt), start_frame=index,
                      **self.retry_options(reference, options, attempt))
        try:
            return next(iter(frames))
        finally:
            if hasattr(frames, "close"):
                frames.close()


def retry_seed(seed: int, index: int, attempt: int) -> int:
    """The seed of retry ``attempt`` of frame ``index`` (attempt 0 is the run's own seed)."""
    return seed if attempt == 0 else derive_seed(seed, RETRY_KEY, index, attempt)


RETRY_KEY = 7  # keeps retry seeds apart from the frame noise seeds (keys 1, 2)


def check_reference(reference: np.ndarray) -> np.ndarray:
    """Validate a reference image: ``uint8 [H, W, 3]``."""
    return check_rgb_image(reference, "reference")


def check_poses(poses: PoseSequence, reference: np.ndarray | None = None) -> PoseSequence:
    """Validate a pose sequence for animation: not empty, and on the reference's canvas if given."""
    if not isinstance(poses, PoseSequence):
        raise HoldposeError(f"poses must be a PoseSequence, got {type(poses).__name__}")
    if poses.num_frames == 0:
        raise HoldposeError("the pose sequence has no frames")
    if reference is not None and poses.size != (reference.shape[1], reference.shape[0]):
        raise HoldposeError(
            f"poses.size {poses.size} differs from the reference image {(reference.shape[1], reference.shape[0])}; "
            "run `holdpose align` with this reference first (it puts the poses on the reference's canvas)")
    return poses.validate()


def check_seed(seed) -> int:
    """``seed`` as an int in ``[0, 2**63)``; else a :class:`HoldposeError`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise HoldposeError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed derived from ``seed`` and ``key`` (numpy's SeedSequence hashing): the
    noise of frame i, the seed of retry k of frame i ... each independent of the others."""
    state = np.random.SeedSequence([int(seed), *[int(k) for k in key]]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))
