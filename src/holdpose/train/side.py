"""Side networks (SEED_MODULES S2): a ControlNet-like encoder built from a UNet, and hooks that
feed its residuals to a UNet that takes no residual arguments.

:class:`SideNetwork` copies a ``UNet2DConditionModel``'s ``conv_in``, time embedding, down blocks
and mid block (as ``ControlNetModel.from_unet`` does) and adds one zero-initialised 1x1 output
convolution per skip connection and one for the mid block. Its parameter names are
``ControlNetModel``'s (``conv_in``, ``time_embedding``, ``down_blocks``, ``mid_block``,
``controlnet_cond_embedding``, ``controlnet_down_blocks``, ``controlnet_mid_block``), so a
ControlNet's state dict loads into it and published side networks convert with few renames.

Two slots make it more than a ControlNet:

- ``condition_encoder`` (stored as ``controlnet_cond_embedding``): any module whose output,
  ``[B, C0, h, w]`` at the latent size, is added to the ``conv_in`` output, or ``None`` (Stable-Pose
  feeds its pose image elsewhere, through an injected block);
- ``block_additions`` at call time: per down block, a tensor added to the hidden state passed on
  *after* that block; the block's own skip outputs are unchanged (DisPose's point features).

The outputs go to ``unet(..., down_block_additional_residuals=..., mid_block_additional_residual=...)``.
For video UNets without those arguments (``UNetSpatioTemporalConditionModel``),
:func:`residual_hooks` adds them through hooks: a pre-hook on each up block adds to the skip
tuple it receives, and a hook on the mid block adds to its output, both out of place, which is
exactly what the residual arguments do.
"""

from __future__ import annotations

import contextlib
import copy

from holdpose.errors import require
from holdpose.train.inject import zero_conv

torch = require("torch", "diffusion")


def skip_channels(unet) -> list[int]:
    """Channels of each skip connection of ``unet`` in order (``conv_in`` first): 12 for SD 1.5."""
    widths = unet.config.block_out_channels
    channels = [widths[0]]
    for width, block in zip(widths, unet.down_blocks):
        channels += [width] * (len(block.resnets) + (block.downsamplers is not None))
    return channels


class SideNetwork(torch.nn.Module):
    """A trainable copy of a UNet's encoder whose zero-initialised outputs add to the UNet's
    skip connections and mid block. Build with :meth:`from_unet`."""

    def __init__(self, conv_in, time_proj, time_embedding, down_blocks, mid_block, channels: list[int],
                 condition_encoder=None, add_time_proj=None, add_embedding=None):
        super().__init__()
        self.conv_in = conv_in
        self.time_proj = time_proj
        self.time_embedding = time_embedding
        self.add_time_proj = add_time_proj  # SVD's added-time-ids embedding (fps, motion bucket, noise aug)
        self.add_embedding = add_embedding
        self.controlnet_cond_embedding = condition_encoder
        self.down_blocks = down_blocks
        self.mid_block = mid_block
        self.controlnet_down_blocks = torch.nn.ModuleList(zero_conv(c) for c in channels)
        self.controlnet_mid_block = zero_conv(channels[-1])

    @classmethod
    def from_unet(cls, unet, *, condition_encoder=None) -> "SideNetwork":
        """Copy ``unet``'s encoder and weights; ``unet`` itself is not changed. Takes SD-style
        ``UNet2DConditionModel`` s (no class or added text embeddings, as SD 1.5) and SVD's
        ``UNetSpatioTemporalConditionModel`` (its added-time-ids embedding is copied too)."""
        video = type(unet).__name__ == "UNetSpatioTemporalConditionModel"
        if getattr(unet, "class_embedding", None) is not None or unet.config.get("addition_embed_type"):
            raise ValueError(f"{type(unet).__name__} has class or added text embeddings; SideNetwork copies "
                             "SD 1.5-style and SVD UNets")
        names = ["conv_in", "time_proj", "time_embedding", "down_blocks", "mid_block"]
        parts = {name: copy.deepcopy(getattr(unet, name)) for name in names}
        if video:
            parts.update(add_time_proj=copy.deepcopy(unet.add_time_proj),
                         add_embedding=copy.deepcopy(unet.add_embedding))
        return cls(**parts, channels=skip_channels(unet), condition_encoder=condition_encoder)

    def _embed_time(self, sample, timestep, added_time_ids):
        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps[None]
        t_emb = self.time_proj(timesteps.expand(sample.shape[0])).to(sample.dtype)
        emb = self.time_embedding(t_emb)
        if self.add_embedding is not None:
            if added_time_ids is None:
                raise ValueError("an SVD side network needs added_time_ids= (as the UNet does)")
            time_embeds = self.add_time_proj(added_time_ids.flatten()).reshape(sample.shape[0], -1)
            emb = emb + self.add_embedding(time_embeds.to(emb.dtype))
        return emb

    def forward(self, sample, timestep, encoder_hidden_states, *, condition=None, block_additions=None,
                conditioning_scale: float = 1.0, cross_attention_kwargs=None, added_time_ids=None):
        """Residuals for the UNet at latents ``sample`` and ``timestep``.

        ``sample`` is ``[B, 4, h, w]``, or ``[B, F, C, h, w]`` for an SVD UNet (which also needs
        ``added_time_ids`` ``[B, 3]``; residuals are then ``[B·F, ...]`` as the UNet's skips).
        ``condition`` is the condition encoder's input (required when it has one);
        ``block_additions[i]``, when not ``None``, is added to the hidden state after down block
        ``i``. Returns ``(down_residuals, mid_residual)``: a list of 12 tensors for SD 1.5 and
        one tensor, each multiplied by ``conditioning_scale``.
        """
        emb = self._embed_time(sample, timestep, added_time_ids)
        block_kwargs = {}
        if sample.ndim == 5:  # SVD: frames fold into the batch, as in the UNet's own forward
            batch, frames = sample.shape[:2]
            sample = sample.flatten(0, 1)
            emb = emb.repeat_interleave(frames, dim=0)
            encoder_hidden_states = encoder_hidden_states.repeat_interleave(frames, dim=0)
            block_kwargs["image_only_indicator"] = torch.zeros(batch, frames, dtype=sample.dtype,
                                                               device=sample.device)
        elif cross_attention_kwargs is not None:
            block_kwargs["cross_attention_kwargs"] = cross_attention_kwargs
        sample = self.conv_in(sample)
        if self.controlnet_cond_embedding is not None:
            if condition is None:
                raise ValueError("this side network has a condition encoder: pass condition=")
            sample = sample + self.controlnet_cond_embedding(condition)
        skips = [sample]
        for index, block in enumerate(self.down_blocks):
            if getattr(block, "has_cross_attention", False):
                sample, res = block(hidden_states=sample, temb=emb, encoder_hidden_states=encoder_hidden_states,
                                    **block_kwargs)
            else:
                sample, res = block(hidden_states=sample, temb=emb,
                                    **{k: v for k, v in block_kwargs.items() if k == "image_only_indicator"})
            skips += res
            if block_additions is not None and block_additions[index] is not None:
                sample = sample + block_additions[index]
        if getattr(self.mid_block, "has_cross_attention", False):
            sample = self.mid_block(sample, emb, encoder_hidden_states=encoder_hidden_states, **block_kwargs)
        else:
            sample = self.mid_block(sample, emb)
        down = [conv(skip) * conditioning_scale for skip, conv in zip(skips, self.controlnet_down_blocks)]
        return down, self.controlnet_mid_block(sample) * conditioning_scale


@contextlib.contextmanager
def residual_hooks(unet, down_residuals, mid_residual=None):
    """Inside the block, every forward of ``unet`` adds ``down_residuals`` (in the order of
    :func:`skip_channels`) to its skip connections and ``mid_residual`` to its mid block's output.

    For UNets whose ``forward`` takes no ``down_block_additional_residuals`` (SVD's
    ``UNetSpatioTemporalConditionModel``); on a ``UNet2DConditionModel`` the result is
    bit-identical to passing the residuals as arguments. Each up block receives its skips as
    the keyword ``res_hidden_states_tuple`` (the last ``len(resnets)`` skips not yet used);
    a forward pre-hook replaces that tuple with a new one, so the tensors the down blocks
    returned, and the hidden state they passed on, are never modified.
    """
    residuals = list(down_residuals)
    handles = []
    end = len(residuals)
    for block in unet.up_blocks:
        start = end - len(block.resnets)
        chunk = residuals[start:end]
        end = start

        def add_to_skips(module, args, kwargs, chunk=chunk):
            skips = kwargs["res_hidden_states_tuple"]
            kwargs["res_hidden_states_tuple"] = tuple(s + r for s, r in zip(skips, chunk, strict=True))
            return args, kwargs

        handles.append(block.register_forward_pre_hook(add_to_skips, with_kwargs=True))
    if end != 0:
        for handle in handles:
            handle.remove()
        raise ValueError(f"{len(residuals)} residuals for a UNet whose up blocks take {len(residuals) - end}")
    if mid_residual is not None:
        handles.append(unet.mid_block.register_forward_hook(lambda module, args, out: out + mid_residual))
    try:
        yield unet
    finally:
        for handle in handles:
            handle.remove()
