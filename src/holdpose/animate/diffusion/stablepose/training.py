"""Training Stable-Pose's adapter on COCO-format keypoint data (SEED_MODULES §1, hyper-parameters).

The SD UNet, VAE and text encoder stay frozen; only ``adapter.*`` trains (about 365 M parameters
for SD 1.5). Each step: an example drawn with the step's generator, augmented, its HumanSD pose
image and masks made, the prompt dropped to "" with probability 0.5, the image encoded by the
VAE; then the toolkit's loop (:func:`holdpose.train.loop.train`) noises the latents and minimises
``mean(w · (ε − ε̂)²)`` with ``w = α·M_fine + (1 − M_fine)``, α = 5. AdamW, lr 1e-5 by default.

The output folder holds what :mod:`holdpose.train.loop` writes (checkpoints, ``trainable.safetensors``,
``manifest.json``, ``loss.png``) and ``adapter_config.json`` (the ViT size, mask mode and base
model), which sampling reads to rebuild the adapter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np

from holdpose.animate.diffusion.loading import DEFAULT_MODEL, import_torch, load_base_components, resolve_device
from holdpose.animate.diffusion.stablepose.data import (
    ALPHA, PROMPT_DROPOUT, load_examples, pose_loss_weights, training_view)
from holdpose.animate.diffusion.stablepose.model import (
    TRAINABLE, StablePoseAdapter, StablePoseModel, save_adapter_config, vit_config_for)
from holdpose.animate.diffusion.vae import encode_frames, latent_cell
from holdpose.errors import HoldposeError
from holdpose.io.atomic import atomic_path
from holdpose.train.loop import TrainConfig, TrainResult, train

logger = logging.getLogger(__name__)

LEARNING_RATE = 1e-5


@dataclasses.dataclass
class StablePoseTrainSettings:
    """What :func:`train_stablepose` takes besides the data (all recorded in ``adapter_config.json``)."""

    model: str = DEFAULT_MODEL
    steps: int = 1000
    resolution: int = 512
    learning_rate: float = LEARNING_RATE
    batch_size: int = 1
    accumulate: int = 1
    seed: int = 0
    mask_mode: str = "clean"
    alpha: float = ALPHA
    prompt_dropout: float = PROMPT_DROPOUT
    held_out: int = 0  # the last N images are not trained on; the held-out loss is measured on them
    checkpoint_every: int = 100
    eval_every: int = 10
    device: str | None = None
    mixed_precision: str = "no"  # "fp16" or "bf16" on a GPU (the paper trained in fp16)
    allow_pickle: bool = False


class Batches:
    """The frozen encoders and the examples: makes the loop's batches (``sample_batch``) and the
    fixed evaluation batch."""

    def __init__(self, components: dict, examples, settings: StablePoseTrainSettings, device):
        self.vae, self.text_encoder, self.tokenizer = (components[k] for k in ("vae", "text_encoder", "tokenizer"))
        self.examples, self.settings, self.device = examples, settings, device
        self.cell = latent_cell(self.vae)
        self._text_cache: dict[str, object] = {}

    def text(self, prompts: list[str]):
        torch = import_torch()
        for prompt in set(prompts) - set(self._text_cache):
            ids = self.tokenizer(prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            with torch.no_grad():
                self._text_cache[prompt] = self.text_encoder(ids.to(self.device))[0]
        return torch.cat([self._text_cache[p] for p in prompts])

    def make(self, views: list[dict]) -> dict:
        torch = import_torch()
        from holdpose.render.humansd import pose_image_tensor_values

        with torch.no_grad():
            latents = encode_frames(self.vae, np.stack([v["image"] for v in views]), self.device, torch.float32)
        masks = np.stack([v["masks"] for v in views])
        pose = pose_image_tensor_values(np.stack([v["pose"] for v in views])).transpose(0, 3, 1, 2)
        return {"latents": latents, "text": self.text([v["prompt"] for v in views]),
                "pose_image": torch.from_numpy(np.ascontiguousarray(pose)).to(self.device),
                "masks": torch.from_numpy(masks).to(self.device),
                "loss_weights": torch.from_numpy(pose_loss_weights(masks[:, -1], self.settings.alpha,
                                                                   latents.shape[1])).to(self.device)}

    def sample(self, step: int, micro: int, rng: np.random.Generator) -> dict:
        s = self.settings
        picks = rng.integers(0, len(self.examples), s.batch_size)
        return self.make([training_view(self.examples[i], s.resolution, rng, cell=self.cell, mask_mode=s.mask_mode,
                                        prompt_dropout=s.prompt_dropout) for i in picks])

    def evaluation(self, examples) -> dict:
        s = self.settings
        return self.make([training_view(e, s.resolution, None, cell=self.cell, mask_mode=s.mask_mode)
                          for e in examples])


def predict(model, noisy, timesteps, batch):
    return model(noisy, timesteps, batch["text"], batch["pose_image"], batch["masks"])


def check_settings(settings: StablePoseTrainSettings, cell: int) -> None:
    multiple = 2 * cell  # the ViT's 2x2 patches of latent cells
    if settings.resolution < multiple or settings.resolution % multiple:
        raise HoldposeError(f"--resolution {settings.resolution}: must be a multiple of {multiple} (the ViT's 2x2 "
                            "patches of latent cells)")
    if settings.mask_mode not in ("clean", "official"):
        raise HoldposeError(f"--mask-mode {settings.mask_mode!r}: choose clean or official")


def build_model(components: dict, device, seed: int = 0):
    """The frozen UNet with a fresh adapter, on ``device``; returns ``(model, vit config, cell)``.
    The new modules' initialisation is drawn from ``seed`` (a run is reproducible, and a resumed
    run is identical to an uninterrupted one whatever else used torch's global generator)."""
    torch = import_torch()
    unet = components["unet"]
    cell = latent_cell(components["vae"])
    config = vit_config_for(unet)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = StablePoseAdapter.from_unet(unet, config=config, downsample=cell)
    return StablePoseModel(unet, adapter).to(device), config, cell


def train_stablepose(images: str | os.PathLike, annotations: str | os.PathLike, output: str | os.PathLike,
                     settings: StablePoseTrainSettings = StablePoseTrainSettings(), *,
                     prompts: str | os.PathLike | None = None, progress: bool = True, callback=None,
                     components: dict | None = None) -> TrainResult:
    """Train an adapter on the images of folder ``images`` annotated in the COCO file
    ``annotations`` (``prompts``: JSON ``{file_name: prompt}``); resumes from ``output``.
    ``components``: the SD parts already loaded (``load_base_components``), instead of ``settings.model``."""
    torch = import_torch()
    device = resolve_device(settings.device)
    examples = load_examples(images, annotations, prompts)
    if settings.held_out >= len(examples):
        raise HoldposeError(f"--held-out {settings.held_out}: {annotations} lists {len(examples)} images; keep at "
                            "least one for training")
    if components is None:
        components = load_base_components(settings.model, dtype=torch.float32, allow_pickle=settings.allow_pickle)
    check_settings(settings, latent_cell(components["vae"]))  # before the adapter copies the UNet's encoder
    for part in ("vae", "text_encoder"):
        components[part].to(device).requires_grad_(False)
    model, config, cell = build_model(components, device, settings.seed)
    train_examples = examples[:len(examples) - settings.held_out]
    eval_examples = examples[len(examples) - settings.held_out:] or train_examples
    batches = Batches(components, train_examples, settings, device)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    save_adapter_config(output, config, cell, settings.mask_mode, str(settings.model))
    with atomic_path(output / "training.json") as tmp:
        Path(tmp).write_text(json.dumps({"settings": dataclasses.asdict(settings), "images": str(images),
                                         "annotations": str(annotations), "prompts": str(prompts) if prompts else None,
                                         "trained_on": [e.name for e in train_examples],
                                         "held_out": [e.name for e in examples[len(train_examples):]]}, indent=1))
    loop_config = TrainConfig(steps=settings.steps, learning_rate=settings.learning_rate, accumulate=settings.accumulate,
                              seed=settings.seed, checkpoint_every=settings.checkpoint_every,
                              eval_every=settings.eval_every, mixed_precision=settings.mixed_precision)
    result = train(model, predict, batches.sample, output, loop_config, trainable=TRAINABLE,
                   eval_batch=batches.evaluation(eval_examples), callback=callback, progress=progress)
    logger.info("%s: trained %d adapter parameters for %d steps", output, result.trainable_parameters, result.steps)
    return result
