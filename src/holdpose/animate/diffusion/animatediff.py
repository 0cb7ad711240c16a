"""Whole clip: AnimateDiff (SD 1.5 + motion adapter) + ControlNet, any length.

The motion modules see ``window`` frames at once (16 for the v1-5-2 adapter). A longer
clip is denoised as overlapping windows (:func:`~holdpose.animate.diffusion.windows.context_windows`):
at every denoising step each window predicts the noise of its frames, and the
predictions of windows sharing a frame are averaged with pyramid weights that sum to
one (:func:`~holdpose.animate.diffusion.windows.fusion_weights`), then the scheduler takes one
step on the whole clip. Only one window's activations exist at a time, so memory hardly
grows with the clip: what does is its latent state (64 KB per frame at 512x512 in
float32, a few times that with a multistep scheduler's history) and its PNG-compressed
control maps (a few KB per frame).

Why not diffusers' FreeNoise (``pipe.enable_free_noise``)? It fuses windows inside the
temporal attention only; the spatial layers and the ControlNet still run on every frame
of the clip in one batch, so memory grows with the clip. It is available as
``fusion="freenoise"`` for short clips.

MimicMotion-style anchor (``reference_pose``): the reference's own pose map is put in
front of every window as an extra frame whose latent is, at every step, the reference
image's latent noised to that step; the temporal attention then carries the
reference's appearance into the window. The anchor frame is not output.

Each frame's initial noise depends only on (seed, frame index)
(:func:`~holdpose.animate.diffusion.noise.frame_noise`), so the clip is the same
whatever the window, and a resumed run re-makes exactly the same clip.
Default scheduler "ddim" with AnimateDiff's settings (linear betas, linspace
timesteps, steps_offset 1, no sample clipping), as the diffusers docs give them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from holdpose.animate.diffusion.animator import DiffusionAnimator
from holdpose.animate.diffusion.conditioning import (
    POSE, ControlFrameStore, control_streams, encode_prompt, generation_size, ip_adapter_embeds, resize)
from holdpose.animate.diffusion.loading import (
    DEFAULT_MOTION_ADAPTER, import_diffusers, import_torch, load_model, quiet_fp32_notice)
from holdpose.animate.diffusion.noise import frame_noise, set_timesteps
from holdpose.animate.diffusion.options import DiffusionModelOptions, DiffusionOptions, boosted_control
from holdpose.animate.diffusion.vae import decode_latents, encode_frames
from holdpose.animate.options import check_int, option
from holdpose.animate.diffusion.windows import SCHEMES, context_windows, fusion_weights
from holdpose.argtypes import positive_int
from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

FUSIONS = SCHEMES + ("freenoise",)


@dataclass
class AnimateDiffModelOptions(DiffusionModelOptions):
    """The models of :class:`AnimateDiffAnimator`: those of :class:`DiffusionModelOptions`, and
    ``motion_adapter``, the AnimateDiff motion adapter (Hugging Face id, diffusers folder or
    ``.safetensors`` file)."""

    motion_adapter: str | os.PathLike = option(DEFAULT_MOTION_ADAPTER, "motion adapter id or path "
                                               f"(default {DEFAULT_MOTION_ADAPTER})")


@dataclass
class AnimateDiffOptions(DiffusionOptions):
    """Options of :class:`AnimateDiffAnimator`: those of :class:`DiffusionOptions`, and

    Attributes:
        window: frames the motion module sees at once (context length), anchor included.
        stride: frames between the starts of consecutive windows (window - stride overlap).
        fusion: "pyramid", "flat" or "triangular" (MimicMotion's, counting the anchor) weights
            for fusing overlapping windows, or
            "freenoise" for diffusers' FreeNoise (memory grows with the clip).
        anchor_reference: anchor every window on the reference image and its pose
            (``reference_pose``, detected in the reference when not given).
        reference_pose: the pose of the reference image (a :class:`PoseSequence` on the same
            canvas; its first frame is used); giving it anchors the windows.
    """

    num_inference_steps: int = option(25, "denoising steps", flag="steps", type=positive_int)
    window: int = option(16, "frames per window", type=positive_int)
    stride: int = option(8, "frames between window starts", type=positive_int)
    fusion: str = option("pyramid", "window fusion (triangular: MimicMotion's)", choices=FUSIONS)
    anchor_reference: bool = option(False, "put the reference (and its pose) in front of every window")
    reference_pose: PoseSequence | None = option(None, cli=False)

    def check(self, num_controlnets: int, has_ip_adapter: bool) -> "AnimateDiffOptions":
        super().check(num_controlnets, has_ip_adapter)
        anchored = self.anchor_reference or self.reference_pose is not None
        check_int(self.window, "window (--window)", 2 if anchored else 1)
        check_int(self.stride, "stride (--stride)", 1)
        frames_per_window = self.window - anchored
        if self.stride > frames_per_window:
            raise HoldposeError(f"stride (--stride) {self.stride} is longer than the {frames_per_window} new frames "
                                f"of a window of {self.window}{' with the anchor' if anchored else ''}: windows "
                                "would leave frames out; use a stride <= that")
        if self.fusion not in FUSIONS:
            raise HoldposeError(f"fusion {self.fusion!r} is unknown; choose one of {', '.join(FUSIONS)}")
        if self.reference_pose is not None and (not isinstance(self.reference_pose, PoseSequence)
                                                or self.reference_pose.num_frames < 1):
            raise HoldposeError("reference_pose must be a PoseSequence holding the reference image's pose")
        return self


class AnimateDiffAnimator(DiffusionAnimator):
    """AnimateDiff + ControlNet(s) over a whole clip, in fused overlapping windows.

    ``animator(reference, poses, seed=0, prompt=..., window=16, stride=8)`` yields
    ``uint8 [H, W, 3]`` frames on the poses' canvas. Options: :class:`AnimateDiffOptions`.
    ``start_frame`` skips decoding frames already made (the clip is denoised as a whole
    either way). Ignores the frame-by-frame options (``batch_size``, ``init``, ``strength``).

    Construction arguments: :class:`AnimateDiffModelOptions`.
    """

    name = "animatediff"
    pose_style = "openpose_full"
    options_class = AnimateDiffOptions
    model_options_class = AnimateDiffModelOptions
    default_scheduler = "ddim"
    scheduler_overrides = {"beta_schedule": "linear", "clip_sample": False, "timestep_spacing": "linspace",
                           "steps_offset": 1}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_config.motion_adapter = str(self.model_options.motion_adapter)

    @classmethod
    def from_options(cls, character, model_options: dict, options: dict):
        """With ``anchor_reference``, the anchor's pose is the character's (found once)."""
        options = dict(options)
        if options.get("anchor_reference") and options.get("reference_pose") is None:
            options["reference_pose"] = character.pose_sequence()
        return cls(**model_options), options

    can_regenerate = True

    def retry_options(self, reference: np.ndarray, options: dict, attempt: int) -> dict:
        """Retry 1: a new seed only; later retries raise the ControlNet scale by a quarter each."""
        return boosted_control(options, attempt)

    def regenerate(self, reference: np.ndarray, poses: PoseSequence, index: int, *, seed: int, attempt: int,
                   **options) -> np.ndarray:
        """Frame ``index`` made again as part of one window centred on it (the motion module
        needs its neighbours; denoising the whole clip again for one frame would cost the clip)."""
        from holdpose.animate.base import retry_seed

        opts = self.resolve_options(options)
        if any(not (isinstance(c, str) and c == POSE) for c in opts.control_images):
            raise HoldposeError("retrying a frame with AnimateDiff needs pose control images only (the window it "
                                "remakes would not line up with other control frames); drop --control-images or "
                                "--verify")
        length = min(opts.window - bool(opts.anchor_reference or opts.reference_pose is not None), poses.num_frames)
        start = min(max(index - length // 2, 0), poses.num_frames - length)
        frames = self(reference, poses[start:start + length], seed=retry_seed(seed, index, attempt),
                      **self.retry_options(reference, options, attempt))
        return list(frames)[index - start]

    def build_pipeline(self, components: dict, controlnet):
        diffusers = import_diffusers()
        opts = self.model_options
        adapter = load_model("MotionAdapter", opts.motion_adapter, "motion adapter (--motion-adapter)",
                             dtype=self.dtype, allow_pickle=opts.allow_pickle)
        with quiet_fp32_notice():  # the pipeline merges the UNet and the adapter into a UNetMotionModel
            pipe = diffusers.AnimateDiffControlNetPipeline(
                **components, motion_adapter=adapter, controlnet=controlnet, feature_extractor=None, image_encoder=None)
            if pipe.unet.dtype != self.dtype:
                pipe.unet.to(dtype=self.dtype)
        return pipe

    def __call__(self, reference: np.ndarray, poses: PoseSequence, *, seed: int = 0, callback=None,
                 start_frame: int = 0, **options) -> Iterator[np.ndarray]:
        torch = import_torch()
        pipe = self.pipe

        # 1. Check inputs
        reference, poses, seed, opts = self.check_call(reference, poses, seed, start_frame, options)
        num_frames = poses.num_frames
        if opts.anchor_reference and opts.reference_pose is None:
            from holdpose.animate.character import Character

            opts.reference_pose = Character(reference).pose_sequence()
        anchored = opts.reference_pose is not None
        if anchored and opts.reference_pose.size != poses.size:
            raise HoldposeError(f"reference_pose.size {opts.reference_pose.size} differs from the poses' canvas "
                                f"{poses.size}")
        trained = pipe.motion_adapter.config.motion_max_seq_length if pipe.motion_adapter is not None else None
        if trained and opts.window > trained:
            logger.warning("window %d is longer than the %d frames the motion adapter was trained on", opts.window,
                           trained)

        # 2. Define call parameters: size, guidance, scheduler, windows and their fusion weights
        device = self.execution_device
        width, height = generation_size(poses.size, opts.resolution, 8)
        do_cfg = opts.guidance_scale > 1.0
        scheduler = self.scheduler_for(opts.scheduler)
        if opts.fusion == "freenoise":
            pipe.enable_free_noise(context_length=opts.window, context_stride=opts.stride,
                                   weighting_scheme="pyramid", noise_type="random")
            windows, weights = [np.arange(num_frames)], [np.ones(num_frames)]
        else:
            if pipe.free_noise_enabled:
                pipe.disable_free_noise()
            windows = context_windows(num_frames, opts.window - anchored, opts.stride)
            weights = fusion_weights(windows, num_frames, opts.fusion, lead=int(anchored))

        # 3. Encode the prompt (and the reference as an image prompt) once
        with torch.no_grad():
            cond, uncond = encode_prompt(pipe, opts.prompt, opts.negative_prompt, device, do_cfg)
            embeds = cond if uncond is None else torch.cat([uncond, cond])
            image_embeds = ip_adapter_embeds(pipe, reference, device, do_cfg) if self.has_ip_adapter else None
        self.set_ip_adapter_scale(opts.ip_adapter_scale)
        added = None if image_embeds is None else {"image_embeds": image_embeds}

        # 4. Render the control images of the clip into a compressed store; the anchor's gets index num_frames
        store = ControlFrameStore(control_streams(poses, opts.control_images, self.pose_style, (width, height)),
                                  num_frames)
        if anchored:
            store.extra(control_streams(opts.reference_pose[:1], opts.control_images, self.pose_style,
                                        (width, height)))

        # 4b. Extra guidance a subclass computes once for the clip (DisPose's motion fields and point features)
        guidance = self.window_guidance(reference, poses, opts, (width, height))

        # 5. Prepare latents [1, C, F, h, w]: each frame's noise from (seed, frame); the anchor's latent is the
        #    reference image's
        latent_shape = (pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
        timesteps = set_timesteps(scheduler, opts.num_inference_steps, 1.0, device)
        noise = frame_noise(seed, range(num_frames), latent_shape).to(device=device, dtype=self.dtype)
        latents = noise.permute(1, 0, 2, 3).unsqueeze(0) * scheduler.init_noise_sigma
        if anchored:
            with torch.no_grad():
                reference_latent = encode_frames(pipe.vae, resize(reference, (width, height))[None], device,
                                                 self.dtype).unsqueeze(2)
            anchor_noise = frame_noise(seed, [0], latent_shape, key=2).to(device=device, dtype=self.dtype)
            anchor_noise = anchor_noise.permute(1, 0, 2, 3).unsqueeze(0)

        # 6. Denoising loop: every window predicts the noise of its frames; overlapping predictions are averaged
        #    with the fusion weights; one scheduler step on the whole clip
        weights = [torch.tensor(w, device=device, dtype=self.dtype).view(1, 1, -1, 1, 1) for w in weights]
        with torch.no_grad():
            for t in timesteps:
                noise_pred = torch.zeros_like(latents)
                anchor = scheduler.add_noise(reference_latent, anchor_noise, t.reshape(1)) if anchored else None
                for window, weight in zip(windows, weights):
                    frames = window.tolist()
                    window_latents = latents[:, :, window]
                    if anchored:  # the anchor goes first, as MimicMotion's reference pose does
                        window_latents = torch.cat([anchor, window_latents], dim=2)
                        frames = [num_frames] + frames
                    eps = self.predict_noise(scheduler, window_latents, t, embeds, added, store.get(frames), opts,
                                             do_cfg, guidance=guidance, frames=frames)
                    noise_pred[:, :, window] += weight * (eps[:, :, 1:] if anchored else eps)
                latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]

        # 7. Decode in chunks (aligned to multiples of decode_chunk_size, as in an uninterrupted run) and yield
        chunk = opts.decode_chunk_size
        for chunk_start in range(start_frame // chunk * chunk, num_frames, chunk):
            with torch.no_grad():
                images = decode_latents(pipe.vae, latents[0, :, chunk_start: chunk_start + chunk].permute(1, 0, 2, 3))
            yield from self.emit(images, chunk_start, start_frame, poses.size, callback)
        pipe.maybe_free_model_hooks()

    def window_guidance(self, reference: np.ndarray, poses: PoseSequence, opts: AnimateDiffOptions,
                        size: tuple[int, int]):
        """Per-clip guidance beyond the ControlNets, or None (here). A subclass returns an object
        whose ``residuals(control_input, t, text, frames, do_cfg)`` gives ``(down, mid)`` side
        residuals for one window; ``frames`` are the window's clip indices, the anchor being
        ``poses.num_frames``. Passed explicitly to every window, never kept as global state."""
        return None

    def predict_noise(self, scheduler, latents, t, embeds, added, control_images: list[np.ndarray],
                      opts: AnimateDiffOptions, do_cfg: bool, guidance=None, frames: list[int] | None = None):
        """Guided noise prediction for one window, latents ``[1, C, f, h, w]`` -> ``[1, C, f, h, w]``;
        the ControlNet sees the frames as a batch ``[(2 f), C, h, w]``, as in diffusers' pipeline.
        ``guidance``: :meth:`window_guidance`'s object, asked for residuals of ``frames``."""
        torch = import_torch()
        num_frames = latents.shape[2]
        model_input = torch.cat([latents] * 2) if do_cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)
        control_input = model_input.transpose(1, 2).flatten(0, 1)  # [(2 f), C, h, w], unconditional frames first
        text = embeds.repeat_interleave(num_frames, dim=0)
        controlnet_cond, scale = self.controlnet_inputs(control_images, opts.controlnet_scale, do_cfg)
        side = None if guidance is None else guidance.residuals(control_input, t, text, frames, do_cfg)
        return self.guided_noise(model_input, control_input, t, text, added, controlnet_cond, scale,
                                 opts.guidance_scale, do_cfg, side_residuals=side)
