"""Benchmark: the diffusion backends on the CPU, with SD 1.5-sized models at random weights.

The figures it checks:

1. Frame-by-frame speed: holdpose's ControlNetAnimator (prompt encoded once, frames
   batched, one noise tensor for all frames) against the tutorial's loop (one
   ``StableDiffusionControlNetPipeline`` call per frame, the same pipeline object, the
   same scheduler, the same initial latents passed in), at least 1.5x the frames per
   second, with the same output (max |difference| of the uint8 frames reported; the
   target is <= 2 levels).
2. Memory: peak RSS of a 64-frame run within 10 % of a 16-frame run, for both backends.

No download: the UNet and ControlNet have the SD 1.5 ARCHITECTURE (the published
``unet/config.json`` of stable-diffusion-v1-5, written out below; ``ControlNetModel.from_unet``)
at random weights; the VAE (4 blocks, so the same 8x scale) and the CLIP text encoder
(hidden size 768, as the UNet's cross-attention expects) are small, which the
UNet-dominated timings hardly notice. The AnimateDiff memory runs use a smaller UNet
(blocks 64/128/256/256) with a matching motion adapter: a 16-frame window of the
SD 1.5-sized motion UNet takes minutes per step on 2 CPU cores.

The models are built once, saved with ``save_pretrained`` under bench/out/diffusion-models
and loaded through holdpose's loading code. Memory runs are separate processes (peak RSS
is per process). This machine is shared and its speed drifts: the speed runs alternate
holdpose and tutorial passes, and the load average is recorded.

    .venv/bin/python bench/bench_diffusion.py            # 256x256, 4 steps, 16 frames (~15 min idle, 27 min busy)
    .venv/bin/python bench/bench_diffusion.py --quick    # 128x128, 2 steps, 4 frames, memory 8 vs 32 frames

Prints a markdown table and writes bench/results/diffusion.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tokenizer writer the tests use (diffusion_fixtures.py)
sys.path.insert(0, str(REPO / "bench"))
from _common import git_state  # noqa: E402

from diffusion_fixtures import SD15_UNET  # noqa: E402

DEFAULT_CACHE = REPO / "bench" / "out" / "diffusion-models"
RESULTS = REPO / "bench" / "results" / "diffusion.json"
TARGET_SPEEDUP = 1.5
TARGET_RSS_GROWTH = 0.10
TARGET_MAX_DIFF = 2

# The smaller UNet of the AnimateDiff memory runs: SD 1.5's layout, narrower.
SMALL_UNET = {**SD15_UNET, "block_out_channels": (64, 128, 256, 256)}
SMALL_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 64, 64),
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                 layers_per_block=1, norm_num_groups=32, sample_size=512)
SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                      set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
PROMPT = "a person dancing, best quality"
NEGATIVE = "lowres, bad anatomy, worst quality"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --- models ------------------------------------------------------------------------------


def build_models(cache: Path, kind: str) -> dict[str, Path]:
    """Save a pipeline folder, a ControlNet (and for "small" a motion adapter) under cache/kind."""
    root = cache / kind
    paths = {"model": root / "model", "controlnet": root / "controlnet"}
    if kind == "small":
        paths["motion_adapter"] = root / "motion_adapter"
    if all((p / "done").exists() for p in paths.values()):
        return paths
    import torch
    from diffusers import (AutoencoderKL, ControlNetModel, MotionAdapter, PNDMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from diffusion_fixtures import write_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    log(f"building the {kind} models under {root} (once)")
    torch.manual_seed(0)
    vocab_size = write_tokenizer(root / "tokenizer_files")
    unet = UNet2DConditionModel(**(SD15_UNET if kind == "sd15" else SMALL_UNET))
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=768, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=12, vocab_size=1000,
        max_position_embeddings=77, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1))
    pipe = StableDiffusionPipeline(vae=AutoencoderKL(**SMALL_VAE), text_encoder=text_encoder,
                                   tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer_files"), unet=unet,
                                   scheduler=PNDMScheduler(**SD15_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(paths["model"], safe_serialization=True)
    controlnet = ControlNetModel.from_unet(unet)
    with torch.no_grad():  # a fresh ControlNet is a no-op (zero convolutions); make it act like a trained one
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            conv.weight.normal_(0.0, 0.02)
    controlnet.save_pretrained(paths["controlnet"], safe_serialization=True)
    if kind == "small":
        MotionAdapter(block_out_channels=SMALL_UNET["block_out_channels"], motion_layers_per_block=2,
                      motion_num_attention_heads=8, motion_max_seq_length=32).save_pretrained(
            paths["motion_adapter"], safe_serialization=True)
    for p in paths.values():
        (p / "done").write_text("")
    return paths


def dance_poses(num_frames: int, size: int):
    """A full-body person (body, hands, face) moving through a simple dance, on a size x size canvas."""
    from holdpose.sequence import PoseSequence

    seq = PoseSequence.empty(num_frames, 1, size=(size, size), fps=8.0)
    body = np.array([[.5, .15], [.47, .12], [.53, .12], [.44, .14], [.56, .14], [.4, .3], [.6, .3], [.36, .45],
                     [.64, .45], [.34, .6], [.66, .6], [.44, .6], [.56, .6], [.43, .78], [.57, .78], [.42, .93],
                     [.58, .93]], np.float32)
    rng = np.random.default_rng(0)
    hand = rng.normal(0, 0.02, (21, 2)).astype(np.float32)
    angle = np.linspace(0, 2 * np.pi, 68)
    face = np.stack([0.5 + 0.05 * np.cos(angle), 0.13 + 0.04 * np.sin(angle)], 1)
    for t in range(num_frames):
        phase = np.sin(2 * np.pi * t / 16)
        points = body.copy()
        points[:, 0] += 0.06 * phase
        points[[7, 9], 1] -= 0.12 * phase
        points[[8, 10], 1] += 0.12 * phase
        seq.keypoints[t, 0, :17] = points * size
        seq.keypoints[t, 0, 23:91] = (face + [0.06 * phase, 0]) * size
        seq.keypoints[t, 0, 91:112] = (points[9] + hand) * size
        seq.keypoints[t, 0, 112:133] = (points[10] + hand) * size
        seq.scores[t, 0, :17] = 1.0
        seq.scores[t, 0, 23:133] = 1.0
        seq.track_ids[t, 0] = 0
    return seq


# --- speed: holdpose vs the tutorial loop ---------------------------------------------------


def bench_speed(paths: dict, args) -> dict:
    import torch
    from diffusers import StableDiffusionControlNetPipeline
    from PIL import Image

    from holdpose.animate.diffusion.controlnet import ControlNetAnimator
    from holdpose.animate.diffusion.noise import shared_noise
    from holdpose.render.openpose import render_pose_maps

    animator = ControlNetAnimator(paths["model"], paths["controlnet"], device="cpu", dtype="float32")
    poses = dance_poses(args.frames, args.size)
    reference = np.zeros((args.size, args.size, 3), np.uint8)
    options = dict(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=args.steps, guidance_scale=7.5,
                   controlnet_scale=1.0, scheduler="unipc", batch_size=args.batch_size, resolution=args.size)
    tutorial = StableDiffusionControlNetPipeline(**{**animator.pipe.components,
                                                    "scheduler": animator.scheduler_for("unipc")},
                                                 requires_safety_checker=False)
    tutorial.set_progress_bar_config(disable=True)
    latents = shared_noise(args.seed, (1, 4, args.size // 8, args.size // 8))
    maps = [Image.fromarray(m) for m in render_pose_maps(poses, "openpose_full")]

    def run_holdpose():
        return np.stack(list(animator(reference, poses, seed=args.seed, **options)))

    def run_tutorial():
        frames = []
        for pose_map in maps:  # the tutorial: one pipeline call per frame, fixed seed
            out = tutorial(PROMPT, image=pose_map, negative_prompt=NEGATIVE, num_inference_steps=args.steps,
                           guidance_scale=7.5, controlnet_conditioning_scale=1.0, latents=latents.clone(),
                           output_type="np", height=args.size, width=args.size).images[0]
            frames.append((out * 255).round().astype(np.uint8))
        return np.stack(frames)

    log("speed: warm-up")
    with torch.no_grad():  # one small call each, so first-call allocations are not timed
        list(animator(reference, poses[:1], seed=args.seed, **{**options, "num_inference_steps": 1}))
        tutorial(PROMPT, image=maps[0], num_inference_steps=1, output_type="np", height=args.size, width=args.size)
    times = {"holdpose": [], "tutorial": []}
    outputs = {}
    for rep in range(args.repeat):
        order = ["holdpose", "tutorial"] if rep % 2 == 0 else ["tutorial", "holdpose"]
        for side in order:
            log(f"speed: {side}, pass {rep + 1}/{args.repeat} ({args.frames} frames)")
            start = time.perf_counter()
            outputs[side] = run_holdpose() if side == "holdpose" else run_tutorial()
            times[side].append(time.perf_counter() - start)
            log(f"  {times[side][-1]:.1f} s")
    diff = np.abs(outputs["holdpose"].astype(int) - outputs["tutorial"].astype(int))
    best = {side: min(t) for side, t in times.items()}
    return {
        "frames": args.frames, "size": args.size, "steps": args.steps, "batch_size": args.batch_size,
        "guidance_scale": 7.5, "scheduler": "unipc", "repeat": args.repeat,
        "seconds": times,
        "holdpose_fps": args.frames / best["holdpose"], "tutorial_fps": args.frames / best["tutorial"],
        "speedup": best["tutorial"] / best["holdpose"],
        "speedup_per_pass": [t / h for h, t in zip(times["holdpose"], times["tutorial"])],
        "max_abs_diff": int(diff.max()), "mean_abs_diff": float(diff.mean()),
        "pixels_differing": float((diff > 0).any(-1).mean()),
    }


# --- memory: one process per run ---------------------------------------------------------------


def child_memory(args) -> None:
    """Run one backend on --frames frames and print peak RSS (run in its own process)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = json.loads(args.paths)
    poses = dance_poses(args.frames, args.size)
    reference = np.zeros((args.size, args.size, 3), np.uint8)
    start = time.perf_counter()
    if args.child == "controlnet":
        from holdpose.animate.diffusion.controlnet import ControlNetAnimator

        animator = ControlNetAnimator(paths["model"], paths["controlnet"], device="cpu")
        options = dict(batch_size=args.batch_size, resolution=args.size)
    else:
        from holdpose.animate.diffusion.animatediff import AnimateDiffAnimator

        animator = AnimateDiffAnimator(paths["model"], paths["controlnet"], motion_adapter=paths["motion_adapter"],
                                       device="cpu")
        options = dict(window=16, stride=8, decode_chunk_size=8, resolution=args.size)
    loaded = peak_rss_mb()
    count = 0
    for _ in animator(reference, poses, seed=0, prompt=PROMPT, num_inference_steps=args.steps, **options):
        count += 1
    print(json.dumps({"backend": args.child, "frames": count, "seconds": time.perf_counter() - start,
                      "peak_rss_mb": peak_rss_mb(), "peak_rss_after_load_mb": loaded}))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: on Linux a child
    inherits its parent's high-water mark through fork and exec, and the parent holds models."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_memory(backend: str, paths: dict, frames: int, args) -> dict:
    command = [sys.executable, __file__, "--child", backend,
               "--paths", json.dumps({k: str(v) for k, v in paths.items()}), "--frames", str(frames),
               "--size", str(args.memory_size), "--steps", str(args.memory_steps),
               "--batch-size", str(args.batch_size)] + (["--threads", str(args.threads)] if args.threads else [])
    log(f"memory: {backend}, {frames} frames")
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    log(f"  peak RSS {result['peak_rss_mb']:.0f} MB, {result['seconds']:.0f} s")
    return result


# --- main ------------------------------------------------------------------------------------------


def versions() -> dict:
    return {name: metadata.version(name) for name in ("torch", "diffusers", "transformers", "numpy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128x128, 2 steps, 4 frames; memory 8 vs 32 frames")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="speed passes per side (alternating)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-frames", type=int, nargs=2, default=(16, 64))
    parser.add_argument("--memory-size", type=int, default=128,
                        help="memory runs' resolution (memory against clip length is the point)")
    parser.add_argument("--memory-steps", type=int, default=1)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["controlnet", "animatediff"], help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_memory(args)
        return
    if args.quick:
        args.frames, args.size, args.steps, args.memory_frames = 4, 128, 2, (8, 32)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_at_start": list(os.getloadavg())},
        "versions": versions(), "quick": args.quick,
        "models": {"speed": "SD 1.5 UNet + ControlNet.from_unet (random weights), small VAE (x8) and text encoder",
                   "animatediff_memory": "UNet blocks (64, 128, 256, 256) + motion adapter (random weights)"},
        "targets": {"speedup": TARGET_SPEEDUP, "rss_growth": TARGET_RSS_GROWTH, "max_abs_diff": TARGET_MAX_DIFF},
    }
    sd15 = build_models(args.cache, "sd15")
    if not args.skip_speed:
        result["speed"] = bench_speed(sd15, args)
    if not args.skip_memory:
        small = build_models(args.cache, "small")
        memory = {}
        for backend, paths in (("controlnet", sd15), ("animatediff", small)):
            runs = [bench_memory(backend, paths, n, args) for n in args.memory_frames]
            memory[backend] = {"runs": runs, "size": args.memory_size, "steps": args.memory_steps,
                               "growth": runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"] - 1}
        result["memory"] = memory
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


def table(result: dict) -> str:
    lines = ["| measure | holdpose | tutorial / baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    if "speed" in result:
        s = result["speed"]
        met = "yes" if s["speedup"] >= TARGET_SPEEDUP else "NO"
        lines.append(f"| frame-by-frame frames/s ({s['frames']} frames, {s['size']}x{s['size']}, {s['steps']} steps, "
                     f"CFG, batch {s['batch_size']}) | {s['holdpose_fps']:.3f} | {s['tutorial_fps']:.3f} | "
                     f"{s['speedup']:.2f}x | >= {TARGET_SPEEDUP}x | {met} |")
        met = "yes" if s["max_abs_diff"] <= TARGET_MAX_DIFF else "NO"
        lines.append(f"| same output: max / mean abs diff (uint8) | {s['max_abs_diff']} / {s['mean_abs_diff']:.4f} "
                     f"| | | <= {TARGET_MAX_DIFF} | {met} |")
    for backend, m in result.get("memory", {}).items():
        a, b = m["runs"]
        met = "yes" if m["growth"] <= TARGET_RSS_GROWTH else "NO"
        lines.append(f"| {backend} peak RSS, {b['frames']} vs {a['frames']} frames ({m['size']}px, {m['steps']} step) "
                     f"| {b['peak_rss_mb']:.0f} MB | {a['peak_rss_mb']:.0f} MB | {m['growth']:+.1%} "
                     f"| <= +{TARGET_RSS_GROWTH:.0%} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
