"""``animate()``: the one entry to the animate stage, for the CLI, the demo and users.

    from holdpose.animate import animate
    result = animate("ref.png", "poses.json", "out.mp4")                       # embedded warp puppet
    result = animate("ref.png", "poses.json", "out.mp4", backend="controlnet",
                     prompt="a dancer", num_inference_steps=20, seed=42)      # needs the diffusion extra

Every backend goes the same way: options checked before anything loads, the poses
aligned to the character, frames written one by one into ``out.frames/`` with a manifest
(an interrupted run continues there, see :mod:`holdpose.animate.resume`), the video
encoded from them, and the poses the animation follows written to ``out.poses.json``
(the target of ``holdpose evaluate``).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from holdpose.animate.base import check_seed
from holdpose.errors import HoldposeError
from holdpose.people import choose_people
from holdpose.sequence import PoseSequence

if TYPE_CHECKING:
    from holdpose.animate.character import Character

logger = logging.getLogger(__name__)


@dataclass
class AnimateResult:
    """What :func:`animate` wrote.

    Attributes:
        video_path: the animation (``.mp4``).
        poses_path: the poses it follows, beside it (``OUT.poses.json``).
        frames_dir: the run's folder (``OUT.frames/``: PNG frames and manifest), or None
            when the frames were removed after encoding (``keep_frames=False``).
        num_frames: frames in the animation.
        resumed_from: frames an interrupted run had made and this one kept.
        size: ``(width, height)``; fps: frame rate.
        verdicts_path: with ``verify``, every frame's tries and verdicts (``OUT.verdicts.jsonl``).
    """

    video_path: Path
    poses_path: Path
    frames_dir: Path | None
    num_frames: int
    resumed_from: int
    size: tuple[int, int]
    fps: float
    verdicts_path: Path | None = None


def frames_dir_for(output: str | os.PathLike) -> Path:
    """Where a run into ``output`` keeps its frames and manifest: ``OUT.frames/``."""
    return Path(output).with_suffix(".frames")


def animate(reference: str | os.PathLike | np.ndarray | "Character", poses: str | os.PathLike | PoseSequence,
            output: str | os.PathLike, *, backend: str = "warp", align: bool = True, person: int | str | None = None,
            seed: int = 0, overwrite: bool = False, keep_frames: bool | None = None,
            side_by_side: str | os.PathLike | None = None, contact_sheet: str | os.PathLike | None = None,
            verify=None, progress: bool = True, **options) -> AnimateResult:
    """Make the character in ``reference`` follow ``poses``; write ``output`` (an ``.mp4``).

    Args:
        reference: the character: what the backend's
            :meth:`~holdpose.animate.base.Animator.load_character` takes. For most backends its
            photo: a path, ``uint8 [H, W, 3]`` RGB, or a
            :class:`~holdpose.animate.character.Character` (to reuse its rig or pose); for
            ``posecrafter`` the folder ``holdpose tune`` wrote.
        poses: a pose file (OpenPose JSON, NPZ, folder) or a :class:`PoseSequence`.
        output: the video to write (``.mp4``).
        backend: a name of :data:`holdpose.animate.registry.BACKENDS`.
        align: give the poses the character's bone lengths, size and placement first
            (False when they already are on the reference's canvas).
        person: who of ``poses`` to animate: a track id, ``"largest"``, ``"longest"`` or
            ``"all"`` (default: all; the warp puppet follows the first slot); see
            :mod:`holdpose.people`.
        seed: same seed and inputs, same frames.
        overwrite: start over when ``OUT.frames/`` holds a run with other parameters.
        keep_frames: keep ``OUT.frames/`` after encoding (default: the backend's choice,
            kept for diffusion backends).
        side_by_side: also write pose map | overlay | frame to this video.
        contact_sheet: also write a PNG of a few frames above their pose overlays.
        verify: closed-loop adherence, a :class:`holdpose.evaluate.closed_loop.VerifySettings`:
            each frame is judged against its pose as it is made and the ones that drift are
            made again; the verdicts are written beside the video (``OUT.verdicts.jsonl``).
        progress: show progress bars.
        **options: the backend's options: the fields of its ``model_options_class``
            (models, device ...) and ``options_class`` (prompt, steps ...).

    Returns:
        :class:`AnimateResult`. Raises :class:`HoldposeError` for anything the user can fix,
        before any model loads where it can be known then.
    """
    from holdpose.animate.character import Character
    from holdpose.animate.registry import get_backend
    from holdpose.animate.resume import VERDICTS_NAME, run_animation

    # 1. Check inputs: the backend and its options, the output, before anything heavy
    cls = get_backend(backend)
    model_options, call_options = split_options(cls, options)
    cls.check_options(model_options, call_options)
    output = Path(output)
    if output.suffix.lower() != ".mp4":
        raise HoldposeError(f"{output}: animate writes an .mp4 video (its frames go to {frames_dir_for(output)}/)")
    _check_outputs(output, reference, poses, side_by_side, contact_sheet)
    seed = check_seed(seed)

    # 2. Read the poses and the character
    poses = choose_people(_read_poses(poses), person)
    character = cls.load_character(reference) or Character.load(reference)

    # 3. Build the backend (this loads its models)
    animator, call_options = cls.from_options(character, model_options, call_options)

    # 4. Put the poses on the character
    if align:
        poses = character.align(poses)

    # 5. Make the frames into OUT.frames/ (resumable), then encode the video and save the poses beside it
    frames_dir = frames_dir_for(output)
    run = run_animation(animator, character.image, poses, frames_dir, seed=seed, overwrite=overwrite, video=False,
                        progress=progress, verify=verify, **call_options)
    poses_path = _write_outputs(run, poses, output, side_by_side, contact_sheet, progress)
    verdicts_path = None
    if verify is not None:
        from holdpose.io.atomic import atomic_path

        verdicts_path = output.with_suffix(".verdicts.jsonl")
        with atomic_path(verdicts_path) as tmp:
            shutil.copyfile(frames_dir / VERDICTS_NAME, tmp)
    keep = cls.keep_frames if keep_frames is None else keep_frames
    if not keep:
        shutil.rmtree(frames_dir, ignore_errors=True)
    return AnimateResult(video_path=output, poses_path=poses_path, frames_dir=frames_dir if keep else None,
                         num_frames=run.num_frames, resumed_from=run.resumed_from, size=poses.size, fps=poses.fps,
                         verdicts_path=verdicts_path)


def single_image_backends() -> list[str]:
    """The backends that make one image from a pose and a prompt (``holdpose generate``)."""
    from holdpose.animate.registry import backend_names, get_backend

    return [name for name in backend_names() if get_backend(name).single_image]


def generate_image(poses: str | os.PathLike | PoseSequence, output: str | os.PathLike, *, backend: str = "stablepose",
                   frame: int = 0, reference: str | os.PathLike | np.ndarray | None = None,
                   person: int | str | None = None, seed: int = 0, **options) -> np.ndarray:
    """Make one image of frame ``frame`` of ``poses`` (on the poses' canvas, not aligned to
    anyone) with a backend that can (:func:`single_image_backends`) and write it to ``output``
    (``.png`` or ``.jpg``). ``reference`` (resized to the canvas) is the image prompt when the
    backend loads an IP-Adapter; without one the canvas is black. ``options`` as for :func:`animate`.
    Returns the image, ``uint8 [H, W, 3]``."""
    from holdpose.animate.character import Character
    from holdpose.animate.diffusion.conditioning import resize
    from holdpose.animate.registry import get_backend
    from holdpose.io.outputs import check_output
    from holdpose.io.video import write_image

    # 1. Check inputs before anything loads
    cls = get_backend(backend)
    if not cls.single_image:
        raise HoldposeError(f"the {backend} backend does not make single images; choose one of "
                            f"{', '.join(single_image_backends())}")
    model_options, call_options = split_options(cls, options)
    cls.check_options(model_options, call_options)
    inputs = [p for p in (reference, poses) if isinstance(p, (str, os.PathLike))]
    output = check_output(output, inputs=inputs, suffixes=(".png", ".jpg"), what="image")
    seed = check_seed(seed)
    seq = choose_people(_read_poses(poses), person)
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 0 <= frame < seq.num_frames:
        raise HoldposeError(f"frame {frame!r}: the poses have frames 0..{seq.num_frames - 1}")
    seq = seq[int(frame): int(frame) + 1]

    # 2. The canvas (and image prompt), the backend, the image
    width, height = seq.size
    image = (np.zeros((height, width, 3), np.uint8) if reference is None
             else resize(Character.load(reference).image, (width, height)))
    animator, call_options = cls.from_options(Character(image), model_options, call_options)
    result = next(iter(animator(image, seq, seed=seed, **call_options)))
    write_image(output, result)
    return result


def _check_outputs(output: Path, reference, poses, side_by_side, contact_sheet) -> None:
    """Everything about the outputs that can fail, checked before any work: paths, suffixes,
    an earlier run's manifest."""
    from holdpose.animate.resume import MANIFEST_NAME, read_manifest_parameters
    from holdpose.io.outputs import check_output

    inputs = [p for p in (reference, poses) if isinstance(p, (str, os.PathLike))]
    check_output(output, inputs=inputs, what="animation")
    poses_path = output.with_suffix(".poses.json")
    if side_by_side is not None:
        check_output(side_by_side, inputs=[*inputs, output, poses_path], suffixes=(".mp4",),
                     what="side-by-side video (--side-by-side)")
    if contact_sheet is not None:
        check_output(contact_sheet, inputs=[*inputs, output, poses_path], suffixes=(".png",), what="contact sheet")
    read_manifest_parameters(frames_dir_for(output) / MANIFEST_NAME)


def split_options(cls, options: dict) -> tuple[dict, dict]:
    """``(model options, call options)`` of a backend from one dict of keyword arguments;
    a name of neither is an error that lists what the backend takes."""
    model_names, call_names = cls.model_options_class.names(), cls.options_class.names()
    unknown = [name for name in options if name not in model_names and name not in call_names]
    if unknown:
        takes = ", ".join(sorted(model_names + call_names)) or "no options"
        raise HoldposeError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                            f"the {cls.name} backend; it takes: {takes}")
    return ({k: v for k, v in options.items() if k in model_names},
            {k: v for k, v in options.items() if k in call_names})


def _read_poses(poses) -> PoseSequence:
    if isinstance(poses, (str, os.PathLike)):
        from holdpose.io.posefile import load_poses

        return load_poses(poses)
    if not isinstance(poses, PoseSequence):
        raise HoldposeError(f"poses must be a pose file or a PoseSequence, got {type(poses).__name__}")
    return poses


def _write_outputs(run, poses: PoseSequence, output: Path, side_by_side, contact_sheet, progress: bool) -> Path:
    """Encode ``output`` (and the side-by-side) from the run's frames on disk; write ``OUT.poses.json``."""
    from holdpose.animate.output import write_animation
    from holdpose.animate.resume import FRAME_NAME
    from holdpose.io.posefile import save_poses
    from holdpose.io.video import read_image

    frames = (read_image(run.frames_dir / FRAME_NAME.format(i)) for i in range(run.num_frames))
    write_animation(frames, poses, output, side_by_side=side_by_side, contact_sheet=contact_sheet, progress=progress)
    poses_path = output.with_suffix(".poses.json")
    save_poses(poses, poses_path, confidences="real")
    return poses_path
