"""``holdpose train stablepose``: a light trainer module (torch is imported when it runs)."""

from __future__ import annotations

import argparse

from holdpose import argtypes

HELP = "train a Stable-Pose adapter (pose-masked ViT attention) on images with COCO keypoint annotations"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from holdpose.animate.diffusion.loading import DEFAULT_MODEL

    p.add_argument("--images", required=True, help="folder of the training images")
    p.add_argument("--annotations", required=True, help="COCO keypoint JSON for them (`holdpose extract FOLDER --coco "
                   "-o coco.json` makes one)")
    p.add_argument("--prompts", help="JSON object {\"file_name\": \"prompt\", ...} (default prompt: "
                   "\"a photo of a person\")")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"base SD 1.5 model: id or diffusers folder (default "
                   f"{DEFAULT_MODEL})")
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints, trainable.safetensors, "
                   "adapter_config.json, loss.png); the same command again resumes")
    p.add_argument("--steps", type=argtypes.positive_int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--resolution", type=argtypes.positive_int, default=512, help="square crop size (default 512)")
    p.add_argument("--lr", type=argtypes.positive_float, default=1e-5, help="AdamW learning rate (default 1e-5)")
    p.add_argument("--batch-size", type=argtypes.positive_int, default=1, help="images per micro-batch (default 1)")
    p.add_argument("--accumulate", type=argtypes.positive_int, default=1, help="micro-batches per step (default 1; "
                   "the paper: 8 images per step)")
    p.add_argument("--mask-mode", choices=("clean", "official"), default="clean",
                   help="pose masks: exact box dilation (default) or the official blur-and-threshold")
    p.add_argument("--held-out", type=int, default=0, help="keep the last N images out of training and measure "
                   "the held-out loss on them (default 0: on the training images, unaugmented)")
    p.add_argument("--checkpoint-every", type=argtypes.positive_int, default=100, help="default 100 steps")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="default 0")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when there is a GPU)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no",
                   help="autocast on a GPU (the paper: fp16; default no)")
    p.add_argument("--allow-pickle", action="store_true", help="allow a pickled base model")


def run(args) -> None:
    from holdpose.animate.diffusion.stablepose.training import StablePoseTrainSettings, train_stablepose

    settings = StablePoseTrainSettings(
        model=args.model, steps=args.steps, resolution=args.resolution, learning_rate=args.lr,
        batch_size=args.batch_size, accumulate=args.accumulate, seed=args.seed, mask_mode=args.mask_mode,
        held_out=args.held_out, checkpoint_every=args.checkpoint_every, device=args.device,
        mixed_precision=args.mixed_precision, allow_pickle=args.allow_pickle)
    result = train_stablepose(args.images, args.annotations, args.output, settings, prompts=args.prompts,
                              progress=not args.quiet)
    first, last = result.eval_losses[0][1], result.eval_losses[-1][1]
    resumed = f", resumed at step {result.resumed_from}" if result.resumed_from else ""
    print(f"{result.output}: {result.trainable_parameters:,} adapter parameters trained for {result.steps} steps"
          f"{resumed}; held-out loss {first:.4f} -> {last:.4f}")
