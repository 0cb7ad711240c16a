"""Training DisPose's SD 1.5 variant: the hybrid ControlNet (with its motion and point encoders)
on videos, the AnimateDiff UNet frozen (paper: 16 frames, 512², lr 1e-5).

Data (``prepare_videos``): each video's frames, centre-cropped to a square of ``size`` pixels,
and their poses (MediaPipe, holdpose's extractor), kept in ``OUT/data/<name>.npz``. The
reference of a clip is its video's first frame. Per training clip (``sample_batch``):

- latents: the VAE's posterior mode of each frame;
- sparse motion field: the 18 OpenPose body points' displacements from the frame before (for the
  window's first frame too, as a generation window gets them: the reference's move only into the
  video's first frame; :func:`holdpose.render.motion.sparse_motion_fields`);
- dense motion field: the optical flow from the reference to the frame (OpenCV's DIS flow, a
  stand-in for the paper's RAFT), sampled at the paper's watershed points and propagated by a
  Gaussian RBF (the paper propagates with CMP; its training code is not released);
- keypoint features: DIFT of the reference (computed once per video) at its body points,
  scattered to the frame's points.

The last ``frames`` frames of the first video are never sampled: they are the held-out clip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError, require
from holdpose.render.motion import openpose_tracks, sample_sparse_flow, sparse_motion_fields, watershed_points
from holdpose.sequence import PoseSequence

torch = require("torch", "diffusion")
logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi")
TRAINABLE = [r"^controlnet\."]
DETECT_SIZE = 512  # pixels: poses are detected on the crop at this size (or its own if smaller)


@dataclass
class Clip:
    """One video's training material: frames ``uint8 [T, S, S, 3]`` and their poses."""

    name: str
    frames: np.ndarray
    poses: PoseSequence


def square_crop(frame: np.ndarray) -> np.ndarray:
    """The centre square of ``frame``."""
    h, w = frame.shape[:2]
    side = min(h, w)
    x0, y0 = (w - side) // 2, (h - side) // 2
    return frame[y0:y0 + side, x0:x0 + side]


def prepare_video(path: Path, size: int, max_frames: int, cache: Path) -> Clip:
    """Frames and poses of one video (read from ``cache`` when there)."""
    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.io.atomic import atomic_path
    from holdpose.io.video import FrameSource

    if cache.is_file():
        data = np.load(cache)
        if data["frames"].shape[1] == size and int(data["max_frames"]) == max_frames:
            return Clip(path.stem, data["frames"], single_person(data["keypoints"], data["scores"], size))
    import cv2

    frames, keypoints, scores = [], [], []
    with MediaPipeDetector() as detector:
        for frame in FrameSource(path, stop=max_frames):
            crop = square_crop(frame)
            detect_side = min(len(crop), DETECT_SIZE)  # poses found at a useful size, whatever the training size
            found = detector.detect_one(cv2.resize(crop, (detect_side, detect_side), interpolation=cv2.INTER_AREA))
            points = np.zeros((133, 2), np.float32) if found is None else found[0].astype(np.float32)
            points *= size / detect_side
            point_scores = np.zeros(133, np.float32) if found is None else found[1].astype(np.float32)
            frames.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
            keypoints.append(points)
            scores.append(point_scores)
    if len(frames) < 2:
        raise HoldposeError(f"{path}: fewer than 2 frames; training needs clips")
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, frames=np.stack(frames), keypoints=np.stack(keypoints), scores=np.stack(scores),
                     max_frames=max_frames)
    return Clip(path.stem, np.stack(frames), single_person(np.stack(keypoints), np.stack(scores), size))


def single_person(keypoints: np.ndarray, scores: np.ndarray, size: int) -> PoseSequence:
    """A one-person sequence on a ``size`` square from ``[T, 133, 2]`` points and ``[T, 133]`` scores."""
    poses = PoseSequence.empty(len(keypoints), 1, size=(size, size))
    poses.keypoints[:, 0], poses.scores[:, 0], poses.track_ids[:, 0] = keypoints, scores, 0
    return poses


def prepare_videos(folder: Path, output: Path, size: int, max_frames: int, min_frames: int) -> list[Clip]:
    """Every video under ``folder`` (or ``folder`` itself when it is a video file)."""
    folder = Path(folder)
    paths = [folder] if folder.is_file() else sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise HoldposeError(f"{folder}: no videos ({', '.join(VIDEO_SUFFIXES)}); give a folder of training videos")
    (output / "data").mkdir(parents=True, exist_ok=True)
    clips = [prepare_video(p, size, max_frames, output / "data" / f"{p.stem}.npz") for p in paths]
    short = [c.name for c in clips if len(c.frames) < min_frames]
    if short:
        raise HoldposeError(f"videos {', '.join(short)} have fewer than {min_frames} frames (--frames plus a held-out "
                            "clip for the first video); use longer videos or fewer --frames")
    return clips


def dense_training_flow(reference: np.ndarray, frame: np.ndarray, *, nms: int) -> np.ndarray:
    """The dense motion field a training clip gets: DIS flow from ``reference`` to ``frame``
    (``uint8 [S, S, 3]``), kept at its watershed points and propagated back over the frame by
    a Gaussian RBF (σ = nms/2). ``float32 [2, S, S]`` pixels."""
    points, values = training_flow_samples(reference, frame, nms=nms)
    return propagate_flow_samples(points, values, len(frame), nms=nms)


def training_flow_samples(reference: np.ndarray, frame: np.ndarray, *, nms: int) -> tuple[np.ndarray, np.ndarray]:
    """DIS flow from ``reference`` to ``frame`` at its watershed points: ``(points int [N, 2]
    (x, y), values float [N, 2] pixels)``, N ≤ 64 (a few hundred bytes: cheap to keep per frame)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(cv2.cvtColor(reference, cv2.COLOR_RGB2GRAY), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), None)
    flow = flow.transpose(2, 0, 1)
    points = watershed_points(flow, nms=nms, max_points=64)
    if not len(points):
        return np.zeros((0, 2), np.int64), np.zeros((0, 2), np.float32)
    sparse, _ = sample_sparse_flow(flow, points)
    return points, sparse[:, points[:, 1], points[:, 0]].T


def propagate_flow_samples(points: np.ndarray, values: np.ndarray, size: int, *, nms: int) -> np.ndarray:
    """The samples of :func:`training_flow_samples` spread over a ``size`` square by a Gaussian
    RBF (σ = nms/2): ``float32 [2, size, size]``, zero when there are none."""
    from holdpose.animate.diffusion.dispose.propagate import gaussian_rbf

    if not len(points):
        return np.zeros((2, size, size), np.float32)
    ys, xs = np.mgrid[0:size, 0:size]
    dense = gaussian_rbf(points.astype(np.float64), values, nms / 2, xs.ravel().astype(np.float64),
                         ys.ravel().astype(np.float64), regularise=1e-3)
    return dense.T.reshape(2, size, size).astype(np.float32)


class DisPoseTrainingModel(torch.nn.Module):
    """What :func:`holdpose.train.loop.train` trains: the hybrid ControlNet (``controlnet.*``,
    trainable) beside the frozen AnimateDiff UNet and, when given, a frozen OpenPose ControlNet."""

    def __init__(self, unet, controlnet, pose_controlnet=None):
        super().__init__()
        self.unet = unet
        self.controlnet = controlnet
        self.pose_controlnet = pose_controlnet


def predict(model: DisPoseTrainingModel, noisy, timesteps, batch):
    """ε̂ for one clip: ``noisy [F, 4, h, w]`` (one timestep shared by the clip)."""
    frames = noisy.shape[0]
    text = batch["text"].expand(frames, -1, -1)
    down, mid = model.controlnet(noisy, timesteps, text, flows=batch["flows"], point_maps=batch["point_maps"],
                                 point_mask=batch["point_mask"])
    if model.pose_controlnet is not None:
        pose_down, pose_mid = model.pose_controlnet(noisy, timesteps, encoder_hidden_states=text,
                                                    controlnet_cond=batch["pose_maps"], return_dict=False)
        down = [a + b for a, b in zip(down, pose_down)]
        mid = mid + pose_mid
    video = noisy.permute(1, 0, 2, 3)[None]  # [1, C, F, h, w]
    out = model.unet(video, timesteps[0], encoder_hidden_states=text, down_block_additional_residuals=down,
                     mid_block_additional_residual=mid, return_dict=False)[0]
    return out[0].permute(1, 0, 2, 3)


class ClipSampler:
    """``sample_batch(step, micro, rng)`` for the training loop, and the held-out batch."""

    def __init__(self, clips: list[Clip], *, frames: int, vae, text, features: list, feature_grid, device,
                 pose_style: str | None = None, nms: int = 41):
        self.clips = clips
        self.frames = frames
        self.vae = vae
        self.text = text
        self.features = features  # per clip: DIFT at the reference's 18 body points [18, C]
        self.grid = feature_grid
        self.device = device
        self.pose_style = pose_style
        self.nms = nms
        self._flow_samples: dict[tuple[int, int], tuple] = {}  # (clip, frame) -> reference flow's samples

    def dense_flow(self, clip_index: int, frame: int) -> np.ndarray:
        """The dense field of a clip frame; the optical flow behind it is computed once per frame."""
        clip = self.clips[clip_index]
        key = (clip_index, frame)
        if key not in self._flow_samples:
            self._flow_samples[key] = training_flow_samples(clip.frames[0], clip.frames[frame], nms=self.nms)
        return propagate_flow_samples(*self._flow_samples[key], clip.frames.shape[1], nms=self.nms)

    def batch(self, clip_index: int, start: int) -> dict:
        from holdpose.animate.diffusion.dispose.model import scatter_tracks
        from holdpose.animate.diffusion.vae import encode_frames

        clip = self.clips[clip_index]
        window = np.arange(start, start + self.frames)
        size = clip.frames.shape[1]
        # Each frame's sparse field is the move from the frame before it, the window's first frame
        # included (frame start - 1; the reference itself when start is 1), as generation gives a
        # window: consecutive moves, the reference's move only into the clip's first frame.
        tracks, present = openpose_tracks(clip.poses[start - 1:start + self.frames])
        sparse = sparse_motion_fields(tracks, present, (size, size))[1:]
        dense = np.stack([self.dense_flow(clip_index, f) for f in window])
        _, reference_present = openpose_tracks(clip.poses[:1])
        maps, mask = scatter_tracks(self.features[clip_index], tracks[1:], present[1:] & reference_present,
                                    (size, size), self.grid)
        with torch.no_grad():
            latents = encode_frames(self.vae, clip.frames[window], self.device, torch.float32)
        batch = {"latents": latents, "text": self.text,
                 "flows": torch.from_numpy(np.concatenate([dense, sparse], axis=1)).to(self.device),
                 "point_maps": maps.to(self.device), "point_mask": mask.to(self.device)}
        if self.pose_style is not None:
            from holdpose.animate.diffusion.conditioning import control_tensor
            from holdpose.render.openpose import render_pose_maps

            maps_np = np.stack(list(render_pose_maps(clip.poses[window], self.pose_style, size=(size, size))))
            batch["pose_maps"] = control_tensor(maps_np, self.device, torch.float32)
        return batch

    def held_out(self) -> dict:
        return self.batch(0, len(self.clips[0].frames) - self.frames)

    def __call__(self, step: int, micro: int, rng: np.random.Generator) -> dict:
        clip_index = int(rng.integers(len(self.clips)))
        frames = len(self.clips[clip_index].frames)
        last = frames - self.frames - (self.frames if clip_index == 0 else 0)  # the first video's tail is held out
        return self.batch(clip_index, int(rng.integers(1, max(last, 1) + 1)))


def train_dispose(videos, output, *, steps: int = 20000, learning_rate: float = 1e-5, seed: int = 0,
                  accumulate: int = 1, checkpoint_every: int = 500, eval_every: int = 100,
                  mixed_precision: str = "no", progress: bool = True, callback=None, **setup):
    """Train the hybrid ControlNet on ``videos`` into ``output`` (resumes from its checkpoints);
    ``setup``: the keyword arguments of :func:`prepare_training`. Returns
    :class:`holdpose.train.loop.TrainResult`; ``output/trainable.safetensors`` loads with
    ``holdpose animate --backend dispose --dispose-weights OUTPUT``."""
    from holdpose.train.loop import TrainConfig, train

    model, sampler = prepare_training(videos, output, seed=seed, **setup)
    config = TrainConfig(steps=steps, learning_rate=learning_rate, seed=seed, shared_timestep=True,
                         accumulate=accumulate, checkpoint_every=checkpoint_every, eval_every=eval_every,
                         mixed_precision=mixed_precision)
    return train(model, predict, sampler, output, config, trainable=TRAINABLE, eval_batch=sampler.held_out(),
                 progress=progress, callback=callback)


def prepare_training(videos, output, *, model: str, motion_adapter: str, controlnet: str | None = None,
                     frames: int = 16, size: int = 512, max_frames: int = 64, dift_ensemble: int = 8,
                     prompt: str = "a person", seed: int = 0, device=None, allow_pickle: bool = False):
    """The training model (:class:`DisPoseTrainingModel`) and its :class:`ClipSampler`: the
    videos' frames and poses (cached in ``output/data``), the models loaded, DIFT features of
    each video's reference computed, the hybrid ControlNet built from the base UNet."""
    from holdpose.animate.diffusion.dispose.dift import DIFT_PROMPT, reference_point_features
    from holdpose.animate.diffusion.dispose.model import HybridControlNet
    from holdpose.animate.diffusion.loading import (
        import_diffusers, load_base_components, load_model, resolve_device, resolve_dtype)

    output = Path(output)
    device = resolve_device(device)
    dtype = resolve_dtype("float32", device)
    clips = prepare_videos(Path(videos), output, size, max_frames, min_frames=frames + 1)
    if len(clips[0].frames) < 2 * frames + 1:
        raise HoldposeError(f"{clips[0].name}: {len(clips[0].frames)} frames; the first video needs 2 x --frames + 1 "
                            f"({2 * frames + 1}) frames (training clips and a held-out clip)")
    diffusers = import_diffusers()
    components = load_base_components(model, dtype=dtype, allow_pickle=allow_pickle)
    adapter = load_model("MotionAdapter", motion_adapter, "motion adapter (--motion-adapter)", dtype=dtype,
                         allow_pickle=allow_pickle)
    unet2d, vae = components["unet"].to(device).eval(), components["vae"].to(device).eval()
    text = encode_text(components, prompt, device)
    dift_text = encode_text(components, DIFT_PROMPT, device)
    features, grid = [], None
    for clip in clips:  # DIFT of each video's reference (its first frame), once
        tracks, present = openpose_tracks(clip.poses[:1])
        sampled, grid = reference_point_features(unet2d, vae, components["scheduler"].config, clip.frames[0], dift_text,
                                                 tracks[0], present[0], device=device, ensemble=dift_ensemble,
                                                 seed=seed)
        features.append(sampled.cpu())
    torch.manual_seed(seed)
    hybrid = HybridControlNet.from_base(unet2d, feature_dim=features[0].shape[1],
                                        vae_levels=len(vae.config.block_out_channels))
    unet = diffusers.UNetMotionModel.from_unet2d(unet2d, adapter).to(device)
    pose_net = None
    if controlnet is not None:
        pose_net = load_model("ControlNetModel", controlnet, "ControlNet (--controlnet)", dtype=dtype,
                              allow_pickle=allow_pickle).to(device)
    training_model = DisPoseTrainingModel(unet, hybrid, pose_net).to(device)
    sampler = ClipSampler(clips, frames=frames, vae=vae, text=text, features=features, feature_grid=grid,
                          device=device, pose_style="openpose_full" if pose_net is not None else None)
    return training_model, sampler


def encode_text(components: dict, prompt: str, device):
    """CLIP text embeddings ``[1, 77, D]`` of ``prompt`` with the base model's tokenizer and encoder."""
    tokenizer, encoder = components["tokenizer"], components["text_encoder"].to(device)
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    with torch.no_grad():
        return encoder(ids)[0]
