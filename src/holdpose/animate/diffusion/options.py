"""The options every diffusion backend takes: the models to load
(:class:`DiffusionModelOptions`, constructor arguments) and how to run them
(:class:`DiffusionOptions`, keyword arguments of the call)."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import numpy as np

from holdpose.animate.diffusion.conditioning import POSE
from holdpose.animate.diffusion.loading import (
    CPU_OFFLOAD, DEFAULT_CONTROLNET, DEFAULT_IP_ADAPTER_WEIGHT, DEFAULT_MODEL, DTYPES)
from holdpose.animate.diffusion.noise import SCHEDULERS
from holdpose.animate.options import Options, check_float, check_int, option
from holdpose.animate.resume import fingerprint
from holdpose.argtypes import finite_float, positive_int
from holdpose.errors import HoldposeError

logger = logging.getLogger(__name__)

DEFAULT_RESOLUTION = 512  # SD 1.5 models were trained at 512 px


@dataclass
class DiffusionModelOptions(Options):
    """What a diffusion backend loads, and where (keyword arguments of its constructor).

    Attributes:
        model: base Stable Diffusion 1.x model: Hugging Face id, diffusers folder, or a
            single ``.safetensors`` file.
        controlnet: one ControlNet or a list (id, folder or ``.safetensors`` file); the
            first is normally the OpenPose one.
        model_config: diffusers folder or id with the configs for a single-file ``model``.
        ip_adapter: optional IP-Adapter (id, folder, or weight file) that makes the
            reference image an image prompt, to hold the character's appearance.
        ip_adapter_weight: the weight file inside an IP-Adapter id or folder.
        ip_adapter_image_encoder: a CLIP image encoder elsewhere than beside the weights.
        device: "cpu", "cuda", "cuda:N", "mps"; None picks CUDA when there is a GPU.
        dtype: "float32", "float16", "bfloat16"; None: float16 on GPUs, float32 on the CPU.
        vae_slicing, vae_tiling: decode one frame at a time / in tiles (less memory;
            tiling changes the pixels slightly, so it is part of a run's parameters).
        cpu_offload: "model" (each model moves to the GPU only while it runs) or
            "sequential" (layer by layer: least memory, slowest); needs accelerate.
        allow_pickle: allow pickled checkpoints (.ckpt/.bin/.pt); off by default.
        pose_style: pose-map style of the ControlNet (default: the backend's).
    """

    model: str | os.PathLike = option(DEFAULT_MODEL, "base SD 1.5 model: Hugging Face id, diffusers folder or "
                                      f".safetensors file (default {DEFAULT_MODEL})")
    controlnet: str | os.PathLike | list = option(
        DEFAULT_CONTROLNET, f"ControlNet id, folder or .safetensors; repeat for several (default {DEFAULT_CONTROLNET})",
        action="append")
    model_config: str | None = option(None, "diffusers folder or id with the configs of a single-file --model")
    ip_adapter: str | os.PathLike | None = option(None, "IP-Adapter id, folder or weight file: holds the reference's "
                                                  "appearance")
    ip_adapter_weight: str = option(DEFAULT_IP_ADAPTER_WEIGHT, "weight file inside an --ip-adapter id or folder "
                                    f"(default {DEFAULT_IP_ADAPTER_WEIGHT})")
    ip_adapter_image_encoder: str | None = option(None, "CLIP image encoder of the IP-Adapter, when not beside it")
    device: str | None = option(None, "cpu, cuda, cuda:N or mps (default: cuda when there is a GPU)")
    dtype: str | None = option(None, "default float16 on GPUs, float32 on CPU",
                               choices=("float32", "float16", "bfloat16"))
    vae_slicing: bool = option(False, "decode one frame at a time (less memory)")
    vae_tiling: bool = option(False, "decode in tiles (less memory at large sizes)")
    cpu_offload: str | None = option(None, "keep models on the CPU between uses", choices=("model", "sequential"))
    allow_pickle: bool = option(False, "allow pickled checkpoints (.ckpt/.bin): trusted ones")
    pose_style: str | None = option(None, "pose-map style of the ControlNet (default: the backend's)", cli=False)

    @property
    def controlnets(self) -> list:
        return [self.controlnet] if isinstance(self.controlnet, (str, os.PathLike)) else list(self.controlnet)

    def check(self) -> "DiffusionModelOptions":
        """What can be checked before anything loads. Raises :class:`HoldposeError` naming the option."""
        from holdpose.render.styles import STYLES

        if not self.controlnets:
            raise HoldposeError("at least one ControlNet is needed (--controlnet)")
        if self.cpu_offload not in CPU_OFFLOAD:
            raise HoldposeError(f"cpu_offload must be one of {CPU_OFFLOAD}, got {self.cpu_offload!r}")
        if self.dtype is not None and not hasattr(self.dtype, "is_floating_point") \
                and str(self.dtype).lower() not in DTYPES and self.dtype != "auto":
            raise HoldposeError(f"dtype {self.dtype!r} is not supported; use float32, float16 or bfloat16")
        if self.pose_style is not None and self.pose_style not in STYLES:
            raise HoldposeError(f"pose_style {self.pose_style!r} is unknown; choose one of {', '.join(STYLES)}")
        return self


@dataclass
class DiffusionOptions(Options):
    """Options every diffusion backend takes (keyword arguments of ``__call__``).

    Attributes:
        prompt, negative_prompt: text prompts (encoded once per call).
        num_inference_steps: denoising steps.
        guidance_scale: classifier-free guidance; <= 1 turns guidance off (half the work).
        controlnet_scale: conditioning scale, one float for all ControlNets or one per ControlNet.
        control_images: one entry per ControlNet: "pose" (pose maps in the backend's
            style), a path (video, image folder, image), an array ``[T, H, W, 3]`` or a
            list of frames. None: pose maps for a single ControlNet. With one entry fewer
            than ControlNets, the first ControlNet gets the pose maps.
        scheduler: a name of :data:`SCHEDULERS`; None for the backend's default.
        resolution: short side of the generated frames, rounded to a multiple of 8
            (default 512, what SD 1.5 was trained at); frames are resized back to the canvas.
        ip_adapter_scale: weight of the IP-Adapter's image prompt (when one is loaded).
        decode_chunk_size: frames decoded by the VAE at once.
    """

    prompt: str = option("", "text prompt")
    negative_prompt: str = option("", "negative prompt")
    num_inference_steps: int = option(20, "denoising steps", flag="steps", type=positive_int)
    guidance_scale: float = option(7.5, "classifier-free guidance scale (<= 1: off)", flag="guidance", type=finite_float)
    controlnet_scale: float | list = option(1.0, "conditioning scale; once for all, or once per --controlnet",
                                            type=finite_float, action="append")
    control_images: list | None = option(None, "control images per --controlnet ('pose' for the pose maps; a video "
                                         "or image folder)", action="append")
    scheduler: str | None = option(None, "sampler (default: the backend's own)",
                                     choices=tuple(sorted(SCHEDULERS)))
    resolution: int = option(DEFAULT_RESOLUTION, "short side to generate at, rounded down to a multiple of 8 "
                             f"(default {DEFAULT_RESOLUTION}; frames are resized back to the canvas)",
                             type=positive_int)
    ip_adapter_scale: float = option(0.6, "IP-Adapter weight", type=finite_float)
    decode_chunk_size: int = option(8, "frames the VAE decodes at once", type=positive_int)

    SOURCE_FIELDS = ("control_images", "init")  # strings here are paths: recorded by content hash

    def check(self, num_controlnets: int, has_ip_adapter: bool) -> "DiffusionOptions":
        """Validate and normalise in place (``controlnet_scale`` and ``control_images`` become
        one entry per ControlNet). Raises :class:`HoldposeError` naming the option."""
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise HoldposeError("prompt and negative_prompt must be strings")
        check_int(self.num_inference_steps, "num_inference_steps (--steps)", 1)
        check_int(self.decode_chunk_size, "decode_chunk_size", 1)
        check_int(self.resolution, "resolution (--resolution)", 8)
        self.guidance_scale = check_float(self.guidance_scale, "guidance_scale (--guidance)", 0)
        self.ip_adapter_scale = check_float(self.ip_adapter_scale, "ip_adapter_scale (--ip-adapter-scale)")
        scales = self.controlnet_scale
        scales = [scales] * num_controlnets if np.isscalar(scales) else list(scales)
        if len(scales) == 1 and num_controlnets > 1:
            scales = scales * num_controlnets
        if len(scales) != num_controlnets:
            raise HoldposeError(f"controlnet_scale (--controlnet-scale): {len(scales)} values for "
                                f"{num_controlnets} ControlNets; give one, or one per --controlnet")
        self.controlnet_scale = [check_float(s, "controlnet_scale (--controlnet-scale)") for s in scales]
        images = self.control_images
        if images is None or (isinstance(images, str) and images == POSE):
            if num_controlnets > 1:
                raise HoldposeError(f"{num_controlnets} ControlNets need control_images (--control-images): one "
                                    "entry per ControlNet, \"pose\" for pose maps")
            images = [POSE]
        images = [POSE if image is None else image for image in images]
        if len(images) == num_controlnets - 1:
            images = [POSE] + images
        if len(images) != num_controlnets:
            raise HoldposeError(f"control_images (--control-images): {len(images)} entries for {num_controlnets} "
                                "ControlNets; give one per ControlNet (\"pose\" for pose maps)")
        self.control_images = images
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise HoldposeError(f"scheduler (--scheduler) {self.scheduler!r} is not supported; choose one of "
                                f"{', '.join(SCHEDULERS)}")
        if not has_ip_adapter and self.ip_adapter_scale != DiffusionOptions.ip_adapter_scale:
            logger.info("ip_adapter_scale is ignored: no IP-Adapter is loaded")
        return self

    def describe(self, has_ip_adapter: bool = True) -> dict:
        """JSON-able record of the options for a manifest (arrays and files by their hash)."""
        out = {f.name: fingerprint(getattr(self, f.name), paths=f.name in self.SOURCE_FIELDS)
               for f in dataclasses.fields(self)}
        if not has_ip_adapter:
            out.pop("ip_adapter_scale")
        return out


def boosted_control(options: dict, attempt: int) -> dict:
    """``options`` with the ControlNet scale(s) raised by a quarter per retry after the first
    (retry 1 keeps it: a new seed is the first thing to try)."""
    options = dict(options)
    if attempt >= 2:
        boost = 1.0 + 0.25 * (attempt - 1)
        scales = options.get("controlnet_scale", DiffusionOptions.controlnet_scale)
        options["controlnet_scale"] = [s * boost for s in scales] if isinstance(scales, (list, tuple)) \
            else scales * boost
    return options
