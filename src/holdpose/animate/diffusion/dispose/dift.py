"""Keypoint features of the reference from the diffusion model itself (DIFT, Tang et al. 2023), as
DisPose uses them (§3.3): the reference's VAE latent (sampled), noised to t = 261 with the DDIM
schedule, through the SD 1.5 UNet with the prompt "photo of a human"; the output of
``up_blocks[1]`` (``[1, 1280, H/16, W/16]`` for SD 1.5) averaged over an ensemble of 8 noises,
then sampled bilinearly at the reference's keypoints: ``[K, 1280]`` (zeros for a missing point).

Deterministic for a seed: the latent sample and the noises come from one seeded generator.
"""

from __future__ import annotations

import numpy as np

from holdpose.errors import require

torch = require("torch", "diffusion")

DIFT_TIMESTEP = 261
DIFT_ENSEMBLE = 8
DIFT_UP_BLOCK = 1
DIFT_PROMPT = "photo of a human"


def dift_noise(latent_shape, ensemble: int = DIFT_ENSEMBLE, seed: int = 0):
    """The ensemble's noises ``[ensemble, C, h, w]`` for ``seed`` (float32, CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((ensemble, *latent_shape), generator=generator)


def up_block_features(unet, latents, timestep, text, up_block: int = DIFT_UP_BLOCK):
    """The output of ``unet.up_blocks[up_block]`` for ``latents [E, C, h, w]`` at ``timestep``
    (``text``: ``[1, L, D]`` or ``[E, L, D]``), ``[E, C', h', w']``. The UNet's later blocks
    still run (the output is caught by a hook); gradients are off."""
    caught = {}

    def keep(module, args, output):
        caught["features"] = output

    handle = unet.up_blocks[up_block].register_forward_hook(keep)
    try:
        with torch.no_grad():
            unet(latents, timestep, encoder_hidden_states=text.expand(len(latents), -1, -1), return_dict=False)
    finally:
        handle.remove()
    return caught["features"]


def dift_features(unet, vae, scheduler, image, text, *, seed: int = 0, timestep: int = DIFT_TIMESTEP,
                  ensemble: int = DIFT_ENSEMBLE, up_block: int = DIFT_UP_BLOCK, noise=None):
    """DIFT features of ``image`` (``[1, 3, H, W]`` in [-1, 1]): ``[1, C', h', w']``, the mean of
    the up-block features over ``ensemble`` noisings of one sampled latent. ``noise`` overrides
    the seeded ensemble (``[E, C, h, w]``); ``scheduler`` gives ``add_noise`` (DDIM's schedule)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        posterior = vae.encode(image.to(vae.device, vae.dtype)).latent_dist
        sample = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(
            posterior.mean.device, posterior.mean.dtype)
        latent = sample * vae.config.scaling_factor
    if noise is None:
        noise = dift_noise(latent.shape[1:], ensemble, seed + 1)
    noise = noise.to(latent.device, latent.dtype)
    t = torch.full((len(noise),), timestep, dtype=torch.long, device=latent.device)
    noisy = scheduler.add_noise(latent.expand(len(noise), -1, -1, -1), noise, t)
    features = up_block_features(unet, noisy, t, text.to(latent.device, latent.dtype), up_block)
    return features.mean(0, keepdim=True)


def sample_at_points(features, points: np.ndarray, present: np.ndarray, size: tuple[int, int]):
    """Bilinear samples of ``features [1, C, h, w]`` at ``points [K, 2]`` pixels of a canvas of
    ``size`` = ``(W, H)``; ``[K, C]``, zeros where ``present`` is False."""
    width, height = size
    points = np.asarray(points, np.float64)
    grid = np.stack([2 * points[:, 0] / width - 1, 2 * points[:, 1] / height - 1], -1)  # pixel edges at ±1
    grid = torch.as_tensor(grid, dtype=features.dtype, device=features.device).view(1, 1, -1, 2)
    sampled = torch.nn.functional.grid_sample(features, grid, mode="bilinear", align_corners=False)
    sampled = sampled[0, :, 0].T  # [K, C]
    keep = torch.as_tensor(np.asarray(present, bool), device=features.device)[:, None]
    return torch.where(keep, sampled, torch.zeros_like(sampled))


def reference_point_features(unet, vae, scheduler_config, image: np.ndarray, text, points: np.ndarray,
                             present: np.ndarray, *, device, ensemble: int = DIFT_ENSEMBLE, seed: int = 0):
    """DisPose's keypoint features of a reference: DIFT of ``image`` (``uint8 [H, W, 3]``, RGB) at
    its ``points`` ``[K, 2]`` (pixels of the image), ``([K, C], (h, w) of the feature map)``; the
    noise schedule is the base model's own (DDIM over ``scheduler_config``). Generation and
    training both take their reference features here."""
    from holdpose.animate.diffusion.noise import make_scheduler

    height, width = image.shape[:2]
    pixels = torch.from_numpy(image.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None].to(device)
    scheduler = make_scheduler("ddim", scheduler_config, {})
    features = dift_features(unet, vae, scheduler, pixels, text, seed=seed, ensemble=ensemble)
    return sample_at_points(features, points, present, (width, height)), tuple(features.shape[-2:])
