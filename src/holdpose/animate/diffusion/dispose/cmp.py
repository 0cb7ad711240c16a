"""CMP, the paper's dense motion propagator (Conditional Motion Propagation, Zhan et al., CVPR 2019),
as DisPose and MOFA-Video run it: the released ``resnet50_vip+mpii_liteflow`` model.

The network (its ``config.yaml``: ``image_encoder: resnet50``, ``sparse_encoder: shallownet8x``,
``flow_decoder: MotionDecoderSkipLayer``, ``img_enc_dim 256``, ``sparse_enc_dim 16``,
``output_dim 198``, 99 bins over ±50):

- ``image_encoder`` (:class:`DilatedResNet50`): ResNet-50 kept at stride 8 (``layer3`` and
  ``layer4`` dilated 2 and 4 instead of strided), then a 1x1 ``conv5`` 2048 → 256. It also hands
  the decoder three skip features: the image itself, the stem's output (64 channels, stride 2)
  and ``layer1``'s (256 channels, stride 4).
- ``sparse_encoder`` (:class:`SparseEncoder`): the sparse flow and its mask (4 channels) →
  16 channels at stride 8 (conv 5x5 stride 2, max-pool 2, conv 3x3, average-pool 2).
- ``flow_decoder`` (:class:`SkipDecoder`): four pyramid branches on the concatenated 272
  channels (pooled by 1, 2, 4, 8; three conv-BN-ReLU each, 128 wide), fused to 256, then
  upsampled and fused with the stride-4 and stride-2 skips, and a 1x1 head → 198 bin logits
  at stride 2.

Parameter names are the released checkpoint's once ``holdpose convert-weights`` has removed its
``state_dict`` wrapper and the ``module.`` prefix of CMP's trainer, so the converted file loads
strictly (:func:`load_cmp`). Where a fact comes from: the sparse encoder, the decoder, the
checkpoint layout and the bin decoding are from the official source (``models/modules/``,
``models/single_stage_model.py``, ``utils/common_utils.py``); the image encoder's file is not in
the sources read here, so its trunk follows the standard ResNet-50 names and its ``conv5`` head
and dilation are marked [check]: a checkpoint that differs fails to load with a one-line error
naming the first differing key.
"""

from __future__ import annotations

import os
from pathlib import Path

from holdpose.errors import HoldposeError, require

torch = require("torch", "diffusion")
nn = torch.nn
F = torch.nn.functional

CMP_BINS, CMP_FMAX = 99, 50.0  # per-axis bins over [-fmax, fmax] pixels (config: nbins, fmax)
IMAGE_FEATURES = 256  # img_enc_dim
SPARSE_FEATURES = 16  # sparse_enc_dim
DECODER_WIDTH = 128
RESNET50_BLOCKS = (3, 4, 6, 3)
RESNET_STAGES = ((64, 1, 1), (128, 2, 1), (256, 1, 2), (512, 1, 4))  # (planes, stride, dilation) per layer [check]


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3) -> list:
    """``[conv, BN, ReLU]``: the unit of CMP's decoder (padding keeps the size)."""
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class Bottleneck(nn.Module):
    """ResNet's 1x1 → 3x3 (stride, dilation) → 1x1 (x4) block with a projection shortcut
    (``downsample``: conv 1x1 + BN) when the shape changes."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class DilatedResNet50(nn.Module):
    """``image [N, 3, H, W]`` (normalised to [−1, 1]) → ``(features [N, 256, H/8, W/8],
    skips)`` with ``skips = (image, stem [N, 64, H/2, W/2], layer1 [N, 256, H/4, W/4])``."""

    def __init__(self, out_channels: int = IMAGE_FEATURES, blocks=RESNET50_BLOCKS):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        c_in = 64
        for index, ((planes, stride, dilation), count) in enumerate(zip(RESNET_STAGES, blocks), start=1):
            layer = []
            for k in range(count):
                layer.append(Bottleneck(c_in, planes, stride if k == 0 else 1, dilation))
                c_in = planes * Bottleneck.expansion
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.conv5 = nn.Conv2d(c_in, out_channels, 1)  # [check: bias, no BN]

    def forward(self, image):
        stem = F.relu(self.bn1(self.conv1(image)))
        layer1 = self.layer1(F.max_pool2d(stem, 3, stride=2, padding=1))
        deep = self.layer4(self.layer3(self.layer2(layer1)))
        return self.conv5(deep), (image, stem, layer1)


class SparseEncoder(nn.Module):
    """``sparse [N, 4, H, W]`` (flow u, v then the mask's two channels) → ``[N, 16, H/8, W/8]``
    (``shallownet8x``)."""

    def __init__(self, in_channels: int = 4, out_channels: int = SPARSE_FEATURES):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, stride=2, padding=2), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(16, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.AvgPool2d(2, 2))

    def forward(self, sparse):
        return self.features(sparse)


class SkipDecoder(nn.Module):
    """``MotionDecoderSkipLayer``: ``x [N, 272, h, w]`` (stride 8) and the encoder's skips →
    ``[N, out_channels, 2h·…]`` logits at the stem's stride (2)."""

    POOLS = (1, 2, 4, 8)

    def __init__(self, in_channels: int = IMAGE_FEATURES + SPARSE_FEATURES, out_channels: int = 198):
        super().__init__()
        width = DECODER_WIDTH
        for pool in self.POOLS:
            layers = [] if pool == 1 else [nn.MaxPool2d(pool, pool)]
            layers += conv_bn_relu(in_channels, width) + conv_bn_relu(width, width) + conv_bn_relu(width, width)
            setattr(self, f"decoder{pool}", nn.Sequential(*layers))
        self.fusion8 = nn.Sequential(*conv_bn_relu(width * len(self.POOLS), 256))
        self.skipconv4 = nn.Sequential(*conv_bn_relu(256, 128))
        self.fusion4 = nn.Sequential(*conv_bn_relu(256 + 128, 128))
        self.skipconv2 = nn.Sequential(*conv_bn_relu(64, 32))
        self.fusion2 = nn.Sequential(*conv_bn_relu(128 + 32, 64))
        self.head = nn.Conv2d(64, out_channels, 1)

    def forward(self, x, skips):
        _, stride2, stride4 = skips
        size = x.shape[-2:]
        pyramid = [self.decoder1(x)] + [upsample(getattr(self, f"decoder{pool}")(x), size) for pool in self.POOLS[1:]]
        fused = self.fusion8(torch.cat(pyramid, 1))
        fused = self.fusion4(torch.cat([upsample(fused, stride4.shape[-2:]), self.skipconv4(stride4)], 1))
        fused = self.fusion2(torch.cat([upsample(fused, stride2.shape[-2:]), self.skipconv2(stride2)], 1))
        return self.head(fused)


def bins_to_flow(logits, bins: int = CMP_BINS, fmax: float = CMP_FMAX):
    """``[N, 2·bins, h, w]`` per-axis bin logits (u's bins, then v's) → ``[N, 2, h, w]`` flow: the
    softmax expectation over the centres of ``bins`` equal bins on ``[−fmax, fmax]``
    (``−fmax + (i + ½)·2fmax/bins``: CMP's ``Fuser``)."""
    step = 2 * fmax / bins
    centres = (torch.arange(bins, dtype=logits.dtype, device=logits.device) * step - fmax + step / 2).view(1, bins, 1, 1)
    u, v = logits[:, :bins], logits[:, bins:]
    return torch.cat([(u.softmax(1) * centres).sum(1, keepdim=True), (v.softmax(1) * centres).sum(1, keepdim=True)], 1)


def upsample(x, size):
    """Bilinear resize with aligned corners (CMP's everywhere)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class CMP(nn.Module):
    """The CMP network. ``forward(image, sparse)``: ``image [N, 3, H, W]`` in [−1, 1],
    ``sparse [N, 4, H, W]`` → bin logits ``[N, 2·bins, H/2, W/2]`` (H, W multiples of 8;
    384 in DisPose). :meth:`flow` is what DisPose calls (MOFA-Video's ``CMP_demo.run``)."""

    def __init__(self, bins: int = CMP_BINS, fmax: float = CMP_FMAX):
        super().__init__()
        self.bins, self.fmax = bins, fmax
        self.image_encoder = DilatedResNet50()
        self.sparse_encoder = SparseEncoder()
        self.flow_decoder = SkipDecoder(out_channels=2 * bins)

    def forward(self, image, sparse):
        features, skips = self.image_encoder(image)
        return self.flow_decoder(torch.cat([features, self.sparse_encoder(sparse)], 1), skips)

    def flow(self, image, sparse):
        """``image [N, 3, H, W]`` RGB in [0, 1], ``sparse [N, 4, H, W]`` (flow in pixels of
        that grid, then the mask) → dense flow ``[N, 2, H, W]`` in the same pixels: the image
        scaled to [−1, 1], the bins decoded by their softmax expectation, resized bilinearly."""
        flow = bins_to_flow(self(image * 2 - 1, sparse), self.bins, self.fmax)
        return flow if flow.shape[-2:] == image.shape[-2:] else upsample(flow, image.shape[-2:])


def load_cmp(path: str | os.PathLike, device="cpu") -> CMP:
    """The CMP network with the converted weights ``path`` (``.safetensors``), loaded strictly,
    in eval mode. A checkpoint that does not fit raises one line naming the first bad key."""
    from holdpose.train.convert import check_fits, load_state_dict

    path = Path(path)
    if path.suffix != ".safetensors":
        raise HoldposeError(f"{path}: CMP weights must be converted first: holdpose convert-weights "
                            f"{path.name} cmp.safetensors --allow-pickle (docs/dispose.md)")
    state = load_state_dict(path)
    model = CMP()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if not any(k.endswith("num_batches_tracked") for k in state):  # checkpoints from before PyTorch 0.4.1
        expected = {k: v for k, v in expected.items() if not k.endswith("num_batches_tracked")}
    check_fits(state, expected, f"CMP weights {path}",
               "give the converted resnet50_vip+mpii_liteflow checkpoint (docs/dispose.md)")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
