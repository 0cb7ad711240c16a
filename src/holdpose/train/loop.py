"""The ε-prediction training loop the research systems share (SEED_MODULES S3).

One step: draw ``(t, ε)`` from a generator seeded by ``(seed, step, micro-batch)``, noise the
batch's latents with DDPM (``DDPMScheduler.add_noise``), predict ε with the caller's function,
take the (optionally weighted) mean squared error, and after ``accumulate`` micro-batches clip
the gradient norm and step AdamW. Only the parameters whose names match ``trainable`` train;
every other parameter is frozen.

Every ``checkpoint_every`` steps the trainable tensors and the optimizer state are saved
(:mod:`holdpose.train.checkpoint`). A rerun with the same output folder continues from the
last checkpoint and, because every random draw depends only on ``(seed, step)``, ends with the
same weights, bit for bit on the CPU, as a run that was never interrupted.

    result = train(model, predict, sample_batch, "run/", TrainConfig(steps=100, learning_rate=1e-3),
                   trainable=[r"\\.attn1\\.to_out\\."], eval_batch=held_out)

``predict(model, noisy_latents, timesteps, batch) -> ε̂`` with the latents' shape;
``sample_batch(step, micro, rng) -> dict`` with ``"latents"`` (any shape ``[B, ...]``),
optionally ``"loss_weights"`` (broadcastable to the latents) and whatever ``predict`` needs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from holdpose.errors import HoldposeError, require
from holdpose.progress import progress_bar
from holdpose.train import checkpoint as ckpt

torch = require("torch", "diffusion")
logger = logging.getLogger(__name__)

# Stable Diffusion 1.5's training noise schedule (its scheduler_config.json)
SD15_NOISE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
EVAL_STREAM = 1  # SeedSequence branch of the evaluation draws (training draws use 0)


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters; all of them are recorded in every checkpoint's manifest."""

    steps: int = 100
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = 1.0
    accumulate: int = 1  # micro-batches per optimizer step
    seed: int = 0
    shared_timestep: bool = False  # one t for the whole batch (a video given as [F, ...] frames)
    checkpoint_every: int = 50
    keep_checkpoints: int = 2  # older checkpoint folders are deleted (an SD-sized one holds GBs)
    eval_every: int = 10
    eval_draws: int = 4  # fixed (t, ε) pairs of the evaluation loss
    mixed_precision: str = "no"  # "fp16" or "bf16": autocast, on a GPU only
    noise_schedule: dict = dataclasses.field(default_factory=lambda: dict(SD15_NOISE))

    # what must match for a run to resume from a checkpoint
    RESUME_KEYS = ("learning_rate", "weight_decay", "betas", "max_grad_norm", "accumulate", "seed",
                   "shared_timestep", "mixed_precision", "noise_schedule")


@dataclasses.dataclass
class TrainResult:
    output: Path
    steps: int
    trainable_parameters: int
    frozen_parameters: int
    losses: list[float]  # training loss of every step, from step 1
    eval_losses: list[tuple[int, float]]  # (step, held-out loss); step 0 is before training
    resumed_from: int | None
    seconds: float


# --- the pieces -------------------------------------------------------------------------------


def select_trainable(model, patterns: Sequence[str] | Callable[[str], bool]) -> dict:
    """Freeze every parameter of ``model`` except those whose name matches one of the regular
    expressions ``patterns`` (``re.search``; e.g. ``r"\\.attn1\\.to_out\\."``) or for which the
    predicate returns True. Returns name -> parameter, in the model's order."""
    if callable(patterns):
        chosen = patterns
    else:
        regexes = [re.compile(p) for p in patterns]
        chosen = lambda name: any(r.search(name) for r in regexes)  # noqa: E731
    selected = {}
    for name, param in model.named_parameters():
        param.requires_grad_(bool(chosen(name)))
        if param.requires_grad:
            selected[name] = param
    if not selected:
        raise ValueError(f"no parameter of {type(model).__name__} matches the trainable set {patterns!r}")
    return selected


def count_parameters(params) -> int:
    """Exact number of scalars in ``params`` (a dict of parameters, or any iterable of tensors)."""
    values = params.values() if isinstance(params, dict) else params
    seen, total = set(), 0
    for p in values:
        if id(p) not in seen:  # tied weights count once
            seen.add(id(p))
            total += p.numel()
    return total


def epsilon_loss(predicted, target, weights=None):
    """Mean of ``weights · (ε − ε̂)²`` over every element (plain MSE without weights).
    Stable-Pose's masked loss is ``weights = α·M + (1 − M)``."""
    squared = (predicted.float() - target.float()) ** 2
    if weights is not None:
        squared = squared * weights
    return squared.mean()


def draw_noise(shape, *, seed: int, step: int, micro: int = 0, num_train_timesteps: int = 1000,
               shared_timestep: bool = False, stream: int = 0, device="cpu"):
    """``(t, ε)`` for one micro-batch of latents of ``shape`` ``[B, ...]``: ``t`` int64 ``[B]``
    uniform in ``[0, num_train_timesteps)``, ``ε`` standard normal float32 of ``shape``. The draw
    depends only on ``(seed, stream, step, micro)``, which is what makes resume exact."""
    state = np.random.SeedSequence([seed, stream, step, micro]).generate_state(2, dtype=np.uint64)
    generator = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
    count = 1 if shared_timestep else shape[0]
    timesteps = torch.randint(0, num_train_timesteps, (count,), generator=generator).expand(shape[0])
    noise = torch.randn(tuple(shape), generator=generator)
    return timesteps.to(device), noise.to(device)


def batch_rng(seed: int, step: int, micro: int = 0) -> np.random.Generator:
    """The numpy generator ``sample_batch`` receives for ``(step, micro)``: reproducible on resume."""
    return np.random.default_rng([seed, 2, step, micro])


def noise_scheduler(config: TrainConfig):
    diffusers = require("diffusers", "diffusion")
    return diffusers.DDPMScheduler(**config.noise_schedule)


def _autocast(device, mixed_precision: str):
    import contextlib

    if mixed_precision == "no":
        return contextlib.nullcontext()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def _check_config(config: TrainConfig, device) -> None:
    if config.steps < 1 or config.accumulate < 1 or config.eval_draws < 0:
        raise ValueError(f"steps, accumulate must be >= 1 and eval_draws >= 0, got {config.steps}, "
                         f"{config.accumulate}, {config.eval_draws}")
    if config.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {config.mixed_precision!r}")
    if config.mixed_precision != "no" and device.type != "cuda":
        raise HoldposeError(f"mixed precision {config.mixed_precision} needs a GPU; on {device.type} train in "
                            "float32 (mixed_precision='no')")


def noised_loss(model, predict, scheduler, batch, timesteps, noise, mixed_precision="no"):
    """ε-loss of ``predict`` on ``batch["latents"]`` noised to ``timesteps`` with ``noise``."""
    latents = batch["latents"]
    noisy = scheduler.add_noise(latents, noise.to(latents.dtype), timesteps)
    with _autocast(latents.device, mixed_precision):
        predicted = predict(model, noisy, timesteps, batch)
    return epsilon_loss(predicted, noise, batch.get("loss_weights"))


def evaluation_loss(model, predict, batch, config: TrainConfig, scheduler=None) -> float:
    """Mean ε-loss over ``config.eval_draws`` fixed ``(t, ε)`` pairs (the same at every call,
    independent of the training draws), without gradients."""
    scheduler = scheduler or noise_scheduler(config)
    latents = batch["latents"]
    total = 0.0
    with torch.no_grad():
        for index in range(config.eval_draws):
            timesteps, noise = draw_noise(latents.shape, seed=config.seed, step=index, stream=EVAL_STREAM,
                                          num_train_timesteps=scheduler.config.num_train_timesteps,
                                          shared_timestep=config.shared_timestep, device=latents.device)
            total += float(noised_loss(model, predict, scheduler, batch, timesteps, noise, config.mixed_precision))
    return total / max(config.eval_draws, 1)


# --- checkpoints --------------------------------------------------------------------------------


def checkpoint_folders(output: Path) -> list[Path]:
    """Complete checkpoint folders under ``output/checkpoints``, oldest first."""
    root = Path(output) / "checkpoints"
    folders = [p for p in root.glob("step-*") if (p / ckpt.MANIFEST).is_file()] if root.is_dir() else []
    return sorted(folders, key=lambda p: int(p.name.removeprefix("step-")))


def _prune(output: Path, keep: int) -> None:
    import shutil

    for folder in checkpoint_folders(output)[:-max(keep, 1)]:
        shutil.rmtree(folder)


def _config_record(config: TrainConfig) -> dict:
    record = dataclasses.asdict(config)
    record["betas"] = list(record["betas"])
    return record


def _resume(output: Path, config: TrainConfig, params: dict, optimizer) -> tuple[int, dict]:
    """Load the newest checkpoint into ``params`` and ``optimizer``; ``(step, manifest)``, or
    ``(0, {})`` for a fresh run."""
    folders = checkpoint_folders(output)
    if not folders:
        return 0, {}
    tensors, optimizer_state, manifest = ckpt.load_checkpoint(folders[-1])
    saved = manifest["config"]
    mine = _config_record(config)
    changed = [k for k in TrainConfig.RESUME_KEYS if saved.get(k) != mine[k]]
    if sorted(tensors) != sorted(params):
        changed.append("trainable set")
    if changed:
        raise HoldposeError(f"{folders[-1]}: was trained with a different {', '.join(changed)}; resume with the "
                            "same settings or write to a new output folder")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name])
    ckpt.restore_optimizer(optimizer, params, optimizer_state)
    return manifest["step"], manifest


def plot_loss_curve(losses: Sequence[float], eval_losses: Sequence[tuple[int, float]], path: str | os.PathLike,
                    *, title: str = "training") -> Path:
    """PNG of the training loss per step (and its running mean) and the held-out loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from holdpose.refine.plot import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(losses) + 1)
    if len(losses):
        ax.plot(steps, losses, color="0.75", lw=0.8, label="training loss")
        window = max(1, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="C0", lw=1.5, label=f"mean of {window}")
    if eval_losses:
        at, values = zip(*eval_losses)
        ax.plot(at, values, "o-", color="C3", ms=3, label="held-out loss (fixed t, ε)")
    ax.set_xlabel("step")
    ax.set_ylabel("ε-MSE")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


# --- the loop -------------------------------------------------------------------------------------


def train(model, predict: Callable, sample_batch: Callable, output: str | os.PathLike, config: TrainConfig, *,
          trainable: Sequence[str] | Callable[[str], bool], eval_batch: dict | None = None,
          callback: Callable[[int, float], None] | None = None, progress: bool = True) -> TrainResult:
    """Train the ``trainable`` parameters of ``model`` for ``config.steps`` optimizer steps; see
    the module docstring for ``predict`` and ``sample_batch``. Writes ``output/checkpoints/``,
    then ``output/trainable.safetensors`` with ``output/manifest.json`` (the final weights)
    and ``output/loss.png``. Resumes from the newest checkpoint in ``output``.

    ``callback(step, loss)`` runs after every optimizer step (tests stop a run with it)."""
    start_time = time.perf_counter()
    output = Path(output)
    device = next(model.parameters()).device
    _check_config(config, device)
    params = select_trainable(model, trainable)
    frozen = count_parameters(dict(model.named_parameters())) - count_parameters(params)
    optimizer = torch.optim.AdamW(params.values(), lr=config.learning_rate, betas=config.betas,
                                  weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=config.mixed_precision == "fp16")
    scheduler = noise_scheduler(config)
    start, manifest = _resume(output, config, params, optimizer)
    losses = list(manifest.get("losses", []))
    eval_losses = [tuple(x) for x in manifest.get("eval_losses", [])]
    if start:
        logger.info("%s: resuming at step %d of %d", output, start, config.steps)
    if eval_batch is not None and not eval_losses:
        eval_losses.append((0, evaluation_loss(model, predict, eval_batch, config, scheduler)))
    logger.info("training %d parameters (%d frozen) for %d steps", count_parameters(params), frozen, config.steps)

    def record(step: int) -> dict:
        return {"step": step, "config": _config_record(config), "losses": losses, "eval_losses": eval_losses,
                "frozen_parameters": frozen}

    model.train()
    bar = progress_bar(range(start + 1, config.steps + 1), total=config.steps, initial=start, desc="train",
                       unit="step", enabled=progress)
    for step in bar:
        loss = _optimizer_step(model, predict, sample_batch, scheduler, optimizer, scaler, params, config, step)
        losses.append(loss)
        if eval_batch is not None and (step % config.eval_every == 0 or step == config.steps):
            eval_losses.append((step, evaluation_loss(model, predict, eval_batch, config, scheduler)))
            model.train()
        bar.set_postfix(loss=f"{loss:.4f}")
        if step % config.checkpoint_every == 0 or step == config.steps:
            ckpt.save_checkpoint(output / "checkpoints" / f"step-{step:06d}", params, record(step), optimizer)
            _prune(output, config.keep_checkpoints)
        if callback is not None:
            callback(step, loss)
    model.eval()
    ckpt.save_checkpoint(output / "final", params, record(config.steps))
    for name in (ckpt.TRAINABLE, ckpt.MANIFEST):
        os.replace(output / "final" / name, output / name)
    (output / "final").rmdir()
    plot_loss_curve(losses, eval_losses, output / "loss.png")
    return TrainResult(output, config.steps, count_parameters(params), frozen, losses, eval_losses,
                       start or None, time.perf_counter() - start_time)


def _optimizer_step(model, predict, sample_batch, scheduler, optimizer, scaler, params, config, step) -> float:
    """One optimizer step over ``config.accumulate`` micro-batches; returns the mean loss."""
    total = 0.0
    for micro in range(config.accumulate):
        batch = sample_batch(step, micro, batch_rng(config.seed, step, micro))
        latents = batch["latents"]
        timesteps, noise = draw_noise(latents.shape, seed=config.seed, step=step, micro=micro,
                                      num_train_timesteps=scheduler.config.num_train_timesteps,
                                      shared_timestep=config.shared_timestep, device=latents.device)
        loss = noised_loss(model, predict, scheduler, batch, timesteps, noise, config.mixed_precision)
        scaler.scale(loss / config.accumulate).backward()
        total += float(loss.detach())
    if config.max_grad_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(list(params.values()), config.max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return total / config.accumulate
