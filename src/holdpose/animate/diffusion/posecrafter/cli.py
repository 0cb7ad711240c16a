"""``holdpose tune VIDEO -o tuned/`` (and ``holdpose train posecrafter``): PoseCrafter's one-shot
tuning. A light module: torch is imported only when the command runs."""

from __future__ import annotations

import argparse

from holdpose import argtypes

HELP = "tune PoseCrafter on one video of a person (then: holdpose animate TUNED POSES --backend posecrafter)"
DESCRIPTION = (
    "Fine-tune PoseCrafter's key-frame and temporal attention on a few frames of one video of a person (8 "
    "suffice), spread evenly over it. The video's poses are extracted and refined first (or --poses). Writes the "
    "tuned folder: trainable weights, training frames and poses, the models used, a loss curve. Run the same "
    "command again to continue an interrupted tuning; it ends with the same weights. Then make that person "
    "follow any poses with `holdpose animate TUNED POSES -o out.mp4 --backend posecrafter`. See docs/posecrafter.md.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``holdpose tune`` (:func:`~holdpose.animate.diffusion.posecrafter.tuning.tune`'s keywords)."""
    from holdpose.animate.diffusion.loading import DEFAULT_CONTROLNET, DEFAULT_MODEL
    from holdpose.animate.diffusion.posecrafter.config import (
        CLIP_FRAMES, DEFAULT_LEARNING_RATE, DEFAULT_PROMPT, DEFAULT_RESOLUTION, DEFAULT_TRAINABLE, TRAINABLE_SETS)

    p.add_argument("video", metavar="VIDEO", help="the person's video (or image folder)")
    p.add_argument("-o", "--output", required=True, help="the tuned folder")
    p.add_argument("--frames", type=argtypes.positive_int, default=8, help="training frames, spread over the video "
                   "(default 8)")
    p.add_argument("--steps", type=_steps, default=None, help="optimizer steps, or 'auto': 100 for 8 frames, 2000 "
                   "for 100, linear between (default auto)")
    p.add_argument("--lr", type=argtypes.positive_float, default=DEFAULT_LEARNING_RATE,
                   help=f"learning rate (default {DEFAULT_LEARNING_RATE:g}, the paper's)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"the source prompt (default '{DEFAULT_PROMPT}')")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"base SD 1.5 model: id, diffusers folder or .safetensors "
                   f"(default {DEFAULT_MODEL})")
    p.add_argument("--controlnet", default=DEFAULT_CONTROLNET, help=f"OpenPose ControlNet: id, folder or "
                   f".safetensors (default {DEFAULT_CONTROLNET})")
    p.add_argument("--model-config", help="diffusers folder or id with the configs of a single-file --model")
    p.add_argument("--resolution", type=argtypes.positive_int, default=DEFAULT_RESOLUTION,
                   help=f"short side of the training frames, a multiple of 8 (default {DEFAULT_RESOLUTION})")
    p.add_argument("--trainable", choices=list(TRAINABLE_SETS), default=DEFAULT_TRAINABLE,
                   help="trainable set: controlvideo (ControlVideo's: 80.32 M on SD 1.5), temporal (61.98 M), "
                   f"temporal+controlnet (67.92 M), temporal+unet (74.38 M); default {DEFAULT_TRAINABLE}")
    p.add_argument("--clip-frames", type=argtypes.positive_int, default=CLIP_FRAMES,
                   help=f"frames per training step (default {CLIP_FRAMES}, at most --frames)")
    p.add_argument("--poses", help="the video's poses (holdpose extract's file, one frame per video frame) instead "
                   "of extracting them")
    p.add_argument("--detector", choices=["mediapipe", "dwpose"], default="mediapipe",
                   help="pose detector when --poses is not given (default mediapipe)")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="seed of the frame and noise draws (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when there is a GPU)")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no",
                   help="autocast on a GPU (default no)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass: less GPU memory, slower, same weights")
    p.add_argument("--checkpoint-every", type=argtypes.positive_int, default=50,
                   help="steps between checkpoints (default 50)")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickled checkpoints (.ckpt/.bin): trusted ones")
    p.add_argument("--overwrite", action="store_true", help="start over when the folder holds another tuning")


def _steps(text: str) -> int | None:
    return None if text == "auto" else argtypes.positive_int(text)


def run(args) -> None:
    from holdpose.animate.diffusion.posecrafter.tuning import tune

    args.on_interrupt = (f"the last checkpoint is kept in {args.output}/checkpoints/; run the same command to "
                         "continue from there")
    result = tune(args.video, args.output, frames=args.frames, steps=args.steps, learning_rate=args.lr,
                  prompt=args.prompt, model=args.model, controlnet=args.controlnet, model_config=args.model_config,
                  resolution=args.resolution, trainable=args.trainable, clip_frames=args.clip_frames,
                  poses=args.poses, detector=args.detector, seed=args.seed, device=args.device,
                  mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing,
                  checkpoint_every=args.checkpoint_every,
                  allow_pickle=args.allow_pickle, overwrite=args.overwrite, progress=not getattr(args, "quiet", False))
    losses = result.eval_losses
    held = f"; held-out loss {losses[0][1]:.4f} -> {losses[-1][1]:.4f}" if len(losses) > 1 else ""
    resumed = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
    print(f"{result.output}: tuned {result.trainable_parameters:,} parameters on {result.num_frames} frames in "
          f"{result.steps} steps{resumed}{held}")


def add_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``tune`` to ``subparsers`` (what ``add_subparsers`` returns)."""
    p = subparsers.add_parser("tune", parents=[common], help=HELP, description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)
