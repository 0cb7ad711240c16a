"""The torch side of ``holdpose tune``: load SD 1.5 + ControlNet, inflate them, encode the
training set once, and run the shared training loop (:func:`holdpose.train.loop.train`).

Imports torch when imported; :mod:`~holdpose.animate.diffusion.posecrafter.tuning` imports it
inside :func:`~holdpose.animate.diffusion.posecrafter.tuning.tune`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from holdpose.errors import require
from holdpose.sequence import PoseSequence

torch = require("torch", "diffusion")
logger = logging.getLogger(__name__)


def load_components(model, controlnet, *, device, dtype, allow_pickle: bool = False, model_config=None):
    """SD 1.x parts and the ControlNet in one diffusers ``StableDiffusionControlNetPipeline``
    (used as a holder: prompt encoding, VAE scale factor, device), on ``device``."""
    from holdpose.animate.diffusion.loading import controlnet_pipeline, load_base_components, load_model

    components = load_base_components(model, dtype=dtype, allow_pickle=allow_pickle, model_config=model_config)
    net = load_model("ControlNetModel", controlnet, "ControlNet (--controlnet)", dtype=dtype,
                     allow_pickle=allow_pickle)
    pipe = controlnet_pipeline(components, net)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def encode_set(pipe, images: np.ndarray, poses: PoseSequence, device, dtype) -> dict:
    """A frame set as the model reads it: ``latents`` ``[T, 4, h, w]`` (the VAE posterior's
    mode, scaled) and ``control`` pose maps ``[T, 3, H, W]`` in [0, 1]."""
    from holdpose.animate.diffusion.conditioning import control_tensor
    from holdpose.animate.diffusion.posecrafter.config import POSE_STYLE
    from holdpose.animate.diffusion.vae import encode_frames
    from holdpose.render.openpose import render_pose_maps

    size = (images.shape[2], images.shape[1])
    with torch.no_grad():
        latents = torch.cat([encode_frames(pipe.vae, images[i:i + 4], device, dtype)
                             for i in range(0, len(images), 4)])
    maps = np.stack(list(render_pose_maps(poses, POSE_STYLE, size=size)))
    return {"latents": latents, "control": control_tensor(maps, device, dtype)}


def prompt_embedding(pipe, prompt: str, device):
    """``[1, 77, D]`` text embedding of ``prompt`` (conditional branch only)."""
    from holdpose.animate.diffusion.conditioning import encode_prompt

    with torch.no_grad():
        cond, _ = encode_prompt(pipe, prompt, "", device, False)
    return cond


def predict_video(model, noisy, timesteps, batch):
    """ε for a training clip: the batch's frames are one video, its first frame the key frame."""
    return model(noisy, timesteps, batch["text"], batch["control"], num_frames=noisy.shape[0])


def train_posecrafter(output: Path, description: dict, training: tuple[np.ndarray, PoseSequence],
                      heldout: tuple[np.ndarray, PoseSequence] | None, *, device=None, mixed_precision: str = "no",
                      gradient_checkpointing: bool = False, allow_pickle: bool = False, checkpoint_every: int = 50,
                      progress: bool = True, callback=None):
    """Run the tuning that ``description`` (``posecrafter.json``) describes on the training
    set, held-out loss on ``heldout``; returns :class:`holdpose.train.loop.TrainResult`.
    ``gradient_checkpointing`` recomputes activations in the backward pass (less GPU memory,
    the same weights)."""
    from holdpose.animate.diffusion.loading import resolve_device
    from holdpose.animate.diffusion.posecrafter.model import PoseCrafterModel, trainable_patterns
    from holdpose.train.loop import TrainConfig, train

    device = resolve_device(device)
    dtype = torch.float32  # trainable weights in float32; mixed precision autocasts on a GPU
    pipe = load_components(description["model"], description["controlnet"], device=device, dtype=dtype,
                           allow_pickle=allow_pickle, model_config=description.get("model_config"))
    model = PoseCrafterModel(pipe.unet, pipe.controlnet)
    if gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
        pipe.controlnet.enable_gradient_checkpointing()
    text = prompt_embedding(pipe, description["prompt"], device)
    data = encode_set(pipe, *training, device, dtype)
    clip = description["clip_frames"]
    num_frames = data["latents"].shape[0]

    def sample_batch(step, micro, rng):
        chosen = np.sort(rng.choice(num_frames, size=clip, replace=False))
        index = torch.from_numpy(chosen).to(device)
        return {"latents": data["latents"][index], "control": data["control"][index], "text": text}

    eval_batch = None
    if heldout is not None:
        held = encode_set(pipe, *heldout, device, dtype)
        eval_batch = {"latents": held["latents"][:clip], "control": held["control"][:clip], "text": text}
    else:
        logger.warning("the video has no frames between the training frames: the held-out loss is not measured")
    config = TrainConfig(steps=description["steps"], learning_rate=description["learning_rate"],
                         seed=description["seed"], shared_timestep=True, checkpoint_every=checkpoint_every,
                         mixed_precision=mixed_precision, eval_every=max(1, min(10, description["steps"] // 10)))
    result = train(model, predict_video, sample_batch, output, config,
                   trainable=trainable_patterns(description["trainable"]), eval_batch=eval_batch,
                   callback=callback, progress=progress)
    logger.info("%s: tuned %d parameters in %d steps; held-out loss %s", output, result.trainable_parameters,
                result.steps, " -> ".join(f"{v:.4f}" for _, v in result.eval_losses[:1] + result.eval_losses[-1:]))
    return result
