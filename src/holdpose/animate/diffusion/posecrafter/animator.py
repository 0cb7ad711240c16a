"""PoseCrafter generation (paper §4.2–4.3): the tuned person follows new poses.

``holdpose animate tuned/ target.poses.json -o out.mp4 --backend posecrafter``: the reference
is the folder ``holdpose tune`` wrote, and the pipeline reads top to bottom:

1. **reference-frame selection** (Eq. 5): the training frame ``i*`` whose pose is nearest the
   target poses (:func:`holdpose.refine.align.select_reference_frame`, ``--ref-metric``);
2. **inversion, once**: DDIM-invert frame ``i*`` (source prompt, guidance 1, ControlNet on its
   pose) to ``z_T``; replicate it to every frame (identical frames through the inflated model
   give the one-frame output, so inverting once is exact);
3. **insertion**: the poses become ``[p_{i*}, p̂_1 … p̂_M]`` with ``p_{i*}`` at the key-frame
   position; ``M + 1`` frames are generated and the inserted one dropped (``--no-insert``: M);
4. **latent editing** of face and hands in each target frame's ``z_T`` (Eq. 18–19,
   :mod:`~holdpose.animate.diffusion.posecrafter.editing`; ``--no-latent-edit``);
5. **sampling**: deterministic DDIM (η = 0), 50 steps, guidance 1 by default, ControlNet
   scale 1, the whole clip at once (temporal attention sees every frame).

Nothing is random: the same tuned folder, poses and options give the same frames, and a
resumed run decodes the same clip. The whole clip is denoised in one batch, as in the paper
(about 180 frames fit 24 GB); longer targets need that much memory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from holdpose.animate.character import Character
from holdpose.animate.diffusion.animator import DiffusionAnimator
from holdpose.animate.diffusion.conditioning import POSE, control_tensor, encode_prompt, generation_size, resize
from holdpose.animate.diffusion.loading import controlnet_pipeline, import_torch
from holdpose.animate.diffusion.options import DiffusionModelOptions, DiffusionOptions
from holdpose.animate.options import check_int, option
from holdpose.argtypes import finite_float, nonnegative_int, positive_int
from holdpose.errors import HoldposeError
from holdpose.refine.timeline import concatenate
from holdpose.render.geometry import EDIT_PARTS
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

TRAINABLE_FILE = "trainable.safetensors"


class TunedCharacter(Character):
    """The character of a tuned folder: its canvas and look are the training frames', its pose
    (for alignment) the training pose with the most keypoints present (the first of equals)."""

    def __init__(self, folder: str | os.PathLike):
        from holdpose.animate.diffusion.posecrafter.tuning import read_set, read_tuned

        self.folder = Path(folder)
        self.description = read_tuned(self.folder)
        if not (self.folder / TRAINABLE_FILE).is_file():
            raise HoldposeError(f"{self.folder}: its tuning has not finished (no {TRAINABLE_FILE}); run the same "
                                "`holdpose tune` command again to complete it")
        self.frames, self.poses = read_set(self.folder / "training")
        fullest = int(np.argmax(self.poses.present[:, 0].sum(-1)))
        super().__init__(self.frames[fullest])
        self._pose = (self.poses.keypoints[fullest, 0], self.poses.scores[fullest, 0])


@dataclass
class PoseCrafterModelOptions(DiffusionModelOptions):
    """What :class:`PoseCrafterAnimator` loads: the base model and ControlNet the tuned folder
    names (``model``/``controlnet`` None), or others only with ``override_models``."""

    model: str | os.PathLike | None = option(None, "base SD 1.5 model: Hugging Face id, diffusers folder or "
                                             ".safetensors file")
    controlnet: str | os.PathLike | list | None = option(None, "ControlNet id, folder or .safetensors; repeat for "
                                                         "several", action="append")
    override_models: bool = option(False, "load --model/--controlnet although the tuned folder was tuned on others")

    def check(self) -> "PoseCrafterModelOptions":
        if self.controlnet is not None and len(self.controlnets) != 1:
            raise HoldposeError("posecrafter takes one ControlNet (the OpenPose one it was tuned with)")
        if self.ip_adapter is not None:
            raise HoldposeError("posecrafter takes no IP-Adapter: the tuned weights hold the person's look")
        if self.controlnet is not None:
            return super().check()
        return self

    @property
    def controlnets(self) -> list:
        """One entry: the ControlNet given, or None for the tuned folder's."""
        return [None] if self.controlnet is None else super().controlnets


@dataclass
class PoseCrafterOptions(DiffusionOptions):
    """Options of :class:`PoseCrafterAnimator`: those of :class:`DiffusionOptions` (prompt None:
    the tuned one; resolution None: the tuning size), and

    Attributes:
        no_insert: do not insert the reference frame's pose at the key-frame position.
        no_latent_edit: do not edit the face and hand regions of the initial latents.
        edit_parts: the parts edited, comma-separated, in order (face, left_hand, right_hand).
        ref_metric: reference-frame distance: "paper" (Eq. 5, raw pixels, all keypoints) or
            "normalized" (position- and size-normalised body points).
        reference_frame: use this training frame instead of selecting one.
        latent_warp: "bilinear" or "nearest" sampling in the latent warp.
        invert_refine: fixed-point iterations per inversion step (0: the standard inversion).
    """

    prompt: str | None = option(None, "text prompt (default: the tuned one)")
    num_inference_steps: int = option(50, "denoising steps", flag="steps", type=positive_int)
    guidance_scale: float = option(1.0, "classifier-free guidance scale (<= 1: off)", flag="guidance",
                                   type=finite_float)
    resolution: int | None = option(None, "short side to generate at (default: the tuning size)", type=positive_int)
    no_insert: bool = option(False, "do not insert the reference pose as the key frame")
    no_latent_edit: bool = option(False, "do not edit face and hands in the initial latents")
    edit_parts: str = option(",".join(EDIT_PARTS), "parts edited in the latent, comma-separated")
    ref_metric: str = option("paper", "reference-frame distance", choices=("paper", "normalized"))
    reference_frame: int | None = option(None, "use this training frame as the reference", type=nonnegative_int)
    latent_warp: str = option("bilinear", "sampling of the latent warp", choices=("bilinear", "nearest"))
    invert_refine: int = option(0, "fixed-point iterations per DDIM inversion step", type=nonnegative_int)

    def check(self, num_controlnets: int, has_ip_adapter: bool) -> "PoseCrafterOptions":
        from holdpose.animate.diffusion.posecrafter.editing import WARP_MODES
        from holdpose.refine.align import REFERENCE_METRICS

        # None means "the tuned folder's" for these two: the shared checks see a valid stand-in
        prompt, resolution = self.prompt, self.resolution
        self.prompt = "" if prompt is None else prompt
        self.resolution = 8 if resolution is None else resolution
        super().check(num_controlnets, has_ip_adapter)
        self.prompt, self.resolution = prompt, resolution
        if self.control_images != [POSE]:
            raise HoldposeError("posecrafter is conditioned on pose maps only; drop --control-images")
        if self.scheduler not in (None, "ddim"):
            raise HoldposeError("posecrafter inverts and samples with DDIM; drop --scheduler")
        parts = [p.strip() for p in str(self.edit_parts).split(",") if p.strip()]
        unknown = [p for p in parts if p not in EDIT_PARTS]
        if unknown:
            raise HoldposeError(f"edit_parts (--edit-parts): {', '.join(unknown)} unknown; choose from "
                                f"{', '.join(EDIT_PARTS)}")
        self.edit_parts = ",".join(parts)
        if self.ref_metric not in REFERENCE_METRICS:
            raise HoldposeError(f"ref_metric (--ref-metric) must be one of {', '.join(REFERENCE_METRICS)}")
        if self.latent_warp not in WARP_MODES:
            raise HoldposeError(f"latent_warp (--latent-warp) must be one of {', '.join(WARP_MODES)}")
        check_int(self.invert_refine, "invert_refine (--invert-refine)", 0)
        if self.reference_frame is not None:
            check_int(self.reference_frame, "reference_frame (--reference-frame)", 0)
        return self


class PoseCrafterAnimator(DiffusionAnimator):
    """PoseCrafter: a person tuned on one video (``holdpose tune``) follows any poses.

    ``PoseCrafterAnimator(tuned, **model_options)`` loads the tuned folder's base model and
    ControlNet (:class:`PoseCrafterModelOptions`), inflates them and loads the tuned weights
    strictly. ``animator(reference, poses, ...)`` yields ``uint8 [H, W, 3]`` frames; the
    ``reference`` is the character's image (its canvas; the look comes from the tuned frames).
    Options: :class:`PoseCrafterOptions`. Takes ``start_frame`` (the clip is denoised whole).
    """

    name = "posecrafter"
    pose_style = "openpose_full"
    options_class = PoseCrafterOptions
    model_options_class = PoseCrafterModelOptions
    default_scheduler = "ddim"
    reference_help = "the folder `holdpose tune` wrote"

    def __init__(self, tuned: str | os.PathLike | TunedCharacter, model=None, controlnet=None, *,
                 override_models: bool = False, **model_options):
        # the folder is read once: a TunedCharacter (what animate() has) already holds it
        character = tuned if isinstance(tuned, TunedCharacter) else TunedCharacter(tuned)
        self.tuned = character.folder
        self.description = character.description
        model = self._tuned_model("model", "--model", model, self.description["model"], override_models)
        controlnet = self._tuned_model("controlnet", "--controlnet", controlnet, self.description["controlnet"],
                                       override_models)
        model_options.setdefault("model_config", self.description.get("model_config"))
        super().__init__(model, controlnet, override_models=override_models, **model_options)
        self.training_frames, self.training_poses = character.frames, character.poses
        self._load_tuned_weights()

    @staticmethod
    def _tuned_model(name: str, flag: str, given, tuned, override: bool):
        """The model to load: the tuned one, or ``given`` when it matches or ``override``."""
        if isinstance(given, (list, tuple)):
            given = given[0] if len(given) == 1 else given
        if given is None or str(given) == str(tuned):
            return tuned
        if not override:
            raise HoldposeError(f"{flag} {given} differs from the {name} the folder was tuned on ({tuned}); drop "
                                f"{flag}, or pass --override-models to load it anyway")
        logger.warning("loading %s %s instead of the tuned %s (--override-models)", name, given, tuned)
        return given

    @classmethod
    def load_character(cls, reference) -> Character:
        """The reference of this backend is a tuned folder (or a :class:`TunedCharacter`)."""
        if isinstance(reference, TunedCharacter):
            return reference
        if not isinstance(reference, (str, os.PathLike)) or not Path(reference).is_dir():
            raise HoldposeError(f"the posecrafter backend's reference is the folder `holdpose tune` wrote, got "
                                f"{reference if isinstance(reference, (str, os.PathLike)) else type(reference).__name__}")
        return TunedCharacter(reference)

    @classmethod
    def from_options(cls, character, model_options: dict, options: dict):
        if not isinstance(character, TunedCharacter):
            raise HoldposeError("the posecrafter backend animates a tuned folder; give the folder `holdpose tune` "
                                "wrote as the reference")
        return cls(character, **model_options), dict(options)

    def build_pipeline(self, components: dict, controlnet):
        return controlnet_pipeline(components, controlnet)

    def _load_tuned_weights(self) -> None:
        """Inflate the UNet and ControlNet and load the tuned tensors into them, strictly."""
        from holdpose.animate.diffusion.posecrafter.model import PoseCrafterModel
        from holdpose.train.checkpoint import load_trainable, read_manifest

        self.video_model = PoseCrafterModel(self.pipe.unet, self.pipe.controlnet)
        load_trainable(self.video_model, self.tuned / TRAINABLE_FILE, strict=True)
        manifest = read_manifest(self.tuned)
        self.model_config.extra = {"tuned": str(self.tuned.resolve()),
                                   "trainable_sha256": manifest["files"][TRAINABLE_FILE],
                                   "tuned_prompt": self.description["prompt"]}

    def __call__(self, reference: np.ndarray, poses: PoseSequence, *, seed: int = 0, callback=None,
                 start_frame: int = 0, **options) -> Iterator[np.ndarray]:
        torch = import_torch()
        from holdpose.animate.diffusion.vae import decode_latents, encode_frames
        from holdpose.train.inversion import ddim_invert, ddim_sample

        pipe = self.pipe
        # 1. Check inputs
        reference, poses, seed, opts = self.check_call(reference, poses, seed, start_frame, options)
        prompt = self.description["prompt"] if opts.prompt is None else opts.prompt
        short_side = opts.resolution or min(self.training_frames.shape[1:3])
        width, height = generation_size(poses.size, short_side, 8)
        device, dtype = self.execution_device, self.dtype
        do_cfg = opts.guidance_scale > 1.0

        # 2. Reference-frame selection (Eq. 5) on the tuned canvas
        training_poses = self.training_poses.scaled_to((width, height))
        if poses.num_people > 1:
            logger.info("posecrafter animates one person: the first slot of the poses (--person to choose)")
        targets = poses.select_people([0]).scaled_to((width, height))
        index = self.select_reference(training_poses, targets, opts)

        # 3. Encode the prompt once
        with torch.no_grad():
            cond, uncond = encode_prompt(pipe, prompt, opts.negative_prompt, device, do_cfg)

        # 4. Invert the reference frame once (guidance 1, its pose on the ControlNet)
        with torch.no_grad():
            z0 = encode_frames(pipe.vae, resize(self.training_frames[index], (width, height))[None], device, dtype)
        reference_control = self.pose_controls(training_poses[index], (width, height))
        invert_eps = self.video_eps(cond, None, reference_control, opts, num_frames=1)
        z_t = ddim_invert(invert_eps, z0, pipe.scheduler, opts.num_inference_steps,
                          refine_iterations=opts.invert_refine)

        # 5. Insertion: the reference pose at the key-frame position, then the targets
        inserted = not opts.no_insert
        # the key frame's pose on the targets' canvas and clock, then the targets
        key_frame = replace(training_poses[index], fps=targets.fps, size=targets.size)
        video_poses = concatenate(key_frame, targets) if inserted else targets
        controls = self.pose_controls(video_poses, (width, height))

        # 6. Initial latents: z_T replicated to every frame, face and hands edited in the target frames
        latents = z_t.expand(video_poses.num_frames, -1, -1, -1).clone()
        if not opts.no_latent_edit:
            latents = self.edit_latents(latents, training_poses[index], targets, first=int(inserted),
                                        parts=opts.edit_parts.split(","), mode=opts.latent_warp)

        # 7. Sampling: deterministic DDIM on the whole clip, key frame 0
        sample_eps = self.video_eps(cond, uncond, controls, opts, num_frames=video_poses.num_frames)
        latents = ddim_sample(sample_eps, latents, pipe.scheduler, opts.num_inference_steps)
        latents = latents[int(inserted):]

        # 8. Decode in chunks (aligned as in an uninterrupted run) and yield the frames
        chunk = opts.decode_chunk_size
        for chunk_start in range(start_frame // chunk * chunk, poses.num_frames, chunk):
            with torch.no_grad():
                images = decode_latents(pipe.vae, latents[chunk_start:chunk_start + chunk])
            yield from self.emit(images, chunk_start, start_frame, poses.size, callback)
        pipe.maybe_free_model_hooks()

    def select_reference(self, training: PoseSequence, targets: PoseSequence, opts: PoseCrafterOptions) -> int:
        """Training frame ``i*``: the one given, or the nearest to the targets by ``opts.ref_metric``."""
        from holdpose.refine.align import select_reference_frame

        if opts.reference_frame is not None:
            if opts.reference_frame >= training.num_frames:
                raise HoldposeError(f"reference_frame (--reference-frame) {opts.reference_frame}: the folder holds "
                                    f"{training.num_frames} training frames")
            return int(opts.reference_frame)
        index, _ = select_reference_frame(training, targets, metric=opts.ref_metric)
        logger.info("reference frame: training frame %d (%s metric)", index, opts.ref_metric)
        return index

    def pose_controls(self, poses: PoseSequence, size: tuple[int, int]):
        """Pose maps of ``poses`` at ``size`` as the ControlNet takes them, ``[F, 3, H, W]``."""
        from holdpose.render.openpose import render_pose_maps

        maps = np.stack(list(render_pose_maps(poses, self.pose_style, size=size)))
        return control_tensor(maps, self.execution_device, self.pipe.controlnet.dtype)

    def video_eps(self, cond, uncond, controls, opts: PoseCrafterOptions, *, num_frames: int):
        """``predict_eps(x, t)`` of the inflated model on a ``num_frames``-frame clip, with
        classifier-free guidance when ``uncond`` is given (the two halves are two videos)."""
        torch = import_torch()
        scale = opts.controlnet_scale[0]

        def predict(x, t):
            if uncond is None:
                return self.video_model(x, t, cond, controls, num_frames=num_frames, conditioning_scale=scale)
            text = torch.cat([uncond.expand(num_frames, -1, -1), cond.expand(num_frames, -1, -1)])
            eps = self.video_model(torch.cat([x, x]), t, text, torch.cat([controls, controls]),
                                   num_frames=num_frames, conditioning_scale=scale)
            eps_uncond, eps_text = eps.chunk(2)
            return eps_uncond + opts.guidance_scale * (eps_text - eps_uncond)

        return predict

    def edit_latents(self, latents, reference_pose: PoseSequence, targets: PoseSequence, *, first: int,
                     parts: list[str], mode: str):
        """Frames ``first..`` of ``latents`` (``[F, C, h, w]``, all ``z_T``) with face and hand
        boxes replaced by ``z_T`` warped from the reference pose onto each target pose."""
        torch = import_torch()
        from holdpose.animate.diffusion.posecrafter.editing import edit_latent

        z_ref = latents[0].detach().float().cpu().numpy()
        ref_points, ref_present = reference_pose.keypoints[0, 0], reference_pose.present[0, 0]
        cell = self.pipe.vae_scale_factor
        out = latents.clone()
        for j in range(targets.num_frames):
            edited, _ = edit_latent(z_ref, ref_points, ref_present, targets.keypoints[j, 0], targets.present[j, 0],
                                    parts=parts, cell=cell, mode=mode)
            out[first + j] = torch.from_numpy(edited).to(out)
        return out
