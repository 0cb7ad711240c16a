"""Tiny random-weight Stable Diffusion parts for offline tests of the diffusion backends.

Built from small configs as diffusers' own tests do (UNet blocks (32, 64), cross-attention
32, a 2-block VAE, a 5-layer CLIP text encoder, a CLIP tokenizer from files written here),
then saved with ``save_pretrained`` so the tests load them through the same code a user's
downloaded folders go through. A whole pipeline runs a 64x64 frame in well under a second.

    paths = build_tiny_models(tmp_dir)   # {"model", "controlnet", "controlnet2", "motion_adapter", "ip_adapter"}
"""

from __future__ import annotations

import contextlib

import json
from pathlib import Path

import numpy as np
import pytest

from holdpose.sequence import PoseSequence

# stable-diffusion-v1-5/stable-diffusion-v1-5, unet/config.json (diffusers layout)
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8,
)

SIZE = 64  # pixels; the VAE has 2 blocks (scale factor 2), so latents are 32x32
CROSS_ATTENTION = 32


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's byte -> printable character table (as in openai/CLIP simple_tokenizer.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(folder: Path) -> int:
    """A byte-level CLIP tokenizer: the 256 byte characters, the same with ``</w>``, a few
    merges, and the two special tokens. Returns the vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("o", "n</w>")]
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer"}))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"}))
    return len(tokens)


def tiny_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=SIZE // 2, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=2,
        # attention only at the lower resolution (16x16 latents): 16x cheaper than at 32x32
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CROSS_ATTENTION, attention_head_dim=4, norm_num_groups=32)


def tiny_svd_unet():
    """A tiny SVD ``UNetSpatioTemporalConditionModel`` (8 input channels: noise and image latents)."""
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=8, out_channels=4, block_out_channels=(32, 64), layers_per_block=2,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=(2, 4), addition_time_embed_dim=8, projection_class_embeddings_input_dim=24)


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(32, 64), latent_channels=4, sample_size=SIZE,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32)


def tiny_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
        hidden_size=CROSS_ATTENTION, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
        num_hidden_layers=5, vocab_size=1000, max_position_embeddings=77))


def sd15_scheduler():
    """The scheduler config Stable Diffusion 1.5 ships (PNDM, scaled-linear betas)."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)


def tiny_controlnet(unet):
    from diffusers import ControlNetModel

    import torch

    # The default conditioning embedding downsamples 8x; this VAE downsamples 2x: two blocks.
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    # A fresh ControlNet's output convolutions are zero (it starts as a no-op); make them random
    # so the control images and scales change the frames, as a trained ControlNet's do.
    with torch.no_grad():
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                     controlnet.controlnet_cond_embedding.conv_out]:
            conv.weight.normal_(0.0, 0.1)
    return controlnet


def tiny_motion_adapter():
    from diffusers import MotionAdapter

    return MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2, motion_norm_num_groups=32,
                         motion_num_attention_heads=4, motion_max_seq_length=32)


def write_ip_adapter(folder: Path, unet) -> Path:
    """A tiny IP-Adapter in h94/IP-Adapter's layout: ``models/ip-adapter.safetensors`` and
    ``models/image_encoder/``. Returns the folder."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    models = folder / "models"
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
        intermediate_size=37))
    encoder.save_pretrained(models / "image_encoder", safe_serialization=True)
    generator = torch.Generator().manual_seed(0)
    weights = {
        "image_proj.proj.weight": torch.randn(4 * CROSS_ATTENTION, 32, generator=generator) * 0.1,
        "image_proj.proj.bias": torch.zeros(4 * CROSS_ATTENTION),
        "image_proj.norm.weight": torch.ones(CROSS_ATTENTION),
        "image_proj.norm.bias": torch.zeros(CROSS_ATTENTION),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        for kind in ("to_k_ip", "to_v_ip"):
            weight = torch.randn(hidden, CROSS_ATTENTION, generator=generator) * 0.1
            weights[f"ip_adapter.{key_id}.{kind}.weight"] = weight
        key_id += 2
    save_file(weights, str(models / "ip-adapter.safetensors"))
    return folder


def build_tiny_models(root: Path) -> dict[str, Path]:
    """Save a tiny SD pipeline, two ControlNets, a motion adapter and an IP-Adapter under ``root``."""
    import torch
    from diffusers import StableDiffusionPipeline

    root = Path(root)
    paths = {name: root / name for name in ("model", "controlnet", "controlnet2", "motion_adapter", "ip_adapter")}
    if all(p.exists() for p in paths.values()):
        return paths
    torch.manual_seed(0)
    vocab_size = write_tokenizer(root / "tokenizer_files")
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer_files")
    unet = tiny_unet()
    pipe = StableDiffusionPipeline(vae=tiny_vae(), text_encoder=tiny_text_encoder(vocab_size), tokenizer=tokenizer,
                                   unet=unet, scheduler=sd15_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(paths["model"], safe_serialization=True)
    tiny_controlnet(unet).save_pretrained(paths["controlnet"], safe_serialization=True)
    torch.manual_seed(1)
    tiny_controlnet(tiny_unet()).save_pretrained(paths["controlnet2"], safe_serialization=True)
    tiny_motion_adapter().save_pretrained(paths["motion_adapter"], safe_serialization=True)
    write_ip_adapter(paths["ip_adapter"], unet)
    return paths


def walking_poses(num_frames: int = 6, size: tuple[int, int] = (SIZE, SIZE), fps: float = 8.0) -> PoseSequence:
    """One person whose COCO body points sway across the canvas, for tests."""
    from holdpose.skeleton import COCO_WHOLEBODY

    seq = PoseSequence.empty(num_frames, 1, size=size, fps=fps)
    w, h = size
    # COCO-17 body: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles (x, y as canvas fractions)
    body = np.array([[.5, .15], [.47, .12], [.53, .12], [.44, .14], [.56, .14], [.4, .3], [.6, .3], [.36, .45],
                     [.64, .45], [.34, .6], [.66, .6], [.44, .6], [.56, .6], [.43, .78], [.57, .78], [.42, .93],
                     [.58, .93]], np.float32)
    for t in range(num_frames):
        phase = np.sin(2 * np.pi * t / max(num_frames, 2))
        points = body.copy()
        points[:, 0] += 0.08 * phase
        points[[7, 9], 1] -= 0.1 * phase  # the left arm waves
        seq.keypoints[t, 0, :17] = points * [w, h]
        seq.scores[t, 0, :17] = 1.0
        seq.track_ids[t, 0] = 0
    assert seq.layout is COCO_WHOLEBODY
    return seq


def reference_image(size: tuple[int, int] = (SIZE, SIZE), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


_BUILT: dict[str, dict[str, Path]] = {}


def tiny_models() -> dict[str, Path]:
    """:func:`build_tiny_models` once per test process (in a temporary folder), shared by
    every test file that imports it."""
    import atexit
    import shutil
    import tempfile

    if "paths" not in _BUILT:
        root = Path(tempfile.mkdtemp(prefix="holdpose-tiny-models-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _BUILT["paths"] = build_tiny_models(root)
    return _BUILT["paths"]


@pytest.fixture
def one_torch_thread():
    """Fixture form of :func:`single_torch_thread`: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``
    after importing it."""
    with single_torch_thread():
        yield


@contextlib.contextmanager
def single_torch_thread():
    """Run torch on one thread inside the block. Tiny models gain nothing from two threads,
    and on a busy machine OpenMP's spinning threads make them 10x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
