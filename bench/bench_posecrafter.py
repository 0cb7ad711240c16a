"""PoseCrafter's costs on this CPU with the SD 1.5 architecture (random weights), and a FLOP-scaled
GPU estimate beside the paper's timings.

    PYTHONPATH=src .venv/bin/python bench/bench_posecrafter.py [--sizes 256 512] [--frames 2]

1. FLOPs, counted exactly on the meta device (``torch.utils.flop_counter``, nothing allocated): one
   forward of the inflated UNet + ControlNet per frame (8-frame clip / 8), one tuning step (8
   frames, forward + backward), the VAE encode and decode of a frame.
2. Seconds on this CPU, random SD 1.5 weights in float32: one denoising forward of a
   ``--frames``-frame clip (default 1) (no gradients), one tuning step on the same clip (forward, backward,
   AdamW on ControlVideo's trainable set), one VAE decode; per generated frame = 50 steps x
   (M + 1)/M frames + a 50-step inversion / M + a decode (M = 100 targets, the paper's); a tuning
   step of 8 frames is scaled from the measured clip by the FLOP ratio. The machine is shared:
   the load averages are recorded and the timings are noisy.
3. A GPU estimate (RTX 3090, FP16 tensor cores with FP32 accumulation, 35.6 TFLOP/s peak) at
   40 % and 100 % of peak, beside the paper's 2 min tuning (8 frames) and 2.75 min per 100 frames.
   It is an estimate, not a measurement.

Writes bench/results/posecrafter.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))
from _common import git_state, load  # noqa: E402
from diffusion_fixtures import SD15_UNET  # noqa: E402

RESULTS = REPO / "bench" / "results" / "posecrafter.json"
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                layers_per_block=2, norm_num_groups=32, sample_size=512)
CONTROLNET_KEYS_DROPPED = ("sample_size", "out_channels", "up_block_types", "center_input_sample")
GPU_TFLOPS = 35.6  # RTX 3090: FP16 tensor cores, FP32 accumulation (NVIDIA GA102 whitepaper)
PAPER = {"tune_8_frames_minutes": 2.0, "generate_100_frames_minutes": 2.75, "gpu": "RTX 3090"}
TARGETS, STEPS, TUNE_STEPS, TUNE_FRAMES = 100, 50, 100, 8


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def build(device: str):
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    from holdpose.animate.diffusion.posecrafter.model import PoseCrafterModel

    torch.manual_seed(0)
    with torch.device(device):
        controlnet = {k: v for k, v in SD15_UNET.items() if k not in CONTROLNET_KEYS_DROPPED}
        model = PoseCrafterModel(UNet2DConditionModel(**SD15_UNET), ControlNetModel(**controlnet))
        vae = AutoencoderKL(**SD15_VAE)
    return model.eval(), vae.eval()


def inputs(frames: int, size: int, device: str = "cpu"):
    import torch

    with torch.device(device):
        return (torch.randn(frames, 4, size // 8, size // 8), torch.rand(frames, 3, size, size),
                torch.randn(1, 77, 768))


def flops(size: int) -> dict:
    """Exact FLOPs (meta device) per frame of a forward, of an 8-frame tuning step, of the VAE."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from holdpose.animate.diffusion.posecrafter.model import trainable_patterns
    from holdpose.train.loop import select_trainable

    model, vae = build("meta")
    latents, control, text = inputs(TUNE_FRAMES, size, "meta")
    t = torch.tensor(500, device="meta")

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    with torch.no_grad():
        forward = count(lambda: model(latents, t, text, control, num_frames=TUNE_FRAMES))
        decode = count(lambda: vae.decode(latents[:1]))
        encode = count(lambda: vae.encode(torch.rand(1, 3, size, size, device="meta")))
    select_trainable(model, trainable_patterns("controlvideo"))
    step = count(lambda: model(latents, t, text, control, num_frames=TUNE_FRAMES).square().mean().backward())
    return {"forward_per_frame": forward / TUNE_FRAMES, "tune_step_8_frames": step, "vae_decode": decode,
            "vae_encode": encode}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class CpuTimer:
    """The SD 1.5 architecture with random float32 weights on the CPU, built once; times the
    pieces at any size (after one small warm-up call, so one-time kernel setup is not counted)."""

    def __init__(self):
        import torch

        from holdpose.animate.diffusion.posecrafter.model import trainable_patterns
        from holdpose.train.loop import select_trainable

        self.model, self.vae = build("cpu")
        self.params = select_trainable(self.model, trainable_patterns("controlvideo"))
        self.optimizer = torch.optim.AdamW(self.params.values(), lr=3e-3, weight_decay=1e-2)
        self.measure(64, 1)  # warm-up

    def measure(self, size: int, frames: int) -> dict:
        """Measured seconds for a ``frames``-frame clip at ``size``: a forward, a tuning step, a decode."""
        import torch

        latents, control, text = inputs(frames, size)
        t = torch.tensor(500)
        model, params, optimizer = self.model, self.params, self.optimizer
        model.eval()
        with torch.no_grad():
            forward = timed(lambda: model(latents, t, text, control, num_frames=frames))
            decode = timed(lambda: self.vae.decode(latents[:1]))
        model.train()

        def step():
            prediction = model(latents, t, text, control, num_frames=frames)
            (prediction - torch.randn_like(latents)).square().mean().backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return {"frames": frames, "forward": forward, "tune_step": timed(step), "vae_decode": decode}


def per_generated_frame(forward_per_frame: float, decode: float, encode: float = 0.0) -> float:
    """Seconds (or FLOPs) per target frame of a 100-frame generation: M + 1 frames x 50 steps, a
    50-step inversion of one frame and its encode, shared by the M targets, one decode each."""
    return (forward_per_frame * STEPS * (TARGETS + 1) + forward_per_frame * STEPS + encode) / TARGETS + decode


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, default=1, help="clip length timed on the CPU (default 1)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"git": git_state(), "load_before": load(), "threads": args.threads, "paper": PAPER,
               "gpu_peak_tflops": GPU_TFLOPS, "sizes": {}}
    log("building the SD 1.5 architecture with random weights on the CPU")
    timer = CpuTimer()
    for size in args.sizes:
        log(f"{size}px: counting FLOPs")
        f = flops(size)
        log(f"{size}px: timing {args.frames} frame(s) on the CPU")
        s = timer.measure(size, args.frames)
        clip_flops = f["forward_per_frame"] * args.frames
        cpu_rate = clip_flops / s["forward"]  # FLOP/s this CPU reached on the forward
        step_scale = TUNE_FRAMES / args.frames  # FLOPs grow linearly with frames (temporal attention is tiny)
        entry = {
            "flops": f, "measured": s, "cpu_forward_gflops_per_second": cpu_rate / 1e9,
            "cpu_seconds_per_tuning_step_8_frames": s["tune_step"] * step_scale,
            "cpu_seconds_per_generated_frame": per_generated_frame(s["forward"] / args.frames, s["vae_decode"]),
            "gpu_estimate": {},
        }
        gen_flops = per_generated_frame(f["forward_per_frame"], f["vae_decode"], f["vae_encode"]) * TARGETS
        tune_flops = f["tune_step_8_frames"] * TUNE_STEPS
        for utilisation in (0.4, 1.0):
            rate = GPU_TFLOPS * 1e12 * utilisation
            entry["gpu_estimate"][f"{int(utilisation * 100)}%"] = {
                "tune_8_frames_minutes": tune_flops / rate / 60, "generate_100_frames_minutes": gen_flops / rate / 60}
        results["sizes"][str(size)] = entry
        log(json.dumps(entry, indent=1))
    results["load_after"] = load()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    for size, e in results["sizes"].items():
        g40, g100 = e["gpu_estimate"]["40%"], e["gpu_estimate"]["100%"]
        print(f"{size}px: CPU {e['cpu_seconds_per_tuning_step_8_frames']:.0f} s per tuning step (8 frames), "
              f"{e['cpu_seconds_per_generated_frame']:.0f} s per generated frame; GPU estimate (3090, 40-100% of "
              f"peak): tune {g100['tune_8_frames_minutes']:.1f}-{g40['tune_8_frames_minutes']:.1f} min (paper 2), "
              f"100 frames {g100['generate_100_frames_minutes']:.1f}-{g40['generate_100_frames_minutes']:.1f} min "
              f"(paper 2.75)")
    print(f"load {results['load_before']} -> {results['load_after']}; written {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
