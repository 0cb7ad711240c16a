"""Stable-Pose's modules (SEED_MODULES §1.3-1.6): the pose feature extractor, the pose-masked
self-attention ViT (PMSA), the AttnResBlock that carries both into a ControlNet-like adapter,
and the adapter itself, built from a Stable Diffusion UNet with the toolkit's side network.

Shapes for SD 1.5 at 512 px: pose image ``[B, 3, 512, 512]`` in [-1, 1] (background -1); masks
``[B, 2, 64, 64]`` (coarse, fine; :mod:`holdpose.render.pose_masks`); latents ``[B, 4, 64, 64]``.
Any size whose latent grid divides by the ViT patch works: the position embedding is computed
per grid (the official code is 512-only).

This module imports torch when imported; import it inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from holdpose.errors import require
from holdpose.train.inject import replace_module, zero_conv
from holdpose.train.side import SideNetwork

torch = require("torch", "diffusion")
nn = torch.nn

INJECTED_BLOCK = "down_blocks.0.resnets.0"  # the official inject_layers [1]: ldm input block 1
FEATURE_CHANNELS = (32, 64, 64, 128, 128, 192)  # the extractor's six 3x3 convolutions
EXTRACTOR_STRIDES = (1, 2, 1, 2, 1, 2)  # downsample 8 = SD's VAE factor


@dataclass(frozen=True)
class PMSAConfig:
    """The ViT's size (the paper's: patch 2, dim 512, depth 2, 8 heads, MLP 512, patch
    convolution to 128 channels). ``batch_min``: fill disallowed logits with the minimum over
    the whole batch, as the official code does, instead of per sample (holdpose's default, so
    that an image does not depend on what else is in its batch)."""

    patch: int = 2
    dim: int = 512
    depth: int = 2
    heads: int = 8
    mlp_dim: int = 512
    reduced_channels: int = 128
    batch_min: bool = False


def sincos_position_embedding(rows: int, cols: int, dim: int):
    """``float32 [rows*cols, dim]`` fixed 2-D embedding: for frequencies
    ``ω_i = 10000^(-i/(dim/4 - 1))``, the concatenation ``[sin(x ω), cos(x ω), sin(y ω), cos(y ω)]``
    of each token's column x and row y (tokens row-major)."""
    if dim % 4:
        raise ValueError(f"the sin-cos embedding needs a dimension divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / max(quarter - 1, 1)))
    y, x = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    x = x.flatten()[:, None].float() * omega[None]
    y = y.flatten()[:, None].float() * omega[None]
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)


def patch_mask(masks, patch: int):
    """``bool [B, N]``: a patch (``patch`` x ``patch`` latent cells, tokens row-major) is a pose
    patch when any of its cells is set in ``masks`` ``[B, h, w]``."""
    b, h, w = masks.shape
    return masks.reshape(b, h // patch, patch, w // patch, patch).amax(dim=(2, 4)).reshape(b, -1) > 0


def attention_allowed(token_mask):
    """``bool [B, N, N]``: token i may attend to token j when either is a pose token."""
    return token_mask[:, :, None] | token_mask[:, None, :]


def masked_logits(logits, allowed, batch_min: bool = False):
    """``logits`` ``[B, heads, N, N]`` with every disallowed entry set to the smallest logit
    (detached) of the sample, or of the whole batch with ``batch_min``: a very small value, not
    -inf, so a row with nothing allowed becomes uniform."""
    dims = tuple(range(logits.ndim)) if batch_min else tuple(range(1, logits.ndim))
    floor = logits.detach().amin(dim=dims, keepdim=True)
    return torch.where(allowed[:, None], logits, floor)


class PMSALayer(nn.Module):
    """A pre-LN transformer layer whose self-attention is restricted by a pose mask."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, batch_min: bool):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale, self.batch_min = heads, dim_head ** -0.5, batch_min
        self.attn_norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, mlp_dim)
        self.ff_out = nn.Linear(mlp_dim, dim)

    def attention(self, tokens, allowed=None):
        """Multi-head attention of ``tokens`` ``[B, N, dim]``; ``allowed`` ``[B, N, N]`` or None."""
        b, n, _ = tokens.shape
        q, k, v = self.to_qkv(self.attn_norm(tokens)).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) * self.scale
        if allowed is not None:
            logits = masked_logits(logits, allowed, self.batch_min)
        out = logits.softmax(dim=-1) @ v  # [B, heads, N, dim_head]
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))

    def forward(self, tokens, allowed=None):
        tokens = tokens + self.attention(tokens, allowed)
        return tokens + self.ff_out(torch.nn.functional.gelu(self.ff_in(self.ff_norm(tokens))))


class PMSAViT(nn.Module):
    """Pose-masked self-attention over ``patch`` x ``patch`` patches of a ``[B, C, h, w]`` feature
    map; layer ``l`` uses mask ``l`` (coarse to fine). Returns a map of the input's shape that
    *replaces* it (the caller adds no residual)."""

    def __init__(self, channels: int, config: PMSAConfig = PMSAConfig()):
        super().__init__()
        self.config = config
        reduced, patch = config.reduced_channels, config.patch
        # the official ViT maps tokens back with a reshape only: dim must equal reduced·patch²
        if config.dim != reduced * patch * patch:
            raise ValueError(f"PMSA dim {config.dim} must equal reduced_channels·patch² = {reduced * patch * patch}")
        self.patch_conv = nn.Conv2d(channels, reduced, 3, padding=1)
        self.patch_norm = nn.LayerNorm(reduced * patch * patch)
        self.patch_linear = nn.Linear(reduced * patch * patch, config.dim)
        self.token_norm = nn.LayerNorm(config.dim)
        self.layers = nn.ModuleList(PMSALayer(config.dim, config.heads, channels // config.heads, config.mlp_dim,
                                              config.batch_min) for _ in range(config.depth))
        self.out_conv = nn.Conv2d(reduced, channels, 3, padding=1)

    def forward(self, x, masks=None):
        """``x`` ``[B, C, h, w]``; ``masks`` ``[B, depth, h, w]`` (1 on pose cells) or None (no mask)."""
        b, _, h, w = x.shape
        p = self.config.patch
        if h % p or w % p:
            raise ValueError(f"a {w}x{h} latent grid is not a whole number of {p}x{p} patches")
        rows, cols = h // p, w // p
        y = self.patch_conv(x)
        tokens = y.reshape(b, -1, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1).reshape(b, rows * cols, -1)
        tokens = self.token_norm(self.patch_linear(self.patch_norm(tokens)))
        tokens = tokens + sincos_position_embedding(rows, cols, self.config.dim).to(tokens)
        for index, layer in enumerate(self.layers):
            allowed = None if masks is None else attention_allowed(patch_mask(masks[:, index], p))
            tokens = layer(tokens, allowed)
        y = tokens.reshape(b, rows, cols, p, p, -1).permute(0, 5, 1, 3, 2, 4).reshape(b, -1, h, w)
        return self.out_conv(y)


class PoseFeatureExtractor(nn.Module):
    """Six 3x3 convolutions with SiLU (``FEATURE_CHANNELS``; three of stride 2 for SD's 8x VAE)
    and a zero-initialised 3x3 convolution: ``[B, 3, H, W]`` -> ``[B, 192, H/8, W/8]``. With a VAE
    that downsamples less (tiny test models), the later stride-2 convolutions get stride 1."""

    def __init__(self, in_channels: int = 3, downsample: int = 8):
        super().__init__()
        stages = int(round(math.log2(downsample)))
        strides, remaining = [], stages
        for s in EXTRACTOR_STRIDES:
            take = s == 2 and remaining > 0
            remaining -= take
            strides.append(2 if take else 1)
        if remaining or 2 ** stages != downsample:
            raise ValueError(f"the pose extractor downsamples by 2, 4 or 8, not {downsample}")
        channels = (in_channels,) + FEATURE_CHANNELS
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=s, padding=1)
                                   for a, b, s in zip(channels[:-1], channels[1:], strides))
        self.zero_conv = zero_conv(channels[-1], kernel_size=3)

    @property
    def out_channels(self) -> int:
        return FEATURE_CHANNELS[-1]

    def forward(self, pose_image):
        x = pose_image
        for conv in self.convs:
            x = torch.nn.functional.silu(conv(x))
        return self.zero_conv(x)


class AttnResBlock(nn.Module):
    """The block that replaces the adapter's first encoder resnet:
    ``h = conv1(SiLU x) + W·SiLU(temb)``; ``h = PMSA(h, masks)``;
    ``h = GroupNorm(h) + cond_conv(pose features)``; ``out = x + conv2(Dropout(SiLU h))``.
    No normalisation before ``conv1`` or ``conv2`` (the official block has none). Pose features
    and masks reach it through :meth:`conditioned`, since the down block calls ``block(x, temb)``."""

    def __init__(self, conv1, time_emb_proj, conv2, dropout: float, feature_channels: int, config: PMSAConfig,
                 conv_shortcut=None):
        super().__init__()
        channels = conv1.out_channels
        self.conv1, self.time_emb_proj, self.conv2 = conv1, time_emb_proj, conv2
        self.dropout = nn.Dropout(dropout)
        self.pmsa = PMSAViT(channels, config)
        self.norm = nn.GroupNorm(32, channels, affine=False)
        self.cond_conv = nn.Conv2d(feature_channels, channels, 3, padding=1)
        self.conv_shortcut = conv_shortcut
        self._inputs = None

    @classmethod
    def from_resnet(cls, resnet, feature_channels: int, config: PMSAConfig) -> "AttnResBlock":
        """Take ``conv1``, ``time_emb_proj``, ``conv2`` (and a shortcut) from a diffusers
        ``ResnetBlock2D`` (copies: the resnet is not changed); the new modules start at default init."""
        parts = [copy.deepcopy(getattr(resnet, name)) for name in ("conv1", "time_emb_proj", "conv2")]
        shortcut = copy.deepcopy(resnet.conv_shortcut) if getattr(resnet, "conv_shortcut", None) is not None else None
        return cls(*parts, resnet.dropout.p, feature_channels, config, shortcut)

    @contextlib.contextmanager
    def conditioned(self, features, masks):
        """Inside the block, forwards use pose ``features`` ``[B, F, h, w]`` and ``masks``."""
        self._inputs = (features, masks)
        try:
            yield self
        finally:
            self._inputs = None

    def forward(self, input_tensor, temb, *args, **kwargs):
        if self._inputs is None:
            raise RuntimeError("AttnResBlock runs inside `with block.conditioned(features, masks):`")
        features, masks = self._inputs
        silu = torch.nn.functional.silu
        h = self.conv1(silu(input_tensor)) + self.time_emb_proj(silu(temb))[:, :, None, None]
        h = self.pmsa(h, masks)
        h = self.norm(h) + self.cond_conv(features)
        skip = input_tensor if self.conv_shortcut is None else self.conv_shortcut(input_tensor)
        return skip + self.conv2(self.dropout(silu(h)))


class StablePoseAdapter(SideNetwork):
    """A trainable copy of the UNet's encoder (the toolkit's :class:`SideNetwork`, zero 1x1 output
    convolutions) whose first resnet is an :class:`AttnResBlock`, with a
    :class:`PoseFeatureExtractor` (``pose_encoder``). The pose enters only through that block,
    not at the input as in ControlNet. Build with :meth:`from_unet`."""

    @classmethod
    def from_unet(cls, unet, *, config: PMSAConfig = PMSAConfig(), downsample: int = 8) -> "StablePoseAdapter":
        adapter = super().from_unet(unet)
        adapter.pose_encoder = PoseFeatureExtractor(3, downsample)
        block = AttnResBlock.from_resnet(adapter.get_submodule(INJECTED_BLOCK), adapter.pose_encoder.out_channels,
                                         config)
        replace_module(adapter, INJECTED_BLOCK, block)
        return adapter

    @property
    def attn_block(self) -> AttnResBlock:
        return self.get_submodule(INJECTED_BLOCK)

    def forward(self, sample, timestep, encoder_hidden_states, *, pose_image, masks, conditioning_scale: float = 1.0,
                cross_attention_kwargs=None):
        """Residuals ``(down [12 tensors for SD 1.5], mid)`` for the frozen UNet. ``pose_image``
        ``[B, 3, H, W]`` in [-1, 1]; ``masks`` ``[B, depth, h, w]`` on the latent grid."""
        features = self.pose_encoder(pose_image.to(sample.dtype))
        with self.attn_block.conditioned(features, masks.to(sample.dtype)):
            return super().forward(sample, timestep, encoder_hidden_states, conditioning_scale=conditioning_scale,
                                   cross_attention_kwargs=cross_attention_kwargs)


class StablePoseModel(nn.Module):
    """The frozen UNet and the adapter, as the training loop sees them: ``adapter.*`` trains."""

    def __init__(self, unet, adapter: StablePoseAdapter):
        super().__init__()
        self.unet, self.adapter = unet, adapter

    def forward(self, noisy, timesteps, text, pose_image, masks, conditioning_scale: float = 1.0):
        """ε̂ ``[B, 4, h, w]``: the UNet with the adapter's residuals."""
        down, mid = self.adapter(noisy, timesteps, text, pose_image=pose_image, masks=masks,
                                 conditioning_scale=conditioning_scale)
        return self.unet(noisy, timesteps, text, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, return_dict=False)[0]


TRAINABLE = (r"^adapter\.",)


def vit_config_for(unet, **overrides) -> PMSAConfig:
    """The paper's ViT for SD-sized UNets; a proportionally smaller one for narrow test UNets
    (first block under 320 channels), so tiny models stay tiny."""
    width = unet.config.block_out_channels[0]
    if width >= 320:
        return PMSAConfig(**overrides)
    reduced = max(8, width // 2)
    return PMSAConfig(**{"dim": reduced * 4, "mlp_dim": reduced * 4, "reduced_channels": reduced,
                         "heads": min(8, width // 4), **overrides})


# --- adapter files ------------------------------------------------------------------------------

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FORMAT = "holdpose-stablepose/1"
# a converted official checkpoint: the paper's ViT (batch-wide minimum), the official masks
OFFICIAL_SETTINGS = {"vit": dataclasses.asdict(PMSAConfig(batch_min=True)), "downsample": 8, "mask_mode": "official"}


def save_adapter_config(folder, config: PMSAConfig, downsample: int, mask_mode: str, base_model: str) -> Path:
    """Write ``adapter_config.json``: what sampling needs to rebuild the adapter of a training run."""
    from holdpose.io.atomic import atomic_path

    path = Path(folder) / ADAPTER_CONFIG
    record = {"format": ADAPTER_FORMAT, "vit": dataclasses.asdict(config), "downsample": downsample,
              "mask_mode": mask_mode, "base_model": base_model}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1))
    return path


def adapter_files(ref) -> tuple[Path, dict]:
    """``(weights file, settings)`` of an adapter given as a training run's folder (its final
    ``trainable.safetensors`` and ``adapter_config.json``) or as one ``.safetensors`` file (a
    converted official checkpoint, or a run's file with its ``adapter_config.json`` beside it)."""
    from holdpose.errors import HoldposeError

    path = Path(ref)
    folder = path if path.is_dir() else path.parent
    weights = path / "trainable.safetensors" if path.is_dir() else path
    if not weights.is_file() or weights.suffix != ".safetensors":
        raise HoldposeError(f"{ref}: not a Stable-Pose adapter; give a `holdpose train stablepose` output folder or "
                            "a .safetensors file (`holdpose convert-weights --format ldm-stablepose` makes one)")
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file():
        return weights, dict(OFFICIAL_SETTINGS)
    settings = json.loads(config_path.read_text())
    if settings.get("format") != ADAPTER_FORMAT:
        raise HoldposeError(f"{config_path}: format {settings.get('format')!r}, expected {ADAPTER_FORMAT!r}")
    return weights, settings


def load_adapter(unet, ref) -> tuple[StablePoseAdapter, dict]:
    """The adapter of ``ref`` (see :func:`adapter_files`) built for ``unet`` and loaded strictly;
    returns it with its settings (``mask_mode`` ...)."""
    from safetensors.torch import load_file

    from holdpose.errors import HoldposeError
    from holdpose.train.convert import check_fits

    weights, settings = adapter_files(ref)
    adapter = StablePoseAdapter.from_unet(unet, config=PMSAConfig(**settings["vit"]), downsample=settings["downsample"])
    tensors = load_file(str(weights))
    if tensors and all(k.startswith("adapter.") for k in tensors):  # a training run's names (StablePoseModel)
        tensors = {k[len("adapter."):]: v for k, v in tensors.items()}
    check_fits(tensors, adapter.state_dict(), str(weights), "were they trained on this base model's UNet?")
    try:
        adapter.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise HoldposeError(f"{weights}: does not load into the adapter ({str(err).splitlines()[0]})") from err
    return adapter, settings
