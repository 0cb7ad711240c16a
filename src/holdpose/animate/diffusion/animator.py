"""The base class of the diffusion backends: loads the models into a diffusers pipeline
and holds the step every backend shares (ControlNet residuals, UNet, guidance)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from holdpose.animate.base import Animator, check_poses, check_reference, check_seed
from holdpose.animate.diffusion.conditioning import control_tensor
from holdpose.animate.diffusion.loading import (
    DEFAULT_CONTROLNET, DEFAULT_MODEL, combine_controlnets, import_torch, load_base_components, load_ip_adapter,
    load_model, resolve_device, resolve_dtype)
from holdpose.animate.diffusion.noise import make_scheduler
from holdpose.animate.diffusion.options import DiffusionModelOptions, DiffusionOptions
from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

@dataclass
class ModelConfig:
    """What a diffusion animator loaded; recorded in manifests."""

    model: str
    controlnet: list[str]
    motion_adapter: str | None = None
    ip_adapter: str | None = None
    ip_adapter_weight: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    vae_tiling: bool = False
    pose_style: str = "openpose_full"
    extra: dict = field(default_factory=dict)


class DiffusionAnimator(Animator):
    """Loads the models every diffusion backend needs; the subclasses add their loop.

    ``DiffusionAnimator(model, controlnet, **model_options)``: the arguments are those of
    :class:`~holdpose.animate.diffusion.options.DiffusionModelOptions` (or the subclass's
    ``model_options_class``); an unknown one is an error that lists the valid ones.
    """

    name = "diffusion"
    pose_style = "openpose_full"
    resumable = True  # __call__ takes start_frame (see holdpose.animate.resume)
    keep_frames = True  # frames cost minutes: keep them beside the video
    options_class = DiffusionOptions
    model_options_class = DiffusionModelOptions
    default_scheduler = "unipc"
    scheduler_overrides: dict = {}

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL,
                 controlnet: str | os.PathLike | Sequence[str | os.PathLike] = DEFAULT_CONTROLNET, **model_options):
        opts = self.model_options_class.from_kwargs(dict(model=model, controlnet=controlnet, **model_options),
                                                    self.name).check()
        self.model_options = opts
        self.device = resolve_device(opts.device)
        self.dtype = resolve_dtype(opts.dtype, self.device)
        if opts.cpu_offload and self.device.type == "cpu":
            raise HoldposeError("cpu_offload moves models to a GPU while they run; it needs --device cuda")
        if opts.pose_style is not None:
            self.pose_style = opts.pose_style
        controlnets = opts.controlnets

        components = load_base_components(opts.model, dtype=self.dtype, allow_pickle=opts.allow_pickle,
                                          model_config=opts.model_config)
        control, num_controls = self.load_control(opts, components)
        self.pipe = self.build_pipeline(components, control)
        if opts.ip_adapter is not None:
            load_ip_adapter(self.pipe, str(opts.ip_adapter), weight=opts.ip_adapter_weight,
                            image_encoder=opts.ip_adapter_image_encoder, dtype=self.dtype,
                            allow_pickle=opts.allow_pickle)
        if opts.vae_slicing:
            self.pipe.vae.enable_slicing()
        if opts.vae_tiling:
            self.pipe.vae.enable_tiling()
        if opts.cpu_offload == "model":
            self.pipe.enable_model_cpu_offload(device=self.device)
        elif opts.cpu_offload == "sequential":
            self.pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.num_controlnets = num_controls
        self.has_ip_adapter = opts.ip_adapter is not None
        self.model_config = ModelConfig(
            model=str(opts.model), controlnet=[str(c) for c in controlnets],
            ip_adapter=None if opts.ip_adapter is None else str(opts.ip_adapter),
            ip_adapter_weight=opts.ip_adapter_weight if opts.ip_adapter is not None else None,
            device=str(self.device), dtype=str(self.dtype).replace("torch.", ""), vae_tiling=bool(opts.vae_tiling),
            pose_style=self.pose_style)

    def load_control(self, opts, components: dict):
        """``(control module, number of control inputs)``: the ControlNets of ``opts`` (one
        ``MultiControlNetModel`` for several). Backends with another control module (an adapter
        built from ``components["unet"]``) override this."""
        nets = [load_model("ControlNetModel", ref, f"ControlNet (--controlnet) #{n + 1}", dtype=self.dtype,
                           allow_pickle=opts.allow_pickle) for n, ref in enumerate(opts.controlnets)]
        return combine_controlnets(nets), len(nets)

    # Subclasses: wrap the loaded parts into their diffusers pipeline (self.model_options says what else to load).
    def build_pipeline(self, components: dict, controlnet):
        raise NotImplementedError

    @classmethod
    def check_options(cls, model_options: dict, options: dict) -> None:
        """The model and call options checked together, before any model loads (the call
        options' number of ControlNet scales and images must match the ControlNets)."""
        model = cls.model_options_class.from_kwargs(model_options, cls.name).check()
        cls.options_class.from_kwargs(options, cls.name).check(len(model.controlnets), model.ip_adapter is not None)

    @property
    def execution_device(self):
        """Where inputs go: the GPU even when models are offloaded to the CPU between uses."""
        return self.pipe._execution_device

    def config(self) -> dict:
        """What this animator loaded (models, device, dtype), for manifests."""
        return dataclasses.asdict(self.model_config)

    def resolve_options(self, options: dict):
        """Options with defaults filled in, checked and normalised."""
        opts = self.options_class.from_kwargs(options, self.name)
        return opts.check(self.num_controlnets, self.has_ip_adapter)

    def check_call(self, reference: np.ndarray, poses: PoseSequence, seed, start_frame: int, options: dict):
        """Step 1 of every backend's ``__call__``: the inputs checked, the options resolved.
        Returns ``(reference, poses, seed, opts)``."""
        reference = check_reference(reference)
        poses = check_poses(poses, reference)
        seed = check_seed(seed)
        opts = self.resolve_options(options)
        if not 0 <= start_frame <= poses.num_frames:
            raise HoldposeError(f"start_frame must lie in [0, {poses.num_frames}], got {start_frame}")
        return reference, poses, seed, opts

    def describe_options(self, **options) -> dict:
        """The options a call would run with, JSON-able, for a run's manifest."""
        return self.resolve_options(options).describe(self.has_ip_adapter)

    def scheduler_for(self, name: str | None):
        return make_scheduler(name or self.default_scheduler, self.pipe.scheduler.config, self.scheduler_overrides)

    def controlnet_inputs(self, control_images: list[np.ndarray], controlnet_scale: list[float], do_cfg: bool):
        """``(controlnet_cond, conditioning_scale)`` as diffusers' ControlNet takes them: one
        tensor ``[N, 3, H, W]`` (``[2 N, ...]`` with guidance, the same images for both halves)
        and one scale, or a list of each for a MultiControlNetModel."""
        torch = import_torch()
        conds = [control_tensor(images, self.execution_device, self.pipe.controlnet.dtype)
                 for images in control_images]
        if do_cfg:
            conds = [torch.cat([c, c]) for c in conds]
        if self.num_controlnets == 1:
            return conds[0], controlnet_scale[0]
        return conds, controlnet_scale

    def guided_noise(self, unet_input, control_input, t, text, added, controlnet_cond, conditioning_scale,
                     guidance_scale: float, do_cfg: bool, side_residuals=None):
        """One noise prediction: the ControlNet's residuals on ``control_input``, the UNet on
        ``unet_input`` with them (both the same tensor for image models; a video UNet takes
        ``[B, C, F, h, w]`` where the ControlNet sees the frames as a batch), then
        classifier-free guidance over the ``[unconditional, conditional]`` halves.

        ``side_residuals``: ``(down, mid)`` of another side network (DisPose's hybrid
        ControlNet), summed with the ControlNet's as ``MultiControlNetModel`` sums its nets'."""
        pipe = self.pipe
        down, mid = pipe.controlnet(control_input, t, encoder_hidden_states=text, controlnet_cond=controlnet_cond,
                                    conditioning_scale=conditioning_scale, guess_mode=False, return_dict=False)
        if side_residuals is not None:
            side_down, side_mid = side_residuals
            down = [a + b for a, b in zip(down, side_down, strict=True)]
            mid = mid + side_mid
        noise_pred = pipe.unet(unet_input, t, encoder_hidden_states=text, added_cond_kwargs=added,
                               down_block_additional_residuals=down, mid_block_additional_residual=mid,
                               return_dict=False)[0]
        return self.apply_guidance(noise_pred, guidance_scale, do_cfg)

    @staticmethod
    def apply_guidance(noise_pred, guidance_scale: float, do_cfg: bool):
        """Classifier-free guidance over the ``[unconditional, conditional]`` halves (as is without)."""
        if not do_cfg:
            return noise_pred
        noise_uncond, noise_text = noise_pred.chunk(2)
        return noise_uncond + guidance_scale * (noise_text - noise_uncond)

    @staticmethod
    def emit(images, first_index: int, start_frame: int, size: tuple[int, int], callback):
        """Decoded frames ``first_index, first_index + 1, ...`` as a backend yields them: those
        before ``start_frame`` (on disk already; made again only to keep a batch or chunk as an
        uninterrupted run made it) are skipped, the rest resized to the canvas and passed to ``callback``."""
        from holdpose.animate.diffusion.conditioning import resize

        for offset, image in enumerate(images):
            index = first_index + offset
            if index < start_frame:
                continue
            frame = resize(image, size)
            if callback is not None:
                callback(index, frame)
            yield frame

    def set_ip_adapter_scale(self, scale: float) -> None:
        if self.has_ip_adapter:
            self.pipe.set_ip_adapter_scale(scale)

