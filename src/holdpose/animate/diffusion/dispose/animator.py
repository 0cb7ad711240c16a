"""``--backend dispose``: AnimateDiff + ControlNet guided by DisPose's motion fields and keypoint
features (Li et al., ICLR 2025), the SD 1.5 variant.

The AnimateDiff backend's whole loop (windows, anchor, fusion, chunked decoding, resume) runs
unchanged; DisPose adds one thing to every window's noise prediction: the residuals of its
hybrid ControlNet, summed with the OpenPose ControlNet's (as ``MultiControlNetModel`` sums
nets). Per clip, once (:class:`DisPoseGuidance`):

1. tracks of the 18 OpenPose body points, the reference's pose first (:mod:`holdpose.render.motion`);
2. per frame, the sparse motion field (consecutive displacements, Gaussian 199 / σ 20) and the
   dense motion field over the reference (a :class:`~.propagate.MotionPropagator`: the warp
   rig's skinning by default, CMP with its weights);
3. DIFT features of the reference (the base SD 1.5 UNet, ``up_blocks[1]``, t = 261, 8 noises)
   sampled at its keypoints, scattered to every frame's keypoints.

Without trained weights (``dispose_weights``) the hybrid ControlNet is the base UNet's encoder
with zero output convolutions: the frames are exactly plain AnimateDiff's (tested).
Frames are anchored on the reference as MimicMotion's windows are (16 frames = the reference +
15, stride 10, triangular weights): the reference is frame 0 of the tracks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holdpose.animate.diffusion.animatediff import (
    FUSIONS, AnimateDiffAnimator, AnimateDiffModelOptions, AnimateDiffOptions)
from holdpose.animate.diffusion.conditioning import encode_prompt, resize
from holdpose.animate.diffusion.dispose.propagate import MOTION_FIELDS
from holdpose.animate.diffusion.loading import import_torch
from holdpose.animate.options import check_float, check_int, option
from holdpose.argtypes import positive_int
from holdpose.errors import HoldposeError
from holdpose.render.motion import openpose_tracks, resize_dense_flow, sparse_motion_fields
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)


@dataclass
class DisPoseModelOptions(AnimateDiffModelOptions):
    """The models of :class:`DisPoseAnimator`: AnimateDiff's, and

    Attributes:
        dispose_weights: trained hybrid ControlNet: a ``holdpose train dispose`` run folder or
            its ``trainable.safetensors``; None starts from the UNet with zero outputs.
        cmp_weights: CMP's released checkpoint converted to ``.safetensors`` (or an exported
            program; ``--motion-field cmp``, docs/dispose.md).
    """

    dispose_weights: str | os.PathLike | None = option(None, "trained DisPose weights: a `holdpose train dispose` "
                                                       "run folder or .safetensors (default: untrained, = AnimateDiff)")
    cmp_weights: str | os.PathLike | None = option(None, "CMP's weights converted to .safetensors (holdpose "
                                                   "convert-weights; for --motion-field cmp)")


@dataclass
class DisPoseOptions(AnimateDiffOptions):
    """Options of :class:`DisPoseAnimator`: AnimateDiff's (windows of 16 with stride 10 and
    MimicMotion's triangular fusion by default), and

    Attributes:
        motion_field: "rig" (holdpose's, default without ``cmp_weights``), "cmp" (the paper's) or
            "rbf" (a baseline).
        dispose_scale: scale of the hybrid ControlNet's residuals (1 in the paper).
        dift_ensemble: noises averaged for the keypoint features (8 in the paper).
        propagator: a ready :class:`~.propagate.MotionPropagator` (Python API only).
    """

    stride: int = option(10, "frames between window starts", type=positive_int)
    fusion: str = option("triangular", "window fusion (triangular: MimicMotion's)", choices=FUSIONS)
    motion_field: str | None = option(None, "dense motion field: rig (holdpose's own, default), cmp (the paper's; "
                                      "needs --cmp-weights) or rbf", choices=MOTION_FIELDS)
    dispose_scale: float = option(1.0, "scale of DisPose's hybrid ControlNet residuals", type=float)
    dift_ensemble: int = option(8, "noises averaged for DisPose's keypoint features", type=positive_int)
    propagator: object = option(None, cli=False)

    def check(self, num_controlnets: int, has_ip_adapter: bool) -> "DisPoseOptions":
        super().check(num_controlnets, has_ip_adapter)
        if self.motion_field is not None and self.motion_field not in MOTION_FIELDS:
            raise HoldposeError(f"motion_field (--motion-field) {self.motion_field!r} is unknown; choose one of "
                                f"{', '.join(MOTION_FIELDS)}")
        self.dispose_scale = check_float(self.dispose_scale, "dispose_scale (--dispose-scale)", 0.0)
        self.dift_ensemble = check_int(self.dift_ensemble, "dift_ensemble (--dift-ensemble)", 1)
        return self

    def describe(self, has_ip_adapter: bool = True) -> dict:
        propagator = self.propagator
        self.propagator = None
        try:
            out = super().describe(has_ip_adapter)
        finally:
            self.propagator = propagator
        out["propagator"] = None if propagator is None else getattr(propagator, "name", type(propagator).__name__)
        return out


def load_hybrid_weights(net, ref: str | os.PathLike) -> None:
    """Load trained weights into the hybrid ControlNet ``net``, strictly: a run folder (its
    ``trainable.safetensors``) or a ``.safetensors`` file whose names are the net's, optionally
    under ``controlnet.`` (as ``holdpose train dispose`` saves them)."""
    from safetensors.torch import load_file

    path = Path(ref)
    if path.is_dir():
        path = path / "trainable.safetensors"
    if not path.is_file():
        raise HoldposeError(f"DisPose weights (--dispose-weights) {ref}: no such file; give a `holdpose train "
                            "dispose` run folder or its trainable.safetensors")
    from holdpose.train.convert import check_fits

    tensors = {k.removeprefix("controlnet."): v for k, v in load_file(str(path)).items()}
    check_fits(tensors, net.state_dict(), f"DisPose weights {path}", "were they trained on the same base model?")
    net.load_state_dict(tensors, strict=True)


class DisPoseGuidance:
    """Per-clip DisPose conditions, handed to every window (never kept as global state).

    ``residuals(control_input, t, text, frames, do_cfg)`` gives the hybrid ControlNet's
    ``(down, mid)`` for the window's ``frames`` (clip indices; ``num_frames`` is the
    reference anchor, whose motion fields are zero). Motion fields are made when a frame is
    first asked for and kept (float16, 2 MB per frame at 512x512) for the clip's later steps:
    the one part of a DisPose run whose memory grows with the clip [to do: recompute or spill
    to disk beyond a budget]."""

    def __init__(self, net, tracks: np.ndarray, present: np.ndarray, propagator, poses: PoseSequence,
                 size: tuple[int, int], point_features, grid: tuple[int, int], scale: float, device, dtype):
        self.net = net
        self.poses = poses
        self.size = size
        self.num_frames = poses.num_frames
        canvas = np.array(poses.size, np.float64)
        self.tracks = tracks * (np.array(size) / canvas)  # generation pixels, reference first
        self.present = present
        self.propagator = propagator
        self.scale = scale
        self.device, self.dtype = device, dtype
        self.point_features = point_features  # [18, C]
        self.grid = grid
        self._flows: dict[int, object] = {}

    def track_index(self, frame: int) -> int:
        """Index in the tracks of a clip frame (the reference anchor is 0)."""
        return 0 if frame == self.num_frames else frame + 1

    def flows(self, frame: int):
        """``[4, H, W]``: the dense then the sparse motion field of a clip frame, generation pixels."""
        torch = import_torch()
        if frame not in self._flows:
            width, height = self.size
            if frame == self.num_frames:
                field = np.zeros((4, height, width), np.float32)
            else:
                index = self.track_index(frame)
                dense = self.propagator(self.poses.keypoints[frame, 0], self.poses.scores[frame, 0])
                dense = resize_dense_flow(dense, self.size)
                sparse = sparse_motion_fields(self.tracks[index - 1:index + 1], self.present[index - 1:index + 1],
                                              self.size)[1]
                field = np.concatenate([dense, sparse])
            self._flows[frame] = torch.from_numpy(field).to(torch.float16)
        return self._flows[frame]

    def point_maps(self, frames: list[int]):
        from holdpose.animate.diffusion.dispose.model import scatter_tracks

        indices = [self.track_index(f) for f in frames]
        present = self.present[indices] & self.present[0][None]
        return scatter_tracks(self.point_features.to(self.device), self.tracks[indices], present, self.size, self.grid)

    def residuals(self, control_input, t, text, frames: list[int], do_cfg: bool):
        torch = import_torch()
        flows = torch.stack([self.flows(f) for f in frames]).to(self.device, self.dtype)
        maps, mask = self.point_maps(frames)
        if do_cfg:  # the same flows and point features in both halves
            flows, maps, mask = (torch.cat([x, x]) for x in (flows, maps, mask))
        return self.net(control_input, t, text, flows=flows, point_maps=maps.to(self.dtype),
                        point_mask=mask.to(self.dtype), conditioning_scale=self.scale)


class DisPoseAnimator(AnimateDiffAnimator):
    """AnimateDiff + ControlNet(s) + DisPose's hybrid ControlNet over a whole clip.

    ``animator(reference, poses, seed=0, motion_field="rig")`` yields ``uint8 [H, W, 3]``
    frames; options :class:`DisPoseOptions`, construction :class:`DisPoseModelOptions`.
    The reference's pose is needed (frame 0 of the tracks and the windows' anchor): given as
    ``reference_pose``, or detected in the reference.
    """

    name = "dispose"
    options_class = DisPoseOptions
    model_options_class = DisPoseModelOptions

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        opts = self.model_options
        self.model_config.extra.update(dispose_weights=None if opts.dispose_weights is None
                                       else str(opts.dispose_weights),
                                       cmp_weights=None if opts.cmp_weights is None else str(opts.cmp_weights))

    @classmethod
    def from_options(cls, character, model_options: dict, options: dict):
        """The anchor's pose, and the rig the default motion field needs, are the character's."""
        options = dict(options)
        animator = cls(**model_options)
        animator.character_options(character, options)
        return animator, options

    def character_options(self, character, options) -> None:
        """Fill ``options``' propagator and reference pose from ``character`` where not given; the
        propagator first, so that the pose is the rig's own when a rig is built (one detection)."""
        if options.get("propagator") is None:
            options["propagator"] = self.make_propagator(character, options.get("motion_field"))
        if options.get("reference_pose") is None:
            options["reference_pose"] = character.pose_sequence()

    def build_pipeline(self, components: dict, controlnet):
        from holdpose.animate.diffusion.dispose.model import HybridControlNet

        unet = components["unet"]  # the 2-D SD 1.5 UNet, before the pipeline merges it with the motion adapter
        self.dift_unet = unet
        widths = unet.config.block_out_channels
        self.hybrid = HybridControlNet.from_base(unet, feature_dim=list(reversed(widths))[1],
                                                 vae_levels=len(components["vae"].config.block_out_channels)).eval()
        if self.model_options.dispose_weights is not None:
            load_hybrid_weights(self.hybrid, self.model_options.dispose_weights)
        self.hybrid.requires_grad_(False)
        pipe = super().build_pipeline(components, controlnet)
        for model in (self.hybrid, self.dift_unet):
            first = next(model.parameters())
            if first.device != self.device or first.dtype != self.dtype:  # (diffusers warns on a no-op cast)
                model.to(device=self.device, dtype=self.dtype)
        return pipe

    def make_propagator(self, character, motion_field: str | None):
        from holdpose.animate.diffusion.dispose.propagate import make_propagator

        kind = motion_field or ("cmp" if self.model_options.cmp_weights is not None else "rig")
        return make_propagator(kind, character, cmp_weights=self.model_options.cmp_weights, device=self.device)

    def reference_features(self, reference: np.ndarray, points: np.ndarray, present: np.ndarray,
                           size: tuple[int, int], ensemble: int, seed: int):
        """DIFT features ``[18, C]`` of the reference at its 18 body points (generation pixels)."""
        from holdpose.animate.diffusion.dispose.dift import DIFT_PROMPT, reference_point_features

        pipe = self.pipe
        text, _ = encode_prompt(pipe, DIFT_PROMPT, "", self.execution_device, False)
        return reference_point_features(self.dift_unet, pipe.vae, pipe.scheduler.config, resize(reference, size), text,
                                        points, present, device=self.execution_device, ensemble=ensemble, seed=seed)

    def window_guidance(self, reference: np.ndarray, poses: PoseSequence, opts: DisPoseOptions,
                        size: tuple[int, int]):
        from holdpose.animate.character import Character

        if opts.reference_pose is None or opts.propagator is None:  # (from_options gives both)
            given = {"reference_pose": opts.reference_pose, "propagator": opts.propagator,
                     "motion_field": opts.motion_field}
            self.character_options(Character(reference), given)
            opts.reference_pose, opts.propagator = given["reference_pose"], given["propagator"]
        propagator = opts.propagator
        tracks, present = openpose_tracks(poses, opts.reference_pose)
        reference_points = tracks[0] * (np.array(size) / np.array(poses.size))
        features, grid = self.reference_features(reference, reference_points, present[0], size, opts.dift_ensemble,
                                                 seed=0)
        return DisPoseGuidance(self.hybrid, tracks, present, propagator, poses, size, features.to(self.dtype), grid,
                               opts.dispose_scale, self.execution_device, self.dtype)

    def __call__(self, reference: np.ndarray, poses: PoseSequence, *, seed: int = 0, callback=None,
                 start_frame: int = 0, **options):
        """As :meth:`AnimateDiffAnimator.__call__`, always anchored on the reference (DisPose's
        tracks start at the reference pose)."""
        if options.get("reference_pose") is None:
            options["anchor_reference"] = True
        return super().__call__(reference, poses, seed=seed, callback=callback, start_frame=start_frame, **options)

