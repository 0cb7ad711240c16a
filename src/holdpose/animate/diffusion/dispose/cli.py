"""``holdpose train dispose``: train DisPose's hybrid ControlNet (SD 1.5 + AnimateDiff variant) on
videos. Light module: torch is imported only when the command runs."""

from __future__ import annotations

import argparse

from holdpose.argtypes import positive_int

HELP = "train DisPose's hybrid ControlNet (motion fields + keypoint features) on videos; resumable"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from holdpose.animate.diffusion.loading import DEFAULT_MODEL, DEFAULT_MOTION_ADAPTER

    p.add_argument("--videos", required=True, help="folder of training videos (or one video)")
    p.add_argument("-o", "--output", required=True, help="run folder: checkpoints, trainable.safetensors, loss.png")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"base SD 1.5 model (default {DEFAULT_MODEL})")
    p.add_argument("--motion-adapter", default=DEFAULT_MOTION_ADAPTER,
                   help=f"AnimateDiff motion adapter (default {DEFAULT_MOTION_ADAPTER})")
    p.add_argument("--controlnet", default=None, help="an OpenPose ControlNet to train beside (frozen), as it is "
                   "stacked at generation")
    p.add_argument("--frames", type=positive_int, default=16, help="frames per training clip (default 16)")
    p.add_argument("--size", type=positive_int, default=512, help="square training size in pixels (default 512)")
    p.add_argument("--max-frames", type=positive_int, default=64, help="frames read from each video (default 64)")
    p.add_argument("--steps", type=positive_int, default=20000, help="optimizer steps (default 20000, the paper's)")
    p.add_argument("--lr", type=float, default=1e-5, help="learning rate (default 1e-5, the paper's)")
    p.add_argument("--accumulate", type=positive_int, default=1,
                   help="clips per optimizer step (gradient accumulation; the paper's batch is 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=positive_int, default=500)
    p.add_argument("--eval-every", type=positive_int, default=100)
    p.add_argument("--dift-ensemble", type=positive_int, default=8, help="noises averaged for DIFT (default 8)")
    p.add_argument("--prompt", default="a person")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when there is a GPU)")
    p.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    p.add_argument("--allow-pickle", action="store_true", help="allow pickled checkpoints (trusted ones)")


def run(args: argparse.Namespace) -> int:
    from holdpose.animate.diffusion.dispose.training import train_dispose

    result = train_dispose(args.videos, args.output, model=args.model, motion_adapter=args.motion_adapter,
                           controlnet=args.controlnet, frames=args.frames, size=args.size,
                           max_frames=args.max_frames, steps=args.steps, learning_rate=args.lr, seed=args.seed,
                           accumulate=args.accumulate,
                           checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                           dift_ensemble=args.dift_ensemble, prompt=args.prompt, device=args.device,
                           mixed_precision=args.mixed_precision, allow_pickle=args.allow_pickle)
    first, last = result.eval_losses[0][1], result.eval_losses[-1][1]
    print(f"{result.output}: {result.steps} steps, {result.trainable_parameters} trainable parameters, "
          f"held-out loss {first:.4f} -> {last:.4f}")
    return 0
