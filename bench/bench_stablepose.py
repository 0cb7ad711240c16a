"""Stable-Pose's costs with the SD 1.5 architecture (random weights, nothing downloaded).

Measures on this CPU, once (the machine is shared: the load is recorded):
- the exact trainable parameter count of the adapter, by part;
- FLOPs (torch's FlopCounterMode on the meta device, so no memory and no time): one sampling
  step (adapter + UNet, batch 2 for classifier-free guidance) and one training step (forward and
  backward, batch 1) at 512 px;
- seconds of one sampling step at 512 (adapter + UNet, batch 1; guidance runs it twice) and of the VAE
  decode and encode at 512, hence the seconds per image (50 DDIM steps with guidance + decode);
- seconds of one training step at 256 px (forward and backward of adapter and frozen UNet, batch 1;
  the AdamW update is left out), scaled to 512 by the FLOP ratio: at 512 the step needs more memory
  than this shared machine had free (a first run was killed by the OOM killer at 8.1 GB).
Results are written after each measurement, so a killed run keeps what it measured.

GPU figures are *estimates*: FLOPs divided by an assumed sustained throughput (A100 bf16 at 35 %
of its 312 TFLOP/s peak), beside the paper's 145 h (Human-Art) and 70 h (LAION-Human) of training
on 2 A100s. Writes bench/results/stablepose.json.

    .venv/bin/python bench/bench_stablepose.py            # ~15 min on 2 busy cores, ~7 GB of memory
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, git_state, load  # noqa: E402
from bench_diffusion import SD15_UNET, peak_rss_mb  # noqa: E402

SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                layers_per_block=2, norm_num_groups=32, sample_size=512)
A100_BF16_PEAK = 312e12
ASSUMED_UTILISATION = 0.35
STEPS = 50
PAPER = {"training hours, Human-Art (2 A100)": 145, "training hours, LAION-Human (2 A100)": 70,
         "trainable parameters (our count of the official model)": 364_943_616}


def build(device: str):
    import torch
    from diffusers import UNet2DConditionModel

    from holdpose.animate.diffusion.stablepose.model import StablePoseAdapter, StablePoseModel

    with torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**SD15_UNET)
        return StablePoseModel(unet, StablePoseAdapter.from_unet(unet)).eval()


def inputs(batch: int, size: int, device: str):
    import torch

    g = torch.Generator().manual_seed(0)
    h = size // 8
    tensors = (torch.randn(batch, 4, h, h, generator=g), torch.full((batch,), 500), torch.randn(batch, 77, 768, generator=g),
               torch.rand(batch, 3, size, size, generator=g) * 2 - 1, (torch.rand(batch, 2, h, h, generator=g) > 0.7).float())
    return [t.to(device) for t in tensors]


def parameter_counts(model) -> dict:
    adapter = model.adapter
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"adapter (trainable)": count(adapter), "frozen UNet": count(model.unet),
            "PMSA ViT": count(adapter.attn_block.pmsa), "cond_conv": count(adapter.attn_block.cond_conv),
            "pose feature extractor": count(adapter.pose_encoder)}


def flops(model, batch: int, size: int, backward: bool) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    args = inputs(batch, size, "meta")
    model.unet.requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        if backward:
            model(*args).square().mean().backward()  # the UNet is frozen: gradients flow through it only
        else:
            with torch.no_grad():
                model(*args)
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def seconds(function, repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_sampling(model, size: int) -> float:
    import torch

    args = inputs(1, size, "cpu")
    with torch.no_grad():
        return seconds(lambda: model(*args))


def measure_training(model, size: int) -> float:
    args = inputs(1, size, "cpu")
    model.unet.requires_grad_(False)

    def step():
        model(*args).square().mean().backward()
        model.zero_grad(set_to_none=True)

    return seconds(step)


def measure_vae(size: int) -> dict:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(**SD15_VAE).eval()
    image = torch.rand(1, 3, size, size) * 2 - 1
    latents = torch.randn(1, 4, size // 8, size // 8)
    with torch.no_grad():
        return {"encode": seconds(lambda: vae.encode(image).latent_dist.mode()),
                "decode": seconds(lambda: vae.decode(latents).sample)}


def save(result: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1))


def gpu_seconds(flop: float) -> float:
    return flop / (A100_BF16_PEAK * ASSUMED_UTILISATION)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "stablepose.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"git": git_state(), "load_before": load(), "threads": args.threads}

    meta = build("meta")
    result["parameters"] = parameter_counts(meta)
    flop = {"sampling step 512 (batch 2, CFG)": flops(meta, 2, 512, False),
            "training step 512 (batch 1, fwd+bwd)": flops(meta, 1, 512, True),
            "training step 256 (batch 1, fwd+bwd)": flops(meta, 1, 256, True)}
    result["tflop"] = {k: round(v / 1e12, 3) for k, v in flop.items()}
    del meta

    result["gpu_estimate_seconds"] = {
        "assumption": f"A100 bf16, {ASSUMED_UTILISATION:.0%} of {A100_BF16_PEAK / 1e12:.0f} TFLOP/s sustained; "
                      "an estimate, not a measurement",
        "per image (50 steps with CFG)": round(STEPS * gpu_seconds(flop["sampling step 512 (batch 2, CFG)"]), 2),
        "per training image (fwd+bwd)": round(gpu_seconds(flop["training step 512 (batch 1, fwd+bwd)"]), 3),
    }
    result["paper"] = PAPER
    save(result, args.output)

    cpu = result["cpu_seconds"] = {}
    model = build("cpu")
    sample = measure_sampling(model, 512)
    cpu["sampling step 512 (adapter + UNet, batch 1)"] = round(sample, 2)
    save(result, args.output)
    train = measure_training(model, 256)
    scale = flop["training step 512 (batch 1, fwd+bwd)"] / flop["training step 256 (batch 1, fwd+bwd)"]
    cpu["training step 256 (fwd+bwd, measured)"] = round(train, 1)
    cpu[f"training step 512 (256 scaled by FLOPs x{scale:.2f})"] = round(train * scale, 1)
    del model
    gc.collect()
    save(result, args.output)
    vae = measure_vae(512)
    cpu.update({"VAE decode 512": round(vae["decode"], 2), "VAE encode 512": round(vae["encode"], 2),
                "per image (50 DDIM steps x 2 for guidance + decode)": round(2 * STEPS * sample + vae["decode"], 1),
                "training step 512 with the VAE encode (scaled)": round(train * scale + vae["encode"], 1)})
    result["peak_rss_mb"] = round(peak_rss_mb())
    result["load_after"] = load()
    save(result, args.output)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
