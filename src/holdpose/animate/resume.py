"""Nothing lost: run any animator into a folder of frames that a rerun continues.

:func:`run_animation` wraps an :class:`~holdpose.animate.base.Animator`::

    run = run_animation(animator, reference, poses, "out/", seed=0, prompt="a dancer")
    run.video_path   # out/animation.mp4, encoded at the end from out/frames/*.png

- every frame is written as soon as it is made to ``frames/frame_000000.png`` … (PNG,
  lossless; each file written under a temporary name and renamed, so a frame on disk is
  always whole);
- ``manifest.json`` records everything that decides the frames: backend, models,
  device and dtype, seed, every option with its default filled in, the hash of the
  reference image and of the pose sequence, canvas size and fps;
- a rerun with the same parameters continues after the last frame on disk and gives
  the same frames as a run that was never interrupted: the backends draw each frame's
  noise from the seed alone, never from how many frames came before (an animator with
  ``resumable = True`` is told ``start_frame`` and skips the work; any other animator is
  rerun from the start and the frames already on disk are dropped);
- a rerun with other parameters refuses, naming the keys that differ, unless
  ``overwrite=True`` (``--overwrite``) starts over.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.io.atomic import file_sha256
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FRAMES_DIR = "frames"
FRAME_NAME = "frame_{:06d}.png"
VIDEO_NAME = "animation.mp4"
VERDICTS_NAME = "verdicts.jsonl"  # with verify: one line per judged frame (holdpose.evaluate.closed_loop)
MANIFEST_FORMAT = 1


# --- fingerprints ---------------------------------------------------------------------


def _sha256(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return _sha256(str(array.dtype).encode(), str(array.shape).encode(), array.tobytes())


def poses_sha256(poses: PoseSequence) -> str:
    """Hash of everything in a pose sequence that reaches the renderer."""
    return _sha256(*(array_sha256(a).encode() for a in (poses.keypoints, poses.scores, poses.track_ids)),
                   f"{poses.layout.name}|{poses.size}|{poses.fps}".encode())


def path_sha256(path: Path) -> str:
    """Content hash of a file, or of a folder's files (names and contents, sorted)."""
    if path.is_file():
        return file_sha256(path)
    return _sha256(*(f"{p.relative_to(path).as_posix()}:{path_sha256(p)}".encode()
                     for p in sorted(path.rglob("*")) if p.is_file()))


def fingerprint(value: Any, *, paths: bool = False) -> Any:
    """A JSON-able stand-in for an option value that changes whenever the value does:
    scalars as they are, arrays and pose sequences by hash, files and folders by path
    and content hash (``paths=True`` also reads existing path strings that way),
    animators by name and config. A one-shot iterator cannot be hashed without being
    consumed; it is recorded by type with a warning."""
    from holdpose.animate.base import Animator

    if value is None or isinstance(value, (bool, str)):
        if paths and isinstance(value, str) and value and Path(value).exists():
            return fingerprint(Path(value))
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, os.PathLike):
        path = Path(value)
        return {"path": str(path.resolve()), "sha256": path_sha256(path) if path.exists() else None}
    if isinstance(value, np.ndarray):
        return {"array_sha256": array_sha256(value), "shape": list(value.shape)}
    if isinstance(value, PoseSequence):
        return {"poses_sha256": poses_sha256(value)}
    if isinstance(value, Animator):
        config = value.config() if hasattr(value, "config") else {}
        return {"animator": value.name, "config": fingerprint(config)}
    if isinstance(value, dict):
        return {str(k): fingerprint(v, paths=paths) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v, paths=paths) for v in value]
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return fingerprint(value.detach().cpu().numpy())
    logger.warning("a %s option cannot be fingerprinted; a resumed run cannot check it is unchanged",
                   type(value).__name__)
    return {"unhashable": type(value).__name__}


# --- manifests ------------------------------------------------------------------------


def build_manifest(animator, reference: np.ndarray, poses: PoseSequence, seed: int, options: dict) -> dict:
    """The parameters that decide a run's frames. Validates the options on the way (an
    animator with ``describe_options`` fills in and checks them)."""
    if hasattr(animator, "describe_options"):
        described = animator.describe_options(**options)
    else:
        described = fingerprint(options, paths=True)
    config = animator.config() if hasattr(animator, "config") else {}
    return {
        "backend": animator.name,
        "animator": fingerprint(config),
        "pose_style": getattr(animator, "pose_style", None),
        "seed": int(seed),
        "options": described,
        "reference_sha256": array_sha256(reference),
        "poses_sha256": poses_sha256(poses),
        "num_frames": poses.num_frames,
        "size": list(poses.size),
        "fps": poses.fps,
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def read_manifest_parameters(manifest_path: Path) -> dict | None:
    """The ``parameters`` of an earlier run's manifest (None when there is none); a damaged
    manifest is a :class:`HoldposeError` (checked before any model loads)."""
    if not manifest_path.is_file():
        return None
    try:
        old = json.loads(manifest_path.read_text())
        parameters = old["parameters"] if isinstance(old, dict) else None
    except (ValueError, KeyError, RecursionError, UnicodeDecodeError) as err:
        parameters, reason = None, f" ({err})"
    else:
        reason = ""
    if not isinstance(parameters, dict):
        raise HoldposeError(f"{manifest_path}: not a holdpose manifest{reason}; remove it or choose another "
                            "output path")
    return parameters


def manifest_differences(old: dict, new: dict) -> list[str]:
    """``["options.prompt: 'a' -> 'b'", ...]`` for every parameter that differs."""
    a, b = _flatten(old), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: {_short(a.get(key, '<absent>'))} -> {_short(b.get(key, '<absent>'))}")
    return diffs


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _write_json(path: Path, data: dict) -> None:
    from holdpose.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def frames_on_disk(frames_dir: Path, num_frames: int) -> int:
    """Number of consecutive frames 0, 1, … already written."""
    done = 0
    while done < num_frames and (frames_dir / FRAME_NAME.format(done)).is_file():
        done += 1
    return done


# --- running ------------------------------------------------------------------------------


@dataclass
class AnimationRun:
    """Where a run's outputs are and how much of it was resumed.

    Attributes:
        output_dir: the run's folder.
        frames_dir: its PNG frames (``frame_000000.png`` …).
        manifest_path: its ``manifest.json``.
        video_path: the encoded MP4 (None when not asked for).
        num_frames: frames in the animation.
        resumed_from: frames found on disk and kept (0 for a fresh run).
    """

    output_dir: Path
    frames_dir: Path
    manifest_path: Path
    video_path: Path | None
    num_frames: int
    resumed_from: int


def run_animation(animator, reference: np.ndarray, poses: PoseSequence, output_dir: str | os.PathLike, *,
                  seed: int = 0, overwrite: bool = False, video: bool | str | os.PathLike = True,
                  callback: Callable[[int, np.ndarray], None] | None = None, progress: bool = False,
                  verify=None, **options) -> AnimationRun:
    """Animate into ``output_dir``, resuming an interrupted run of the same parameters.

    Args:
        animator: any :class:`~holdpose.animate.base.Animator`.
        reference: ``uint8 [H, W, 3]`` RGB character image.
        poses: target poses on the reference's canvas.
        output_dir: folder for ``frames/``, ``manifest.json`` and (by default) ``animation.mp4``.
        seed: the seed of the animation.
        overwrite: start over when ``output_dir`` holds a run with other parameters.
        video: True encodes ``output_dir/animation.mp4`` at the end, a path encodes
            there, False encodes nothing.
        callback: called as ``callback(index, frame)`` after each new frame is on disk;
            an exception raised in it stops the run, and a rerun continues from there.
        progress: show a progress bar (starting at the frames already on disk).
        verify: closed-loop adherence (:class:`holdpose.evaluate.closed_loop.VerifySettings`):
            each frame is judged against its pose once on disk, a drifting one made again;
            tries and verdicts go to ``verdicts.jsonl``; its settings are run parameters.
        **options: the animator's options (``prompt``, ``num_inference_steps`` …).

    Raises:
        HoldposeError: for bad inputs or options, or when ``output_dir`` holds a run with
            other parameters and ``overwrite`` is False (the message names the keys).
    """
    from holdpose.animate.base import check_poses, check_reference
    from holdpose.io.video import VideoWriter, read_image

    # 1. Check inputs and work out the parameters (options are validated here, before anything is written)
    reference = check_reference(reference)
    poses = check_poses(poses, reference)
    output_dir = Path(output_dir)
    frames_dir = output_dir / FRAMES_DIR
    manifest_path = output_dir / MANIFEST_NAME
    video_path = None if video is False else (output_dir / VIDEO_NAME if video is True else Path(video))
    parameters = build_manifest(animator, reference, poses, seed, options)
    if verify is not None:
        parameters["verify"] = verify.describe()

    # 2. Compare with what is already there
    old = read_manifest_parameters(manifest_path)
    if old is not None:
        diffs = manifest_differences(old, parameters)
        if diffs and not overwrite:
            raise HoldposeError(
                f"{output_dir} holds a run with other parameters ({'; '.join(diffs)}); pass overwrite=True "
                "(--overwrite) to start over, or choose another output folder")
        if diffs:
            logger.info("overwriting the run in %s (%s)", output_dir, "; ".join(diffs))
            _clear_frames(frames_dir)
    elif frames_dir.is_dir() and any(frames_dir.iterdir()):
        if not overwrite:
            raise HoldposeError(f"{frames_dir} holds frames but no manifest; pass overwrite=True (--overwrite) to "
                                "replace them, or choose another output folder")
        _clear_frames(frames_dir)
    frames_dir.mkdir(parents=True, exist_ok=True)
    for stale in frames_dir.glob(".*.partial"):  # left by a run killed mid-write
        stale.unlink()
    _write_json(manifest_path, {
        "format": MANIFEST_FORMAT,
        "parameters": parameters,
        "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })

    # 3. Make the frames that are missing, writing each as soon as it exists (and judging it, with verify)
    num_frames = poses.num_frames
    done = frames_on_disk(frames_dir, num_frames)
    if done:
        logger.info("resuming %s at frame %d of %d", output_dir, done, num_frames)
    verifier = None
    if verify is not None:
        verifier = verify.start(animator, reference, poses, seed, options, output_dir / VERDICTS_NAME)
    try:
        _make_frames(animator, reference, poses, frames_dir, seed, options, done, verifier, callback, progress)
    finally:
        if verifier is not None:
            verifier.close()

    # 4. Encode the video from the frames on disk (memory stays flat)
    if video_path is not None:
        with VideoWriter(video_path, fps=poses.fps, size=poses.size) as writer:
            for index in range(num_frames):
                writer.write(read_image(frames_dir / FRAME_NAME.format(index)))
    return AnimationRun(output_dir=output_dir, frames_dir=frames_dir, manifest_path=manifest_path,
                        video_path=video_path, num_frames=num_frames, resumed_from=done)


def _make_frames(animator, reference, poses, frames_dir: Path, seed: int, options: dict, done: int, verifier,
                 callback, progress: bool) -> None:
    """Frames ``done..`` made and written one by one; with a verifier, each judged (and maybe
    made again) once on disk, and first the frames on disk that have no verdict yet."""
    from holdpose.io.video import read_image, write_image
    from holdpose.progress import progress_bar

    def keep(index: int, frame: np.ndarray) -> np.ndarray:
        if verifier is None:
            return frame
        kept = verifier.verify(index, frame)
        if kept is not frame:
            write_image(frames_dir / FRAME_NAME.format(index), kept)
        verifier.record()
        return kept

    num_frames = poses.num_frames
    if verifier is not None:
        for index in range(done):
            if index not in verifier.records:  # written by a run killed before it judged them
                keep(index, read_image(frames_dir / FRAME_NAME.format(index)))
    if done < num_frames:
        if getattr(animator, "resumable", False):
            frames = animator(reference, poses, seed=seed, start_frame=done, **options)
        else:
            frames = islice(animator(reference, poses, seed=seed, **options), done, None)
        index = done
        with progress_bar(total=num_frames, initial=done, desc=animator.name, enabled=progress) as bar:
            for frame in frames:
                if index >= num_frames:
                    raise HoldposeError(f"the {animator.name} animator made more frames than the {num_frames} poses")
                frame = np.asarray(frame)
                if frame.shape != reference.shape or frame.dtype != np.uint8:
                    raise HoldposeError(f"the {animator.name} animator made a {frame.dtype} {list(frame.shape)} frame; "
                                        f"expected uint8 {list(reference.shape)}")
                write_image(frames_dir / FRAME_NAME.format(index), frame)
                frame = keep(index, frame)
                if callback is not None:
                    callback(index, frame)
                index += 1
                bar.update(1)
        if index < num_frames:
            raise HoldposeError(f"the {animator.name} animator stopped after {index} of {num_frames} frames")


def _clear_frames(frames_dir: Path) -> None:
    (frames_dir.parent / VERDICTS_NAME).unlink(missing_ok=True)
    if frames_dir.is_dir():
        for path in frames_dir.iterdir():
            if path.is_file() and (path.suffix == ".png" or path.name.endswith(".partial")):
                path.unlink()
