"""DisPose's trainable modules (Li et al., ICLR 2025, §3.2–3.4; SEED_MODULES §3 items 4–6).

- :class:`MotionEncoder`: two identical convolutional branches, one for the dense motion field
  over the reference and one for the sparse field, each downsampling to the latent grid and
  ending in a zero convolution; their sum goes through a 3x3 fusion convolution and is added to
  the hybrid ControlNet's ``conv_in`` output (Eq. 8).
- :class:`PointEncoder`: keypoint features (DIFT, :mod:`.dift`) scattered onto each frame's
  keypoints, then one MLP per down block (1280 → 128 → C_ℓ, applied per cell), resized to that
  block's output and added to the hidden state after it.
- :class:`HybridControlNet`: a :class:`~holdpose.train.side.SideNetwork` (the ControlNet-like
  copy of the base UNet's encoder with zero output convolutions) whose condition encoder is the
  motion encoder and which carries the point encoder; its residuals go to the frozen UNet.
- :class:`PoseNet`: MimicMotion's pose-image encoder (the SVD variant), added to the UNet's
  ``conv_in`` output through a hook.

Parameter names follow the released checkpoints (``controlnet_cond_embedding.{conv_in_flow,
blocks_flow.*, conv_out_flow, conv_in_traj, blocks_traj.*, conv_out_traj, conv_final}``,
``point_adapter.model_list.*.mlp.{0,2}``, ``controlnet_down_blocks.*``, ``controlnet_mid_block``,
``pose_net.{conv_layers.*, final_proj, scale}``), so converted weights load strictly.
"""

from __future__ import annotations

import numpy as np

from holdpose.errors import require
from holdpose.train.inject import zero_conv
from holdpose.train.side import SideNetwork

torch = require("torch", "diffusion")
nn = torch.nn
F = torch.nn.functional

MOTION_CHANNELS = (16, 32, 96, 256)  # the branches' widths; each step after the first halves the size
POINT_HIDDEN = 128


def _branch_blocks(channels) -> "nn.ModuleList":
    """``[conv3x3 c→c, conv3x3 stride 2 c→c']`` per stage (SiLU after each, in forward)."""
    blocks = nn.ModuleList()
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
        blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
    return blocks



class MotionEncoder(nn.Module):
    """Dense and sparse motion fields ``[N, 2, H, W]`` (pixels) → ``[N, C0, H/2^s, W/2^s]``
    where ``s = len(channels) − 1`` (8x for SD 1.5's VAE) and ``C0`` is the UNet's first width.

    Each branch: conv3x3 2→c₀, SiLU, then per stage conv3x3 c→c, SiLU, conv3x3 stride 2 c→c′,
    SiLU; then a zero 3x3 conv c_last→C0 (as MOFA-Video's flow embedding [check: the released
    ``conv_out_*`` shapes]). ``G = conv_final(E_dense + E_sparse)``: at
    initialisation both branches output 0, so ``G`` is ``conv_final``'s bias everywhere.
    """

    def __init__(self, out_channels: int = 320, channels=MOTION_CHANNELS):
        super().__init__()
        for kind in ("flow", "traj"):  # flow: the dense field; traj: the sparse trajectory field
            setattr(self, f"conv_in_{kind}", nn.Conv2d(2, channels[0], 3, padding=1))
            setattr(self, f"blocks_{kind}", _branch_blocks(channels))
            setattr(self, f"conv_out_{kind}", zero_conv(channels[-1], out_channels, kernel_size=3))
        self.conv_final = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def _branch(self, kind: str, x):
        x = F.silu(getattr(self, f"conv_in_{kind}")(x))
        for block in getattr(self, f"blocks_{kind}"):
            x = F.silu(block(x))
        return getattr(self, f"conv_out_{kind}")(x)

    def forward(self, flows):
        """``flows`` ``[N, 4, H, W]``: channels 0–1 the dense field, 2–3 the sparse field."""
        return self.conv_final(self._branch("flow", flows[:, :2]) + self._branch("traj", flows[:, 2:]))


class PointMLP(nn.Module):
    def __init__(self, in_features: int, out_features: int, hidden: int = POINT_HIDDEN):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, out_features))

    def forward(self, x):
        return self.mlp(x)


def scatter_tracks(embeddings, tracks: np.ndarray, present: np.ndarray, size: tuple[int, int],
                   grid: tuple[int, int]):
    """:func:`scatter_points` for keypoints in pixels: ``tracks [F, K, 2]`` (x, y) on a canvas of
    ``size`` = ``(W, H)``, ``present`` bool ``[F, K]`` (the point there and in the reference), put
    on the cells of ``grid`` = ``(h, w)``."""
    cell = np.array(size, np.float64) / [grid[1], grid[0]]  # pixels per feature cell (x, y)
    cells = np.floor(np.asarray(tracks) / cell).astype(np.int64)[..., ::-1].copy()  # (row, col)
    device = embeddings.device
    return scatter_points(embeddings, torch.from_numpy(cells).to(device),
                          torch.from_numpy(np.asarray(present, bool)).to(device), grid)


def scatter_points(embeddings, cells, present, grid: tuple[int, int]):
    """Put keypoint embeddings on each frame's keypoints: ``(maps [F, C, h, w], mask [F, 1, h, w])``.

    Args:
        embeddings: ``[K, C]`` features of the reference's keypoints (zeros for a missing one).
        cells: int ``[F, K, 2]`` ``(row, col)`` of each keypoint on the ``grid`` = ``(h, w)``
            (pixels // 16 for SD 1.5; :func:`holdpose.render.motion` gives pixel tracks).
        present: bool ``[F, K]``: the point exists in the frame (and in the reference).

    Points sharing a cell are averaged; the mask is 1 on cells holding a point.
    """
    frames, keys = cells.shape[:2]
    h, w = grid
    channels = embeddings.shape[1]
    rows, cols = cells[..., 0], cells[..., 1]
    keep = present & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    frame_index = torch.arange(frames, device=cells.device)[:, None].expand(frames, keys)
    flat = (frame_index * h * w + rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1))[keep]
    values = embeddings[None].expand(frames, keys, channels)[keep]
    sums = torch.zeros(frames * h * w, channels, dtype=embeddings.dtype, device=embeddings.device)
    counts = torch.zeros(frames * h * w, 1, dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, flat, values)
    counts.index_add_(0, flat, torch.ones_like(values[:, :1]))
    maps = (sums / counts.clamp(min=1)).view(frames, h, w, channels).permute(0, 3, 1, 2)
    mask = (counts > 0).to(embeddings.dtype).view(frames, 1, h, w)
    return maps, mask


class PointEncoder(nn.Module):
    """Scattered keypoint features → one addition per down block of the hybrid ControlNet.

    For level ℓ: ``MLP_ℓ`` (``feature_dim`` → 128, SiLU, → ``channels[ℓ]``) on every cell,
    times the mask, bilinearly resized to that block's output size, times the mask resized
    (nearest) to it."""

    def __init__(self, feature_dim: int = 1280, channels=(320, 640, 1280, 1280), hidden: int = POINT_HIDDEN):
        super().__init__()
        self.model_list = nn.ModuleList(PointMLP(feature_dim, c, hidden) for c in channels)

    def forward(self, maps, mask, sizes):
        """``maps [N, C, h, w]``, ``mask [N, 1, h, w]``, ``sizes``: ``(h_ℓ, w_ℓ)`` per level.
        Returns a list of ``[N, channels[ℓ], h_ℓ, w_ℓ]``."""
        cells = maps.permute(0, 2, 3, 1)
        out = []
        for mlp, size in zip(self.model_list, sizes):
            level = mlp(cells).permute(0, 3, 1, 2) * mask
            level = F.interpolate(level, size=tuple(size), mode="bilinear", align_corners=False)
            out.append(level * F.interpolate(mask, size=tuple(size), mode="nearest"))
        return out


def down_block_sizes(unet_config, latent_size: tuple[int, int]) -> list[tuple[int, int]]:
    """``(h, w)`` of the hidden state after each down block, for latents of ``latent_size``:
    halved after every block that downsamples (all but the last in SD 1.5)."""
    h, w = latent_size
    sizes = []
    for index in range(len(unet_config.down_block_types)):
        if index < len(unet_config.down_block_types) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class HybridControlNet(SideNetwork):
    """DisPose's hybrid ControlNet: a :class:`SideNetwork` copy of the base UNet's encoder whose
    condition encoder is the :class:`MotionEncoder` and whose down blocks receive the
    :class:`PointEncoder`'s additions. Build with :meth:`from_base`."""

    @classmethod
    def from_base(cls, unet, *, feature_dim: int, motion_channels=None, vae_levels: int = len(MOTION_CHANNELS),
                  point_hidden: int = POINT_HIDDEN) -> "HybridControlNet":
        """The hybrid ControlNet for ``unet`` (SD 1.5 ``UNet2DConditionModel`` or SVD's
        ``UNetSpatioTemporalConditionModel``), its encoder copied with the UNet's weights.
        ``motion_channels`` default to :data:`MOTION_CHANNELS` cut to the VAE's ``vae_levels``
        (``len(vae.config.block_out_channels)``: SD's 4 downsample 8x; a tiny test model's smaller
        VAE needs fewer stages); ``feature_dim``: the DIFT features' width."""
        widths = unet.config.block_out_channels
        motion = MotionEncoder(widths[0], motion_channels or MOTION_CHANNELS[:vae_levels])
        net = cls.from_unet(unet, condition_encoder=motion)
        net.point_adapter = PointEncoder(feature_dim, widths, point_hidden)
        net.unet_config = unet.config
        return net

    def forward(self, sample, timestep, encoder_hidden_states, *, flows, point_maps=None, point_mask=None,
                conditioning_scale: float = 1.0, added_time_ids=None):
        """Residuals ``(down, mid)`` for the UNet.

        Args:
            sample: latents ``[N, 4, h, w]`` (SVD: ``[B, F, C, h, w]``, ``N = B·F``).
            flows: ``[N, 4, H, W]`` dense then sparse motion fields, pixels (:class:`MotionEncoder`).
            point_maps, point_mask: :func:`scatter_points`'s output for the N frames, or None.
        """
        latent = sample.shape[-2:]
        additions = None
        if point_maps is not None:
            additions = self.point_adapter(point_maps, point_mask, down_block_sizes(self.unet_config, latent))
        return super().forward(sample, timestep, encoder_hidden_states, condition=flows,
                               block_additions=additions, conditioning_scale=conditioning_scale,
                               added_time_ids=added_time_ids)


class PoseNet(nn.Module):
    """MimicMotion's pose encoder: a pose image ``[N, 3, H, W]`` in [-1, 1] → ``[N, 320, H/8, W/8]``
    added to the SVD UNet's ``conv_in`` output. Convolutions 3→3, 3→16 (4x4 stride 2),
    16→16, 16→32 (s2), 32→32, 32→64 (s2), 64→64, 64→128, each followed by SiLU; a zero 1x1
    projection to ``out_channels``; times a learnable ``scale`` initialised to 2."""

    def __init__(self, out_channels: int = 320):
        super().__init__()
        spec = [(3, 3, 3, 1), (3, 16, 4, 2), (16, 16, 3, 1), (16, 32, 4, 2), (32, 32, 3, 1), (32, 64, 4, 2),
                (64, 64, 3, 1), (64, 128, 3, 1)]
        layers = []
        for c_in, c_out, kernel, stride in spec:
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = zero_conv(128, out_channels)
        self.scale = nn.Parameter(torch.ones(1) * 2)

    def forward(self, pose):
        return self.final_proj(self.conv_layers(pose)) * self.scale


def conv_in_hook(unet, addition):
    """Register a hook adding ``addition`` (``[N, C0, h, w]``, or a callable of the output) to
    ``unet.conv_in``'s output, out of place; returns the handle (``.remove()`` it)."""
    def add(module, args, output):
        return output + (addition(output) if callable(addition) else addition)

    return unet.conv_in.register_forward_hook(add)


def load_released(hybrid: HybridControlNet, tensors: dict, pose_net: PoseNet | None = None) -> None:
    """Load a converted release (``holdpose convert-weights DisPose.pth ...``, plain names) strictly:
    ``pose_net.*`` tensors into ``pose_net`` (MimicMotion's), all others into ``hybrid``."""
    pose = {k.removeprefix("pose_net."): v for k, v in tensors.items() if k.startswith("pose_net.")}
    rest = {k: v for k, v in tensors.items() if not k.startswith("pose_net.")}
    hybrid.load_state_dict(rest, strict=True)
    if pose_net is not None:
        pose_net.load_state_dict(pose, strict=True)
    elif pose:
        raise ValueError("the checkpoint holds pose_net.* tensors; pass the PoseNet to load them into")
