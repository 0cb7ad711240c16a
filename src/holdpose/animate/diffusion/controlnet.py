"""Frame by frame: Stable Diffusion 1.x + OpenPose ControlNet, one image per pose.

The tutorial pipeline, done so that frames hold together and nothing is recomputed:

- the SAME initial noise for every frame: one latent noise tensor drawn once from the
  seed (:func:`~holdpose.animate.diffusion.noise.shared_noise`). A generator that
  advances from frame to frame gives every frame other noise, hence more flicker, and
  makes frame k depend on how many frames were made before it;
- the prompt (and the IP-Adapter image prompt) encoded once, not once per frame;
- frames denoised in batches (``batch_size``), which gives the same frames as one at
  a time: every frame of a batch starts from the same noise and the scheduler works
  element-wise; batches always start at multiples of ``batch_size``, so a resumed run
  computes exactly what an uninterrupted one did;
- several ControlNets at once (pose plus e.g. depth), each with its own scale and images;
- image-to-image from init frames (e.g. the warp animator's) with a ``strength``, with
  the same noise rule (diffusers' img2img schedule: only the last ``strength`` part of
  the timesteps is run, from the init latents noised to that level).

Default scheduler "unipc", as in the Hugging Face ControlNet tutorial.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterator

import numpy as np

from holdpose.animate.diffusion.animator import DiffusionAnimator
from holdpose.animate.diffusion.conditioning import (
    batch_embeds, batch_image_embeds, control_streams, encode_prompt, frames_of, generation_size, ip_adapter_embeds,
    resize)
from holdpose.animate.diffusion.loading import DEFAULT_CONTROLNET, DEFAULT_MODEL, controlnet_pipeline, import_torch
from holdpose.animate.diffusion.noise import set_timesteps, shared_noise
from holdpose.animate.diffusion.options import DiffusionOptions, boosted_control
from holdpose.animate.diffusion.vae import decode_latents, encode_frames
from holdpose.animate.options import check_float, check_int, option
from holdpose.argtypes import finite_float, positive_int
from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)


@dataclass
class ControlNetOptions(DiffusionOptions):
    """Options of :class:`ControlNetAnimator`: those of :class:`DiffusionOptions`, and

    Attributes:
        batch_size: frames denoised together (the same frames as one at a time).
        init: start frames for image-to-image: an animator (run on the same reference,
            poses and seed, e.g. the warp animator), a path (video, image folder), an
            array ``[T, H, W, 3]`` or a list of frames. None: text-to-image.
        strength: part of the denoising redone from ``init``, in (0, 1]; default 0.75
            with ``init`` (1 keeps almost nothing of it).
    """

    batch_size: int = option(4, "frames denoised together (the same frames as one at a time)",
                             type=positive_int)
    init: Any = option(None, "start from these frames (image-to-image): 'warp' for the embedded animator's, or a "
                       "video / image folder")
    strength: float | None = option(None, "with --init: part of the denoising redone (default 0.75)", type=finite_float)

    def check(self, num_controlnets: int, has_ip_adapter: bool) -> "ControlNetOptions":
        super().check(num_controlnets, has_ip_adapter)
        check_int(self.batch_size, "batch_size (--batch-size)", 1)
        if self.init is None:
            if self.strength is not None:
                raise HoldposeError("strength (--strength) needs init frames (init=, --init) to start from")
        else:
            strength = 0.75 if self.strength is None else self.strength
            self.strength = check_float(strength, "strength (--strength)", 0.0, 1.0, low_open=True)
        return self


class ControlNetAnimator(DiffusionAnimator):
    """Stable Diffusion 1.x + ControlNet(s), frame by frame.

    ``animator(reference, poses, seed=0, prompt=..., ...)`` yields ``uint8 [H, W, 3]``
    frames on the poses' canvas. Options: :class:`ControlNetOptions`. Takes
    ``start_frame`` to skip frames already made (see :mod:`holdpose.animate.resume`).
    Ignores the whole-clip options (``window``, ``stride``, ``fusion``, ``reference_pose``).
    The reference image is used by the IP-Adapter when one is loaded, and sets the canvas.

    Construction arguments: see :class:`~holdpose.animate.diffusion.animator.DiffusionAnimator`.
    """

    name = "controlnet"
    pose_style = "openpose_full"  # SD 1.5 OpenPose ControlNet v1.1 saw body, hands and face
    options_class = ControlNetOptions
    default_scheduler = "unipc"
    can_regenerate = True
    single_image = True  # text-to-image from one pose (`holdpose generate`)
    size_multiple = 8  # generated width and height are multiples of this (the VAE's factor)

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL,
                 controlnet: str | os.PathLike | list = DEFAULT_CONTROLNET, **kwargs):
        super().__init__(model, controlnet, **kwargs)

    @classmethod
    def from_options(cls, character, model_options: dict, options: dict):
        """``init="warp"`` starts from the embedded animator's frames of the same character."""
        options = dict(options)
        if isinstance(options.get("init"), str) and options["init"] == "warp":
            from holdpose.animate.warp import WarpAnimator

            options["init"] = WarpAnimator(character.rig)
        animator = cls(**model_options)
        animator.character = character  # its rig also serves retries that start from the warp animator
        return animator, options

    def retry_options(self, reference: np.ndarray, options: dict, attempt: int) -> dict:
        """Retry 1: a new seed only. Later retries: the ControlNet scale up by a quarter per
        retry, and, without init frames, image-to-image from the warp animator's frame (which
        holds the pose by construction). One frame per batch: only the retried frame is made."""
        options = boosted_control(dict(options, batch_size=1), attempt)
        if attempt < 2:
            return options
        if options.get("init") is None:
            from holdpose.animate.character import Character
            from holdpose.animate.warp import WarpAnimator

            character = getattr(self, "character", None)
            if character is None:
                self.character = character = Character(reference)
            options.update(init=WarpAnimator(character.rig), strength=0.75)
        return options

    def build_pipeline(self, components: dict, controlnet):
        return controlnet_pipeline(components, controlnet)

    def __call__(self, reference: np.ndarray, poses: PoseSequence, *, seed: int = 0, callback=None,
                 start_frame: int = 0, **options) -> Iterator[np.ndarray]:
        torch = import_torch()
        pipe = self.pipe

        # 1. Check inputs
        reference, poses, seed, opts = self.check_call(reference, poses, seed, start_frame, options)
        num_frames = poses.num_frames

        # 2. Define call parameters
        device = self.execution_device
        width, height = generation_size(poses.size, opts.resolution, self.size_multiple)
        do_cfg = opts.guidance_scale > 1.0
        strength = opts.strength if opts.init is not None else 1.0
        scheduler = self.scheduler_for(opts.scheduler)
        first = start_frame // opts.batch_size * opts.batch_size  # batches start where an uninterrupted run's did

        # 3. Encode the prompt, and the reference as an image prompt, once for all frames
        with torch.no_grad():
            cond, uncond = encode_prompt(pipe, opts.prompt, opts.negative_prompt, device, do_cfg)
            image_embeds = ip_adapter_embeds(pipe, reference, device, do_cfg) if self.has_ip_adapter else None
        self.set_ip_adapter_scale(opts.ip_adapter_scale)

        # 4. Render the control images (streamed, at the generation size) and open the init frames
        controls = control_streams(poses, opts.control_images, self.pose_style, (width, height), start=first)
        inits = None
        if opts.init is not None:
            inits = self._init_frames(opts.init, reference, poses, seed, (width, height), first)

        # 5. Prepare the initial noise: drawn once from the seed, the same for every frame
        scale = pipe.vae_scale_factor
        latent_shape = (1, pipe.unet.config.in_channels, height // scale, width // scale)
        noise = shared_noise(seed, latent_shape).to(device=device, dtype=self.dtype)

        # 6. Denoise batch by batch (7.), decode in chunks (8.), yield the frames
        for batch_start in range(first, num_frames, opts.batch_size):
            batch = min(opts.batch_size, num_frames - batch_start)
            control_images = [np.stack(list(islice(stream, batch))) for stream in controls]
            init_images = None if inits is None else np.stack(list(islice(inits, batch)))
            with torch.no_grad():
                latents = self.denoise(scheduler, noise, cond, uncond, image_embeds, control_images, init_images,
                                       opts, strength, do_cfg)
                images = np.concatenate([decode_latents(pipe.vae, latents[c: c + opts.decode_chunk_size])
                                         for c in range(0, batch, opts.decode_chunk_size)])
            yield from self.emit(images, batch_start, start_frame, poses.size, callback)
        pipe.maybe_free_model_hooks()

    def denoise(self, scheduler, noise, cond, uncond, image_embeds, control_images: list[np.ndarray],
                init_images: np.ndarray | None, opts: ControlNetOptions, strength: float, do_cfg: bool):
        """7. The denoising loop for one batch; returns latents ``[B, C, h, w]``."""
        torch = import_torch()
        pipe = self.pipe
        device = self.execution_device
        batch = len(control_images[0])

        # 7.1 Timesteps (all, or the last `strength` part for image-to-image); scheduler state reset
        timesteps = set_timesteps(scheduler, opts.num_inference_steps, strength, device)

        # 7.2 Latents: the shared noise for every frame, or the init frames noised with it
        noise = noise.expand(batch, *noise.shape[1:])
        if init_images is None:
            latents = noise * scheduler.init_noise_sigma
        else:
            init_latents = encode_frames(pipe.vae, init_images, device, self.dtype)
            latents = scheduler.add_noise(init_latents, noise, timesteps[:1].repeat(batch))

        # 7.3 Conditioning for the batch, ordered [unconditional, conditional] as diffusers does
        embeds = batch_embeds(cond, uncond, batch)
        added = None if image_embeds is None else {"image_embeds": batch_image_embeds(image_embeds, batch, do_cfg)}
        controlnet_cond, scale = self.controlnet_inputs(control_images, opts.controlnet_scale, do_cfg)

        # 7.4 Loop
        for t in timesteps:
            model_input = torch.cat([latents] * 2) if do_cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            noise_pred = self.guided_noise(model_input, model_input, t, embeds, added, controlnet_cond, scale,
                                           opts.guidance_scale, do_cfg)
            latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        return latents

    @staticmethod
    def _init_frames(init, reference, poses, seed, size, first) -> Iterator[np.ndarray]:
        """Init frames ``first..`` at ``size``: another animator's output, or given frames."""
        from holdpose.animate.base import Animator

        if isinstance(init, Animator):
            if getattr(init, "resumable", False):
                frames = init(reference, poses, seed=seed, start_frame=first)
            else:
                frames = islice(init(reference, poses, seed=seed), first, None)
            return (resize(np.asarray(frame), size) for frame in frames)
        return frames_of(init, "init", poses.num_frames, size, first)
