"""DDIM inversion (SEED_MODULES S4): clean latents to the noise that DDIM sampling maps back to them.

Deterministic DDIM (η = 0) with guidance 1 is an ODE discretisation; running it backwards with
``DDIMInverseScheduler`` (the same noise schedule and number of steps as the sampler) gives the
initial noise ``z_T`` of a latent ``z_0`` (Song et al. 2021, "Denoising Diffusion Implicit
Models", §4.3; PoseCrafter §4.2 inverts its reference frame this way, conditioned on its pose
through the ControlNet).

Each inverse step from level ``s`` to the higher level ``t`` needs ε at ``(x_t, t)``, which is
not known yet; the standard approximation evaluates ε at ``(x_s, t)``. ``refine_iterations``
> 0 solves the step as a fixed point, ``x_t ← step(ε(x_t, t), x_s)``, starting from the
approximation, which makes the inversion match the sampler much more closely when ε varies
quickly with x.

``predict_eps(x, t) -> ε`` is any callable (k-diffusion's convention); :func:`unet_eps` builds
one from a UNet, a prompt embedding and an optional ControlNet.
"""

from __future__ import annotations

from typing import Callable

from holdpose.errors import require
from holdpose.progress import progress_bar

torch = require("torch", "diffusion")
diffusers = require("diffusers", "diffusion")


def _schedulers(scheduler, num_inference_steps: int):
    """A ``DDIMScheduler`` and a ``DDIMInverseScheduler`` with ``scheduler``'s noise schedule
    (any SD scheduler or its config dict), both set to ``num_inference_steps``. Clipping of the
    predicted x₀ is switched off in both: it is not invertible."""
    import inspect

    config = dict(scheduler.config if hasattr(scheduler, "config") else scheduler)
    config["clip_sample"] = False

    def build(cls):
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in config.items() if k in accepted})

    forward, inverse = build(diffusers.DDIMScheduler), build(diffusers.DDIMInverseScheduler)
    forward.set_timesteps(num_inference_steps)
    inverse.set_timesteps(num_inference_steps)
    return forward, inverse


def ddim_invert(predict_eps: Callable, latents, scheduler, num_inference_steps: int = 50, *,
                refine_iterations: int = 0, progress: bool = False):
    """Invert clean ``latents`` (``[B, 4, h, w]``, already scaled by the VAE's scaling factor) to
    ``z_T`` of the same shape. ``scheduler``: the sampler's scheduler or its config.
    Returns ``z_T`` in the latents' dtype; ``predict_eps`` gets that dtype too."""
    _, inverse = _schedulers(scheduler, num_inference_steps)
    x = latents.double()  # the chain runs in float64: 50 steps of float32 rounding cost ~1e-5 relative
    with torch.no_grad():
        for t in progress_bar(inverse.timesteps, desc="invert", unit="step", enabled=progress):
            source = x
            x = inverse.step(_eps(predict_eps, source, t, latents.dtype), t, source).prev_sample
            for _ in range(refine_iterations):
                x = inverse.step(_eps(predict_eps, x, t, latents.dtype), t, source).prev_sample
    return x.to(latents.dtype)


def _eps(predict_eps, x, t, dtype):
    """ε from the model in the latents' dtype, returned in float64 for the chain."""
    return predict_eps(x.to(dtype), t).double()


def ddim_sample(predict_eps: Callable, noise, scheduler, num_inference_steps: int = 50, *, progress: bool = False):
    """Deterministic DDIM (η = 0, guidance as built into ``predict_eps``) from ``noise`` ``z_T``
    to clean latents: the map :func:`ddim_invert` inverts."""
    forward, _ = _schedulers(scheduler, num_inference_steps)
    x = noise.double()
    with torch.no_grad():
        for t in progress_bar(forward.timesteps, desc="sample", unit="step", enabled=progress):
            x = forward.step(_eps(predict_eps, x, t, noise.dtype), t, x, eta=0.0).prev_sample
    return x.to(noise.dtype)


def unet_eps(unet, encoder_hidden_states, *, controlnet=None, control_image=None, controlnet_scale: float = 1.0,
             cross_attention_kwargs=None) -> Callable:
    """``predict_eps(x, t)`` of a UNet at guidance 1 (the conditional branch only), optionally
    with a ControlNet on ``control_image`` (``[B, 3, H, W]`` in [0, 1], as diffusers' pipelines
    feed it). ``encoder_hidden_states`` ``[B or 1, 77, D]`` is broadcast to the batch."""

    def predict(x, t):
        context = encoder_hidden_states.expand(x.shape[0], -1, -1).to(x.dtype)
        extra = {}
        if controlnet is not None:
            down, mid = controlnet(x, t, encoder_hidden_states=context, controlnet_cond=control_image,
                                   conditioning_scale=controlnet_scale, return_dict=False)
            extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return unet(x, t, encoder_hidden_states=context, cross_attention_kwargs=cross_attention_kwargs,
                    **extra).sample

    return predict


def relative_error(estimate, target) -> float:
    """``‖estimate − target‖ / ‖target‖`` (Frobenius), the reconstruction figure of the docs."""
    return float((estimate - target).norm() / target.norm())
