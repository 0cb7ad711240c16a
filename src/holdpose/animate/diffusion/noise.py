"""Noise and scheduling: samplers by short name, the timesteps to run, and initial noise
that depends only on the seed (so frames are the same whatever the batch, window or resume)."""

from __future__ import annotations

from typing import Iterable

from holdpose.animate.base import derive_seed
from holdpose.animate.diffusion.loading import import_diffusers, import_torch
from holdpose.errors import HoldposeError

# name -> (diffusers class, config overrides). All deterministic: no scheduler here draws
# fresh noise per step, so a frame depends only on its initial noise (see shared_noise).
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "heun": ("HeunDiscreteScheduler", {}),
}


def make_scheduler(name: str, config, overrides: dict | None = None):
    """A scheduler of :data:`SCHEDULERS` built from the model's own scheduler config
    (its betas and training steps), with the per-name and caller ``overrides``."""
    diffusers = import_diffusers()
    if name not in SCHEDULERS:
        raise HoldposeError(f"scheduler {name!r} is not supported; choose one of {', '.join(SCHEDULERS)}")
    cls_name, kwargs = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(config, **{**kwargs, **(overrides or {})})


def set_timesteps(scheduler, num_inference_steps: int, strength: float, device):
    """Reset ``scheduler`` and return the timesteps to run: all of them, or for
    image-to-image (``strength < 1``) the last ``strength`` part of them (as diffusers'
    img2img pipelines do). Resetting clears multistep schedulers' history, so every batch
    or clip starts from the same state."""
    scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    if strength >= 1.0:
        return timesteps
    init_steps = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init_steps, 0)
    timesteps = timesteps[t_start * scheduler.order:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * scheduler.order)
    if len(timesteps) == 0:
        raise HoldposeError(f"strength {strength} with {num_inference_steps} steps leaves no denoising step; "
                            "raise --strength or --steps")
    return timesteps



# --- noise --------------------------------------------------------------------------


def shared_noise(seed: int, shape: tuple[int, ...]):
    """One float32 CPU noise tensor drawn from ``torch.Generator().manual_seed(seed)``.

    The frame-by-frame backend gives this same tensor to every frame: a generator that
    advanced from frame to frame would give each frame other noise (more flicker), and
    frame k's noise would depend on how many frames came before (no resuming). Drawn on
    the CPU, so the noise is the same on every device; it equals what a diffusers
    pipeline draws for one image with ``generator=torch.Generator("cpu").manual_seed(seed)``.
    """
    torch = import_torch()
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)


def frame_noise(seed: int, frames: Iterable[int], shape: tuple[int, ...], *, key: int = 1):
    """Noise ``[len(frames), *shape]`` where frame i's noise depends only on (seed, i):
    the same whatever the clip length, window or batch (used for whole-clip models)."""
    torch = import_torch()
    return torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(derive_seed(seed, key, i)),
                                    dtype=torch.float32) for i in frames])

