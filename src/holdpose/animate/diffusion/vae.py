"""VAE encoding (frames to latents) and decoding (latents to ``uint8`` frames)."""

from __future__ import annotations

import numpy as np

from holdpose.animate.diffusion.loading import import_torch

# --- VAE ------------------------------------------------------------------------------


def latent_cell(vae) -> int:
    """Image pixels per latent cell along each side: 2 per VAE downsampling level (SD: 8)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode_frames(vae, frames: np.ndarray, device, dtype):
    """``uint8 [N, H, W, 3]`` -> scaled latents ``[N, C, H/f, W/f]``: the mode of the VAE's
    posterior (no sampling, so a frame's latent does not depend on a generator's state)."""
    torch = import_torch()
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0
    latents = vae.encode(x.to(device=device, dtype=vae.dtype)).latent_dist.mode()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return ((latents - shift) * vae.config.scaling_factor).to(dtype)


def decode_latents(vae, latents) -> np.ndarray:
    """Scaled latents ``[N, C, h, w]`` -> ``uint8 [N, H, W, 3]``, rounded as diffusers'
    image processor does (``(x / 2 + 0.5).clamp(0, 1) * 255``, rounded)."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    images = vae.decode((latents / vae.config.scaling_factor + shift).to(vae.dtype), return_dict=False)[0]
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return (images * 255).round().astype(np.uint8)

