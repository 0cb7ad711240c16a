"""Benchmark: the diffusion toolkit (holdpose.train) on this CPU, tiny and SD 1.5-sized models at random weights.

The figures of issue 11:

1. Injection: zero-initialised attention additions (every ``attn1``) and a zero-initialised side
   network leave the UNet output bit-identical, on the tiny test UNet and on the SD 1.5
   architecture (its published ``unet/config.json``, random weights, 64x64 latents); residual
   hooks equal the residual arguments bit for bit.
2. Inversion: an ε that does not depend on x reconstructs to <= 1e-5 relative; the tiny UNet with
   weights x0.1 to < 0.05 at 50 steps, improving with steps; the raw tiny UNet with and without
   fixed-point refinement.
3. Training on one 8-frame 64x64 fixture clip (videos/dance_musepose_dance.mp4, every 4th frame)
   with the tiny models: held-out ε-loss before and after, per trainable set (6 frames train, 2
   are held out, fixed (t, ε) draws); a run killed (SIGKILL) after its first checkpoint and
   resumed ends bit-identical to an uninterrupted run; peak RSS at 20 and 80 steps.
4. SD 1.5 architecture at 512x512 (64x64 latents), batch 1: seconds per training step for each
   trainable set (2 steps, the second is reported), the FLOPs of one step (torch's FlopCounterMode)
   and a GPU time FLOP-scaled from them (an ESTIMATE, not a measurement).

Every run that measures memory or might be killed is a separate process.

    .venv/bin/python bench/bench_toolkit.py                 # everything (~25 min on a busy 2-core machine)
    .venv/bin/python bench/bench_toolkit.py --skip-sd15     # the tiny-model figures only (~5 min)

Prints a summary and writes bench/results/toolkit.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from _common import git_state, load  # noqa: E402
from bench_diffusion import SD15_UNET, peak_rss_mb  # noqa: E402

RESULTS = REPO / "bench" / "results" / "toolkit.json"
CLIP_VIDEO = REPO.parent / "shared" / "fixtures" / "videos" / "dance_musepose_dance.mp4"
# trainable sets: name -> (regex over parameter names, learning rate)
TINY_SETS = {
    "attn1_out": (r"attn1\.to_out\.", 3e-3),  # PoseCrafter-like (key-frame attention outputs)
    "attention": (r"\.attentions\.", 1e-3),  # every transformer block
    "full": (r".", 1e-3),  # full fine-tune
    "side_network": (r"^side\.", 1e-3),  # a ControlNet-like side network over the frozen UNet
}
SD15_SETS = ("attn1_out", "attention", "side_network")
# GPU throughput assumed for the FLOP-scaled estimate: dense bf16 peak x a typical 40 % utilisation
THREADS = [1]  # torch threads of this process and its workers (--threads)
GPU_ASSUMPTIONS = {"A100 (bf16 312 TFLOP/s peak, 40 % used)": 312e12 * 0.4,
                   "H100 SXM (bf16 989 TFLOP/s peak, 40 % used)": 989e12 * 0.4}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --- shared model pieces -----------------------------------------------------------------------


def make_denoiser(unet, with_side: bool):
    """A module holding the UNet (and a side network): its ``predict`` is what training calls."""
    import torch

    from holdpose.train.side import SideNetwork

    class Denoiser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet = unet
            self.side = SideNetwork.from_unet(unet) if with_side else None

        def forward(self, noisy, timesteps, context):
            extra = {}
            if self.side is not None:
                down, mid = self.side(noisy, timesteps, context)
                extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
            return self.unet(noisy, timesteps, context, **extra).sample

    return Denoiser()


def sd15_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**SD15_UNET)


def clip_latents():
    """The 8-frame 64x64 fixture clip through the tiny VAE (latent mean x its scaling factor): [8, 4, 32, 32]."""
    import torch
    from diffusion_fixtures import tiny_vae

    from holdpose.io.video import FrameSource

    frames = []
    for index, frame in enumerate(FrameSource(CLIP_VIDEO, short_side=64)):
        if index % 4 == 0:
            h, w = frame.shape[:2]
            top, left = (h - 64) // 2, (w - 64) // 2
            frames.append(frame[top:top + 64, left:left + 64])
        if len(frames) == 8:
            break
    torch.manual_seed(0)
    vae = tiny_vae().eval()
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


# --- 1. injection ---------------------------------------------------------------------------------


def injection_identity(unet, context, size: int) -> dict:
    import torch

    from holdpose.train.inject import AdditiveProcessor, ZeroLinear, inject_processors
    from holdpose.train.side import SideNetwork, residual_hooks

    unet.eval()
    x = torch.randn(1, 4, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = unet(x, 500, context).sample
        side = SideNetwork.from_unet(unet).eval()
        down, mid = side(x, 500, context)
        with_side = unet(x, 500, context, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample
        with residual_hooks(unet, down, mid):
            hooked = unet(x, 500, context).sample
        names = inject_processors(unet, r"\.attn1\.processor$",
                                  lambda name, attn: AdditiveProcessor(ZeroLinear(attn.query_dim)))
        injected = unet(x, 500, context).sample
    return {"attn1_processors_replaced": len(names), "latent_size": size,
            "injected_bit_identical": bool(torch.equal(injected, before)),
            "side_network_bit_identical": bool(torch.equal(with_side, before)),
            "hooks_bit_identical": bool(torch.equal(hooked, with_side)),
            "max_abs_difference": float(max((injected - before).abs().max(), (with_side - before).abs().max()))}


def bench_injection(skip_sd15: bool) -> dict:
    import torch
    from diffusion_fixtures import tiny_unet

    torch.manual_seed(0)
    out = {"tiny": injection_identity(tiny_unet(), torch.randn(1, 77, 32), 32)}
    if not skip_sd15:
        log("injection: SD 1.5 architecture at 64x64 latents")
        out["sd15"] = injection_identity(sd15_unet(), torch.randn(1, 77, 768), 64)
    return out


# --- 2. inversion ---------------------------------------------------------------------------------


def bench_inversion() -> dict:
    import torch
    from diffusion_fixtures import sd15_scheduler, tiny_unet

    from holdpose.train.inversion import ddim_invert, ddim_sample, relative_error, unet_eps

    def error(predict, z0, steps, refine=0):
        z_t = ddim_invert(predict, z0, sd15_scheduler(), steps, refine_iterations=refine)
        return relative_error(ddim_sample(predict, z_t, sd15_scheduler(), steps), z0)

    z0 = clip_latents()[:1]
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    unet = tiny_unet().eval()
    context = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(9))
    raw = unet_eps(unet, context)
    out = {"x_independent_eps_50": error(lambda x, t: eps, z0, 50),
           "raw_tiny_50": error(raw, z0, 50), "raw_tiny_50_refine3": error(raw, z0, 50, refine=3)}
    with torch.no_grad():
        for p in unet.parameters():
            p.mul_(0.1)
    out["damped_tiny"] = {steps: error(raw, z0, steps) for steps in (10, 50, 200)}
    out["damped_tiny_10_refine3"] = error(raw, z0, 10, refine=3)
    return out


# --- 3. tiny training -------------------------------------------------------------------------------


def tiny_training(name: str, steps: int, output: Path, *, seed: int = 0, checkpoint_every: int = 10) -> dict:
    """Train one trainable set on 6 frames of the clip; held-out loss on the other 2."""
    import torch
    from diffusion_fixtures import tiny_unet

    from holdpose.train.loop import TrainConfig, train

    torch.manual_seed(0)
    latents = clip_latents()
    train_frames, held_out = latents[[0, 1, 2, 4, 5, 7]], latents[[3, 6]]
    context = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(5))
    model = make_denoiser(tiny_unet(), with_side=name == "side_network")
    pattern, lr = TINY_SETS[name]

    def predict(m, noisy, timesteps, batch):
        return m(noisy, timesteps, context.expand(noisy.shape[0], -1, -1))

    def sample_batch(step, micro, rng):
        return {"latents": train_frames[np.sort(rng.choice(len(train_frames), 2, replace=False))]}

    config = TrainConfig(steps=steps, learning_rate=lr, seed=seed, eval_every=max(steps // 4, 1), eval_draws=8,
                         checkpoint_every=checkpoint_every)
    result = train(model, predict, sample_batch, output, config, trainable=[pattern],
                   eval_batch={"latents": held_out}, progress=False)
    before, after = result.eval_losses[0][1], result.eval_losses[-1][1]
    return {"set": name, "pattern": pattern, "learning_rate": lr, "steps": steps,
            "trainable_parameters": result.trainable_parameters, "frozen_parameters": result.frozen_parameters,
            "held_out_loss_before": before, "held_out_loss_after": after, "change": after / before - 1,
            "eval_losses": result.eval_losses, "seconds": result.seconds, "peak_rss_mb": peak_rss_mb()}


def worker_command(kind: str, options: dict) -> list[str]:
    return [sys.executable, __file__, "--worker", kind, "--options", json.dumps(options),
            "--threads", str(THREADS[0])]


def run_worker(kind: str, options: dict) -> dict:
    """Run a worker in a fresh process; returns its JSON line."""
    command = worker_command(kind, options)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"worker {kind} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_resume(root: Path, steps: int) -> dict:
    """Kill a training with SIGKILL once its first checkpoint exists, resume, compare with an
    uninterrupted run."""
    from safetensors.torch import load_file

    whole = run_worker("train", {"name": "attn1_out", "steps": steps, "output": str(root / "whole")})
    killed_at = None
    command = worker_command("train", {"name": "attn1_out", "steps": steps, "output": str(root / "killed")})
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    first = root / "killed" / "checkpoints" / "step-000010" / "manifest.json"
    while proc.poll() is None:
        if first.exists():
            time.sleep(0.3)  # let it get past the checkpoint into the next steps
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = sorted(p.name for p in (root / "killed" / "checkpoints").iterdir())
            break
        time.sleep(0.05)
    resumed = run_worker("train", {"name": "attn1_out", "steps": steps, "output": str(root / "killed")})
    a = load_file(str(root / "whole" / "trainable.safetensors"))
    b = load_file(str(root / "killed" / "trainable.safetensors"))
    import torch

    return {"steps": steps, "killed": killed_at is not None, "checkpoints_when_killed": killed_at,
            "bit_identical": a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a),
            "held_out_loss_whole": whole["held_out_loss_after"], "held_out_loss_resumed": resumed["held_out_loss_after"]}


# --- 4. SD 1.5 step time ------------------------------------------------------------------------


def sd15_step(name: str, steps: int = 2) -> dict:
    """Seconds per training step of the SD 1.5 UNet at 64x64 latents, batch 1, one trainable set."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from holdpose.train.loop import TrainConfig, count_parameters, draw_noise, epsilon_loss, noise_scheduler
    from holdpose.train.loop import select_trainable

    torch.manual_seed(0)
    start = time.perf_counter()
    model = make_denoiser(sd15_unet(), with_side=name == "side_network")
    build = time.perf_counter() - start
    params = select_trainable(model, [TINY_SETS[name][0]])
    optimizer = torch.optim.AdamW(params.values(), lr=1e-5)
    scheduler = noise_scheduler(TrainConfig())
    latents = torch.randn(1, 4, 64, 64)
    context = torch.randn(1, 77, 768)
    times, flops = [], None
    for step in range(steps):
        t, eps = draw_noise(latents.shape, seed=0, step=step)
        counter = FlopCounterMode(display=False) if step == 0 else None
        begin = time.perf_counter()
        with counter if counter is not None else _null():
            loss = epsilon_loss(model(scheduler.add_noise(latents, eps, t), t, context), eps)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - begin)
        if counter is not None:
            flops = counter.get_total_flops()
    return {"set": name, "trainable_parameters": count_parameters(params), "build_seconds": build,
            "step_seconds": times, "flops_per_step": flops, "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}


def _null():
    import contextlib

    return contextlib.nullcontext()


# --- main --------------------------------------------------------------------------------------------


def worker_main(kind: str, options: dict) -> None:
    if kind == "train":
        result = tiny_training(options["name"], options["steps"], Path(options["output"]))
    elif kind == "sd15":
        result = sd15_step(options["name"], options.get("steps", 2))
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps(result))


def summary(result: dict) -> str:
    lines = ["| figure | value |", "|---|---|"]
    for size, r in result["injection"].items():
        lines.append(f"| injection bit-identical ({size}) | attn1 x{r['attn1_processors_replaced']}: "
                     f"{r['injected_bit_identical']}, side network: {r['side_network_bit_identical']}, "
                     f"hooks = arguments: {r['hooks_bit_identical']} |")
    inv = result["inversion"]
    lines.append(f"| inversion, x-independent ε, 50 steps | {inv['x_independent_eps_50']:.2e} |")
    lines.append("| inversion, tiny UNet x0.1 (10/50/200 steps) | "
                 + " / ".join(f"{v:.4f}" for v in inv["damped_tiny"].values()) + " |")
    lines.append(f"| inversion, raw tiny UNet 50 steps (plain / 3 fixed-point iterations) | "
                 f"{inv['raw_tiny_50']:.3f} / {inv['raw_tiny_50_refine3']:.3f} |")
    for r in result["training"]:
        lines.append(f"| held-out ε-loss, {r['set']} ({r['trainable_parameters']:,} params, lr {r['learning_rate']:g}, "
                     f"{r['steps']} steps) | {r['held_out_loss_before']:.4f} → {r['held_out_loss_after']:.4f} "
                     f"({100 * r['change']:+.1f} %), {r['seconds']:.0f} s |")
    res = result["resume"]
    lines.append(f"| resume after SIGKILL bit-identical | {res['bit_identical']} (killed: {res['killed']}) |")
    rss = result["rss"]
    lines.append(f"| peak RSS, {rss[0]['steps']} vs {rss[1]['steps']} steps | {rss[0]['peak_rss_mb']:.0f} MB vs "
                 f"{rss[1]['peak_rss_mb']:.0f} MB |")
    for r in result.get("sd15", []):
        gpu = "; ".join(f"{k.split(' (')[0]} ≈ {v * 1000:.0f} ms" for k, v in r["gpu_estimate_seconds"].items())
        lines.append(f"| SD 1.5 512² step, {r['set']} ({r['trainable_parameters']:,} params) | CPU "
                     f"{r['step_seconds'][-1]:.1f} s, {r['flops_per_step'] / 1e12:.2f} TFLOP, peak RSS "
                     f"{r['peak_rss_mb'] / 1024:.1f} GB; GPU ESTIMATE {gpu} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-sd15", action="store_true", help="tiny-model figures only")
    parser.add_argument("--steps", type=int, default=60, help="tiny training steps per trainable set")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine two OpenMP threads spin and "
                        "run the tiny UNet 17x slower, measured 6.1 s vs 0.36 s a forward)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    THREADS[0] = args.threads
    torch.set_num_threads(args.threads)
    if args.worker:
        return worker_main(args.worker, json.loads(args.options))

    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": git_state(), "load_before": load(), "torch_threads": torch.get_num_threads(),
              "command": "python bench/bench_toolkit.py" + (" --skip-sd15" if args.skip_sd15 else "")}
    log("injection")
    result["injection"] = bench_injection(args.skip_sd15)
    log("inversion")
    result["inversion"] = bench_inversion()
    with tempfile.TemporaryDirectory(prefix="holdpose-bench-toolkit-") as tmp:
        root = Path(tmp)
        result["training"] = []
        for name in TINY_SETS:
            log(f"training: {name}")
            result["training"].append(run_worker("train", {"name": name, "steps": args.steps,
                                                           "output": str(root / name)}))
        log("resume after kill")
        result["resume"] = bench_resume(root / "resume", 30)
        log("peak RSS vs steps")
        result["rss"] = [run_worker("train", {"name": "attn1_out", "steps": n, "output": str(root / f"rss{n}")})
                         for n in (20, 80)]
    if not args.skip_sd15:
        result["sd15"] = []
        for name in SD15_SETS:
            log(f"SD 1.5 training step: {name}")
            r = run_worker("sd15", {"name": name})
            r["gpu_estimate_seconds"] = {gpu: r["flops_per_step"] / rate for gpu, rate in GPU_ASSUMPTIONS.items()}
            r["cpu_flops_per_second"] = r["flops_per_step"] / r["step_seconds"][-1]
            result["sd15"].append(r)
    result["load_after"] = load()
    result["summary"] = summary(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(result["summary"])


if __name__ == "__main__":
    main()
