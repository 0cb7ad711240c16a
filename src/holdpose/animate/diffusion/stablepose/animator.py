"""Stable-Pose frame by frame: SD 1.5 with a Stable-Pose adapter, one image per pose.

The loop is the ControlNet backend's (:class:`~holdpose.animate.diffusion.controlnet.ControlNetAnimator`):
the same initial noise for every frame, the prompt and the IP-Adapter image prompt encoded once,
frames in batches, resumable, image-to-image from ``init`` frames. What differs is the control:

1. the pose image is drawn in the HumanSD style (``humansd``) and scaled to [-1, 1];
2. the coarse-to-fine masks (:func:`holdpose.render.pose_masks.coarse_to_fine_masks`) are computed
   from that image on the latent grid (so user-supplied pose images work too);
3. the adapter's residuals feed the frozen UNet; with classifier-free guidance the unconditional
   half gets all-ones masks (unrestricted attention) and the *same* pose image, as in the paper's code.

Defaults follow the paper: DDIM, 50 steps, guidance 7.5, its negative prompt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from holdpose.animate.diffusion.controlnet import ControlNetAnimator, ControlNetOptions
from holdpose.animate.diffusion.loading import DEFAULT_MODEL, import_diffusers, import_torch
from holdpose.animate.diffusion.options import DiffusionModelOptions
from holdpose.animate.options import option
from holdpose.argtypes import positive_int
from holdpose.errors import HoldposeError

PAPER_NEGATIVE_PROMPT = ("longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, "
                         "cropped, worst quality, low quality")


@dataclass
class StablePoseModelOptions(DiffusionModelOptions):
    """What :class:`StablePoseAnimator` loads: those of :class:`DiffusionModelOptions` except the
    ControlNets, and

    Attributes:
        adapter: a ``holdpose train stablepose`` output folder, or a ``.safetensors`` file (a
            converted official checkpoint: ``holdpose convert-weights --format ldm-stablepose``).
        mask_mode: "clean" or "official" pose masks; None: the adapter's own (recorded at
            training; official for converted checkpoints).
    """

    controlnet: None = option(None, "not used by stablepose", cli=False)
    adapter: str | os.PathLike | None = option(None, "Stable-Pose adapter: a `holdpose train stablepose` folder or a "
                                               "converted .safetensors file")
    mask_mode: str | None = option(None, "pose masks: clean or official (default: the adapter's own)",
                                   choices=("clean", "official"))

    @property
    def controlnets(self) -> list:
        return [] if self.adapter is None else [self.adapter]  # the one control input is the adapter

    def check(self) -> "StablePoseModelOptions":
        if self.controlnet is not None:
            raise HoldposeError("the stablepose backend takes no ControlNet (--controlnet); its pose control is "
                                "the adapter (--adapter)")
        if self.adapter is None:
            raise HoldposeError("the stablepose backend needs an adapter (--adapter): a `holdpose train stablepose` "
                                "folder or a converted checkpoint (docs/stable-pose.md)")
        return super().check()


@dataclass
class StablePoseOptions(ControlNetOptions):
    """Options of :class:`StablePoseAnimator`: those of the ControlNet backend (``controlnet_scale``
    scales the adapter's residuals; ``control_images`` may give HumanSD pose images), with the
    paper's defaults: 50 steps, its negative prompt (DDIM and guidance 7.5 are the backend's)."""

    negative_prompt: str = option(PAPER_NEGATIVE_PROMPT, "negative prompt")
    num_inference_steps: int = option(50, "denoising steps", flag="steps", type=positive_int)

    def check(self, num_controlnets: int, has_ip_adapter: bool) -> "StablePoseOptions":
        return super().check(1, has_ip_adapter)  # one control input: the adapter


class StablePoseAnimator(ControlNetAnimator):
    """SD 1.5 + a Stable-Pose adapter, frame by frame (see the module docstring).

    ``StablePoseAnimator(model=..., adapter="run/")(reference, poses, prompt=..., seed=0)`` yields
    ``uint8 [H, W, 3]`` frames; the reference sets the canvas and, with ``ip_adapter=``, the identity.
    """

    name = "stablepose"
    pose_style = "humansd"
    options_class = StablePoseOptions
    model_options_class = StablePoseModelOptions
    default_scheduler = "ddim"
    size_multiple = 16  # the ViT's 2x2 patches of 8-pixel latent cells

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, adapter: str | os.PathLike | None = None, **kwargs):
        super(ControlNetAnimator, self).__init__(model, None, adapter=adapter, **kwargs)
        self.model_config.extra = {"adapter": str(self.model_options.adapter), "mask_mode": self.mask_mode}

    def load_control(self, opts, components: dict):
        from holdpose.animate.diffusion.stablepose.model import load_adapter

        adapter, settings = load_adapter(components["unet"], opts.adapter)
        self.adapter = adapter.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.mask_mode = opts.mask_mode or settings.get("mask_mode", "clean")
        return self.adapter, 1

    def build_pipeline(self, components: dict, adapter):
        diffusers = import_diffusers()
        return diffusers.StableDiffusionPipeline(**components, safety_checker=None, feature_extractor=None,
                                                 image_encoder=None, requires_safety_checker=False)

    def controlnet_inputs(self, control_images: list[np.ndarray], controlnet_scale: list[float], do_cfg: bool):
        """``((pose image [N, 3, H, W] in [-1, 1], masks [N, 2, h, w]), scale)``; with guidance
        ``[2N, ...]``, the unconditional half with the same pose image and all-ones masks."""
        from holdpose.render.humansd import pose_image_tensor_values
        from holdpose.render.pose_masks import coarse_to_fine_masks

        torch = import_torch()
        images = control_images[0]
        cell = self.pipe.vae_scale_factor
        masks = np.stack([coarse_to_fine_masks(image, mode=self.mask_mode, cell=cell) for image in images])
        pose = pose_image_tensor_values(images).transpose(0, 3, 1, 2)
        pose, masks = (torch.from_numpy(np.ascontiguousarray(a)).to(self.execution_device, self.dtype)
                       for a in (pose, masks))
        if do_cfg:
            pose, masks = torch.cat([pose, pose]), torch.cat([torch.ones_like(masks), masks])
        return (pose, masks), controlnet_scale[0]

    def guided_noise(self, unet_input, control_input, t, text, added, controlnet_cond, conditioning_scale,
                     guidance_scale: float, do_cfg: bool):
        """The adapter's residuals on ``control_input``, the UNet with them, then guidance."""
        pose, masks = controlnet_cond
        down, mid = self.adapter(control_input, t, text, pose_image=pose, masks=masks,
                                 conditioning_scale=conditioning_scale)
        noise_pred = self.pipe.unet(unet_input, t, encoder_hidden_states=text, added_cond_kwargs=added,
                                    down_block_additional_residuals=down, mid_block_additional_residual=mid,
                                    return_dict=False)[0]
        return self.apply_guidance(noise_pred, guidance_scale, do_cfg)
