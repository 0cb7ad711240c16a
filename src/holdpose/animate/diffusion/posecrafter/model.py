"""PoseCrafter's video model: SD 1.5 + OpenPose ControlNet, inflated to video (SEED_MODULES §2, Model).

A video is a batch of frames ``[B·F, C, h, w]`` (``B`` videos of ``F`` frames, frame axis
inner); the number of frames ``F`` and the key frame ``k`` live in one :class:`FrameLayout`
shared by every injected processor, set by each :class:`PoseCrafterModel` call (diffusers drops
``cross_attention_kwargs`` that an ``nn.Module`` processor's signature does not name, so
they cannot carry ``F``).

1. **Key-frame attention** in every ``attn1`` of the UNet and the ControlNet: frame ``j``
   attends to the keys and values of key frame ``k``,
   ``Attn(Q_j, K_k, V_k) = softmax(Q_j K_kᵀ / √d) V_k`` (ControlVideo ``libs/attention.py``
   ``KeyFrameAttention``). No new parameters; with ``F = 1`` it is standard self-attention.
2. **Temporal attention**, UNet only: the same ``norm1(h)`` tokens reshaped to
   ``[(B·h·w), F, C]``, multi-head self-attention over the frames (heads and widths as
   ``attn1``, initialised from its q, k, v, out, no positional encoding), then a
   zero-initialised 1×1 convolution C→C. The ``attn1`` processor returns the sum, so the
   block computes ``h ← h + KF(norm1 h) + conv(Temp(norm1 h))``.

Without a positional encoding, ``F`` identical frames give ``F`` identical outputs equal to
the one-frame output (temporal attention averages equal values), which is why PoseCrafter
inverts its reference frame once and replicates the noise.

This module imports torch when imported; the light modules import it inside functions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from holdpose.animate.diffusion.posecrafter.config import DEFAULT_TRAINABLE, TRAINABLE_SETS
from holdpose.errors import require
from holdpose.train.inject import inject_processors, zero_conv

torch = require("torch", "diffusion")

SELF_ATTENTION = r"\.attn1\.processor$"
TEMPORAL_PARTS = ("attn_temp", "conv_temp")



@dataclass
class FrameLayout:
    """How the batch of an inflated model's call is a video: ``num_frames`` frames per video,
    frame ``key_frame`` the one every frame's key-frame attention reads."""

    num_frames: int = 1
    key_frame: int = 0

    def videos(self, batch: int) -> int:
        """Videos in a batch of ``batch`` frames (``B`` of ``[B·F, ...]``)."""
        if batch % self.num_frames:
            raise ValueError(f"a batch of {batch} frames is not a whole number of {self.num_frames}-frame videos")
        return batch // self.num_frames


def _heads(x, batch: int, heads: int):
    """``[batch, L, heads·d]`` -> ``[batch, heads, L, d]``."""
    return x.view(batch, -1, heads, x.shape[-1] // heads).transpose(1, 2)


def key_frame_attention(attn, hidden_states, layout: FrameLayout):
    """``attn``'s self-attention with every frame's queries against the key frame's keys and
    values. ``hidden_states``: ``[B·F, N, C]`` tokens; returns ``[B·F, N, C]``.

    All ``F`` frames of a video share the same keys, so their queries are stacked into one
    sequence of ``F·N`` tokens per video (softmax is per query: the same result, one call)."""
    if attn.group_norm is not None or attn.spatial_norm is not None or attn.norm_q is not None:
        raise ValueError("key-frame attention supports SD 1.x self-attention layers (no group, spatial or qk norm)")
    frames, key = layout.num_frames, layout.key_frame
    batch_frames, tokens, channels = hidden_states.shape
    videos = layout.videos(batch_frames)
    key_states = hidden_states.view(videos, frames, tokens, channels)[:, key]  # [B, N, C]
    query = _heads(attn.to_q(hidden_states).reshape(videos, frames * tokens, -1), videos, attn.heads)
    key_t = _heads(attn.to_k(key_states), videos, attn.heads)
    value = _heads(attn.to_v(key_states), videos, attn.heads)
    out = torch.nn.functional.scaled_dot_product_attention(query, key_t, value, scale=attn.scale)
    out = out.transpose(1, 2).reshape(batch_frames, tokens, -1).to(query.dtype)  # [B·F, N, heads·d]
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + hidden_states
    return out / attn.rescale_output_factor


class KeyFrameProcessor:
    """The ``attn1`` processor of the ControlNet: key-frame attention, no parameters."""

    def __init__(self, layout: FrameLayout):
        self.layout = layout

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("key-frame attention is self-attention without a mask")
        return key_frame_attention(attn, hidden_states, self.layout)


class TemporalAttention(torch.nn.Module):
    """Multi-head self-attention over frames, no positional encoding, its q, k, v and out
    copied from a diffusers ``Attention`` (``to_q``, ``to_k``, ``to_v``, ``to_out.0``:
    ``4·C² + C`` parameters for SD 1.5's bias-free q, k, v)."""

    def __init__(self, attn):
        super().__init__()
        self.heads, self.scale = attn.heads, attn.scale
        self.to_q, self.to_k, self.to_v = (copy.deepcopy(m) for m in (attn.to_q, attn.to_k, attn.to_v))
        self.to_out = torch.nn.ModuleList([copy.deepcopy(attn.to_out[0]), copy.deepcopy(attn.to_out[1])])

    def forward(self, x):
        """``x``: ``[B', F, C]`` (one row per video and spatial position) -> ``[B', F, C]``."""
        rows = x.shape[0]
        q, k, v = (_heads(proj(x), rows, self.heads) for proj in (self.to_q, self.to_k, self.to_v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out[1](self.to_out[0](out.transpose(1, 2).reshape(rows, x.shape[1], -1)))


class KeyFrameTemporalProcessor(torch.nn.Module):
    """The ``attn1`` processor of the UNet: ``KF(n) + conv_temp(attn_temp(n))`` for the
    block's normalised tokens ``n`` ``[B·F, N, C]``. Its parameters live under
    ``…attn1.processor.attn_temp.*`` and ``…attn1.processor.conv_temp.*``."""

    def __init__(self, attn, layout: FrameLayout):
        super().__init__()
        self.layout = layout
        self.attn_temp = TemporalAttention(attn)
        channels = attn.to_out[0].out_features
        self.conv_temp = zero_conv(channels).to(device=attn.to_q.weight.device, dtype=attn.to_q.weight.dtype)

    def forward(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("key-frame attention is self-attention without a mask")
        spatial = key_frame_attention(attn, hidden_states, self.layout)
        frames = self.layout.num_frames
        batch_frames, tokens, channels = hidden_states.shape
        videos = self.layout.videos(batch_frames)
        over_frames = hidden_states.view(videos, frames, tokens, channels).transpose(1, 2)  # [B, N, F, C]
        temporal = self.attn_temp(over_frames.reshape(videos * tokens, frames, channels))
        temporal = temporal.view(videos, tokens, frames, -1).transpose(1, 2).reshape(batch_frames, tokens, -1)
        # a 1x1 convolution is the same linear map at every position: apply it to the tokens directly
        weight = self.conv_temp.weight.flatten(1)
        return spatial + torch.nn.functional.linear(temporal, weight, self.conv_temp.bias)


def inflate(unet, controlnet=None, layout: FrameLayout | None = None) -> FrameLayout:
    """Give every ``attn1`` of ``unet`` key-frame + temporal attention and every ``attn1`` of
    ``controlnet`` key-frame attention, all reading ``layout`` (returned)."""
    layout = layout or FrameLayout()
    inject_processors(unet, SELF_ATTENTION, lambda name, attn: KeyFrameTemporalProcessor(attn, layout))
    if controlnet is not None:
        inject_processors(controlnet, SELF_ATTENTION, lambda name, attn: KeyFrameProcessor(layout))
    return layout


class PoseCrafterModel(torch.nn.Module):
    """The inflated UNet and ControlNet as one module (``unet.*``, ``controlnet.*``
    parameter names), so the shared training loop trains and checkpoints them together.

    ``model(latents, t, text, control, num_frames=F)`` predicts ε for a video batch."""

    def __init__(self, unet, controlnet):
        super().__init__()
        self.unet, self.controlnet = unet, controlnet
        self.layout = inflate(unet, controlnet)

    def set_video(self, num_frames: int, key_frame: int = 0) -> None:
        """Calls from now on take batches of ``num_frames``-frame videos with key frame ``key_frame``.
        Set, not restored afterwards: gradient checkpointing recomputes the forward pass during
        the backward pass, which must see the same layout."""
        if not 0 <= key_frame < num_frames:
            raise ValueError(f"key frame {key_frame} is not one of {num_frames} frames")
        self.layout.num_frames, self.layout.key_frame = num_frames, key_frame

    def residuals(self, latents, t, text, control, conditioning_scale: float = 1.0):
        """The ControlNet's ``(down, mid)`` residuals for ``latents`` ``[B·F, C, h, w]`` and
        control images ``[B·F, 3, H, W]`` in [0, 1]; ``text`` ``[B·F, 77, D]``."""
        return self.controlnet(latents, t, encoder_hidden_states=text, controlnet_cond=control,
                                conditioning_scale=conditioning_scale, guess_mode=False, return_dict=False)

    def forward(self, latents, t, text, control, *, num_frames: int, key_frame: int = 0,
                conditioning_scale: float = 1.0):
        """ε ``[B·F, C, h, w]``; ``text`` is broadcast to the batch when it holds one row."""
        text = text.expand(latents.shape[0], -1, -1) if text.shape[0] == 1 else text
        self.set_video(num_frames, key_frame)
        down, mid = self.residuals(latents, t, text, control, conditioning_scale)
        return self.unet(latents, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, return_dict=False)[0]


def trainable_patterns(name: str) -> tuple[str, ...]:
    """The regular expressions of trainable set ``name`` (:data:`TRAINABLE_SETS`)."""
    if name not in TRAINABLE_SETS:
        raise ValueError(f"unknown trainable set {name!r}; choose one of {', '.join(TRAINABLE_SETS)}")
    return TRAINABLE_SETS[name]


def trainable_counts(model: PoseCrafterModel, name: str = DEFAULT_TRAINABLE) -> dict[str, int]:
    """Exact parameter counts of trainable set ``name``, by part: ``attn_temp``, ``conv_temp``,
    ``unet_to_out``, ``controlnet_to_out`` (0 when not in the set) and ``total``.
    Works on the meta device (nothing is allocated)."""
    import re

    regexes = [re.compile(p) for p in trainable_patterns(name)]
    parts = {"attn_temp": 0, "conv_temp": 0, "unet_to_out": 0, "controlnet_to_out": 0}
    for param_name, param in model.named_parameters():
        if not any(r.search(param_name) for r in regexes):
            continue
        if ".attn_temp." in param_name:
            parts["attn_temp"] += param.numel()
        elif ".conv_temp." in param_name:
            parts["conv_temp"] += param.numel()
        elif param_name.startswith("unet."):
            parts["unet_to_out"] += param.numel()
        else:
            parts["controlnet_to_out"] += param.numel()
    parts["total"] = sum(parts.values())
    return parts
