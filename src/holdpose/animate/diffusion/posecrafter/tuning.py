"""PoseCrafter's one-shot tuning (paper §4.1, ControlVideo ``train.py``): ``holdpose tune``.

From one video of a person: ``frames`` frames spread evenly over it (8 suffice), their poses
(extracted and refined with holdpose, or given), then ``steps`` optimizer steps, each on a
clip of ``clip_frames`` training frames drawn at random (sorted, the first is the key frame)
with one shared timestep, ε-MSE, text = ``prompt``, ControlNet scale 1, AdamW (weight decay
1e-2, gradient norm clipped to 1), fixed learning rate 3e-3. Only the chosen trainable set
changes (default ControlVideo's: temporal attention and its zero convolution in the UNet,
``attn1.to_out`` in the UNet and the ControlNet).

The tuned folder holds everything generation needs:

- ``posecrafter.json``: the models, prompt, size, frames, trainable set and schedule;
- ``training/`` and ``heldout/``: the frames (``frames/frame_NNNNNN.png``) at the tuning size
  and their poses on that canvas (``poses.npz``);
- ``trainable.safetensors`` + ``manifest.json`` + ``loss.png`` (the shared training loop's
  output, :mod:`holdpose.train.loop`) and ``checkpoints/`` while it runs: a rerun of the same
  command continues from the last checkpoint and ends with the same weights.

The held-out loss is measured on frames midway between the training frames (not trained on).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from holdpose.animate.diffusion.loading import DEFAULT_CONTROLNET, DEFAULT_MODEL
from holdpose.animate.diffusion.posecrafter.config import (
    CLIP_FRAMES, DEFAULT_LEARNING_RATE, DEFAULT_PROMPT, DEFAULT_RESOLUTION, DEFAULT_TRAINABLE, FRAME_NAME, FRAMES_DIR,
    POSE_STYLE, POSES_NAME, TRAINABLE_SETS, TUNED_FORMAT, TUNED_NAME)
from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)


def default_steps(num_frames: int) -> int:
    """Tuning steps for ``num_frames`` training frames: 100 for 8 and 2000 for 100 (paper §5.1);
    linear between them (its Eq. 20 is lost in our copy [check]), never fewer than 100."""
    return max(100, round(100 + (num_frames - 8) * 1900 / 92))


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``[0, total)``, first and last included."""
    if count > total:
        raise HoldposeError(f"the video has {total} frames; --frames {count} asks for more")
    return sorted(set(np.linspace(0, total - 1, count).round().astype(int).tolist()))


def heldout_indices(total: int, training: list[int]) -> list[int]:
    """The frames midway between consecutive training frames that are not training frames."""
    middles = {(a + b) // 2 for a, b in zip(training, training[1:])}
    return sorted(m for m in middles if m not in set(training) and 0 <= m < total)


@dataclass
class TuneResult:
    """What :func:`tune` wrote: the tuned folder, its training summary and timing."""

    output: Path
    num_frames: int
    steps: int
    trainable_parameters: int
    eval_losses: list = field(default_factory=list)  # (step, held-out ε-loss), step 0 before training
    resumed_from: int | None = None
    seconds: float = 0.0


def read_tuned(folder: str | os.PathLike) -> dict:
    """The description of a tuned folder (``posecrafter.json``); a one-line error when the
    folder is not one or its tuning has not finished."""
    folder = Path(folder)
    path = folder / TUNED_NAME
    try:
        description = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise HoldposeError(f"{folder}: not a folder `holdpose tune` wrote (no readable {TUNED_NAME}); run "
                            f"`holdpose tune VIDEO -o {folder}` first") from err
    if description.get("format") != TUNED_FORMAT:
        raise HoldposeError(f"{path}: format {description.get('format')!r}, expected {TUNED_FORMAT!r}")
    return description


def tune(video: str | os.PathLike, output: str | os.PathLike, *, frames: int = 8, steps: int | None = None,
         learning_rate: float = DEFAULT_LEARNING_RATE, prompt: str = DEFAULT_PROMPT,
         model: str | os.PathLike = DEFAULT_MODEL, controlnet: str | os.PathLike = DEFAULT_CONTROLNET,
         resolution: int = DEFAULT_RESOLUTION, trainable: str = DEFAULT_TRAINABLE, clip_frames: int = CLIP_FRAMES,
         poses: str | os.PathLike | PoseSequence | None = None, seed: int = 0, device: str | None = None,
         mixed_precision: str = "no", gradient_checkpointing: bool = False, allow_pickle: bool = False,
         model_config: str | None = None, checkpoint_every: int = 50, detector: str = "mediapipe",
         overwrite: bool = False, progress: bool = True, callback=None) -> TuneResult:
    """Tune PoseCrafter on ``frames`` frames of ``video``; write the tuned folder ``output``.

    Args:
        video: the person's video (any length; ``frames`` frames are spread over it).
        frames: training frames N; steps: optimizer steps (None: :func:`default_steps` of N).
        poses: the video's poses (a pose file or :class:`PoseSequence` with one frame per video
            frame); None extracts them with ``detector`` and refines them (gaps filled, smoothed).
        resolution: short side of the tuning size (rounded to a multiple of 8); generation
            happens at the same size.
        trainable: a name of :data:`~holdpose.animate.diffusion.posecrafter.model.TRAINABLE_SETS`.
        clip_frames: frames per training step (at most N).
        mixed_precision, gradient_checkpointing: GPU memory and speed (the same tuning otherwise).
        callback: ``callback(step, loss)`` after every step (tests stop a run with it).
    """
    from holdpose.animate.diffusion.conditioning import generation_size
    from holdpose.io.outputs import check_output
    from holdpose.io.video import FrameSource

    started = time.perf_counter()
    # 1. Check inputs before anything loads
    output = check_output(output, inputs=[video, poses if not isinstance(poses, PoseSequence) else None],
                          folder=True, what="tuned folder")
    source = FrameSource(video)
    if frames < 1 or clip_frames < 1:
        raise HoldposeError(f"--frames and --clip-frames must be >= 1, got {frames}, {clip_frames}")
    if trainable not in TRAINABLE_SETS:
        raise HoldposeError(f"--trainable {trainable!r} is unknown; choose one of {', '.join(TRAINABLE_SETS)}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise HoldposeError(f"--lr must be a positive number, got {learning_rate}")
    indices = spread_indices(source.num_frames, frames)
    steps = default_steps(len(indices)) if steps is None else steps
    if steps < 1:
        raise HoldposeError(f"--steps must be >= 1, got {steps}")
    size = generation_size(source.size, resolution, 8)
    description = {
        "format": TUNED_FORMAT, "video": str(Path(video).resolve()), "video_frames": source.num_frames,
        "frame_indices": indices, "heldout_indices": heldout_indices(source.num_frames, indices),
        "size": list(size), "fps": source.fps, "prompt": prompt, "model": str(model), "controlnet": str(controlnet),
        "model_config": model_config, "pose_style": POSE_STYLE, "trainable": trainable, "steps": steps,
        "learning_rate": learning_rate, "clip_frames": min(clip_frames, len(indices)), "seed": seed,
        "poses": _poses_record(poses)}
    resumed = _prepare_folder(output, description, overwrite)

    # 2. The training and held-out frames at the tuning size and their poses on that canvas, written once
    if not resumed:
        seq = _video_poses(video, poses, detector, source, progress)
        sets = (("training", indices), ("heldout", description["heldout_indices"]))
        images = _read_frames(video, [i for _, chosen in sets for i in chosen], size)  # one pass over the video
        for name, chosen in sets:
            _write_set(output / name, images[:len(chosen)], seq[chosen].scaled_to(size))
            images = images[len(chosen):]
        _write_description(output, description)
    training = read_set(output / "training")
    heldout = read_set(output / "heldout") if description["heldout_indices"] else None

    # 3. Load the models, encode the data, train
    from holdpose.animate.diffusion.posecrafter.training import train_posecrafter

    result = train_posecrafter(output, description, training, heldout, device=device,
                               mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing,
                               allow_pickle=allow_pickle,
                               checkpoint_every=checkpoint_every, progress=progress, callback=callback)
    return TuneResult(output, len(indices), steps, result.trainable_parameters, result.eval_losses,
                      result.resumed_from, time.perf_counter() - started)


def _poses_record(poses) -> str | None:
    """How the video's poses were obtained, for the description: None (extracted), or a hash."""
    from holdpose.animate.resume import fingerprint

    if poses is None:
        return None
    return json.dumps(fingerprint(poses if isinstance(poses, PoseSequence) else Path(poses)), sort_keys=True)


def _prepare_folder(output: Path, description: dict, overwrite: bool) -> bool:
    """True when ``output`` holds the prepared data of the same tuning (a rerun continues it);
    False for a new run (an earlier tuning with other settings is refused, or with ``overwrite``
    removed; a non-empty folder `holdpose tune` did not write is always refused)."""
    import shutil

    path = output / TUNED_NAME
    if not path.is_file():
        if output.is_dir() and any(output.iterdir()):  # never removed, even with --overwrite: not ours
            raise HoldposeError(f"{output}: folder is not empty and was not written by `holdpose tune`; choose "
                                "another folder")
        return False
    old = read_tuned(output)
    changed = sorted(k for k in set(old) | set(description) if k != "complete" and old.get(k) != description.get(k))
    if not changed:
        return True
    if not overwrite:
        raise HoldposeError(f"{output}: was tuned with other {', '.join(changed)}; run the same command to "
                            "continue it, pass --overwrite to start over, or write to another folder")
    shutil.rmtree(output)
    return False


def _video_poses(video, poses, detector: str, source, progress: bool) -> PoseSequence:
    """The first person's poses in every frame of the video: given, or extracted and refined."""
    from holdpose.people import choose_people

    if poses is None:
        from holdpose.detect.extract import extract_poses
        from holdpose.refine.pipeline import refine

        logger.info("%s: extracting the poses of its %d frames", video, source.num_frames)
        seq = refine(extract_poses(video, detector=detector, max_people=1, progress=progress), fill=True,
                     smooth="offline")
    elif isinstance(poses, PoseSequence):
        seq = poses
    else:
        from holdpose.io.posefile import load_poses

        seq = load_poses(poses)
    if seq.num_frames != source.num_frames:
        raise HoldposeError(f"the poses have {seq.num_frames} frames, {video} has {source.num_frames}; give the "
                            "poses `holdpose extract` found in this video")
    seq = choose_people(seq, "largest") if seq.num_people > 1 else seq
    if seq.size != source.size:
        seq = seq.scaled_to(source.size)
    return seq


def _read_frames(video, indices: list[int], size: tuple[int, int]) -> np.ndarray:
    """Frames ``indices`` of ``video`` (in that order, repeats allowed) resized to ``size``,
    ``uint8 [len, H, W, 3]``, decoded in one pass."""
    from holdpose.animate.diffusion.conditioning import resize
    from holdpose.io.video import FrameSource

    wanted, out = set(indices), {}
    for index, frame in enumerate(FrameSource(video, stop=max(indices) + 1 if indices else 0)):
        if index in wanted:
            out[index] = resize(frame, size)
    return np.stack([out[i] for i in indices]) if indices else np.zeros((0, size[1], size[0], 3), np.uint8)


def _write_set(folder: Path, images: np.ndarray, seq: PoseSequence) -> None:
    """``folder/frames/*.png`` and ``folder/poses.npz``, the folder written atomically."""
    from holdpose.io.atomic import atomic_path
    from holdpose.io.posefile import save_poses
    from holdpose.io.video import write_image

    with atomic_path(folder, directory=True) as tmp:
        for i, image in enumerate(images):
            write_image(tmp / FRAMES_DIR / FRAME_NAME.format(i), image)
        save_poses(seq, tmp / POSES_NAME)


def _write_description(output: Path, description: dict) -> None:
    from holdpose.io.atomic import atomic_path

    with atomic_path(output / TUNED_NAME) as tmp:
        tmp.write_text(json.dumps(description, indent=1))


def read_set(folder: str | os.PathLike) -> tuple[np.ndarray, PoseSequence]:
    """``(frames uint8 [T, H, W, 3], poses)`` of a set a tuning wrote (``training`` or ``heldout``)."""
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import read_image

    folder = Path(folder)
    seq = load_poses(folder / POSES_NAME)
    images = np.stack([read_image(folder / FRAMES_DIR / FRAME_NAME.format(i)) for i in range(seq.num_frames)])
    return images, seq
