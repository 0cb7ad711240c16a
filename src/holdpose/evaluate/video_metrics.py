"""Video metrics the seed papers report that the rest of ``evaluate`` lacks (SEED_MODULES S7).

Each metric is a pure function of frames, features or keypoints plus, where a network is
involved, a callable that produces the features. The networks are loaded from weights on disk
(:mod:`holdpose.evaluate.features` style: nothing is downloaded) and :func:`video_metrics`
runs every metric whose network can be loaded, logging one line for each one it skips.

- ``clip_temporal`` (PoseCrafter's "CLIP-T"): mean cosine similarity of CLIP image embeddings of
  consecutive frames. (holdpose's ``clip_t`` is the text-image score; this one is between frames.)
- ``mse_p_norm`` (PoseCrafter's MSE-P ≈ 1e-3): mean squared keypoint error with x divided by the
  width and y by the height **[check: the paper does not say how it normalises]**.
- ``fid64``: FID on the 64-d features of pytorch-fid's Inception-v3 (its first max-pool block,
  spatially averaged), as Stable-Pose reports it (``fid_model_feature: 64``).
- ``subject_consistency`` / ``background_consistency`` (VBench): for each frame after the
  first, the mean of its cosine similarity (clipped at 0) to the first and to the previous
  frame, averaged; with DINO ViT-B/16 features for the subject, CLIP ViT-B/32 for the background.
- ``motion_smoothness`` (VBench): drop the odd frames, re-create them with a frame
  interpolator (VBench uses AMT-S) and score ``(255 − mean |real − interpolated|) / 255``.
- ``dynamic_degree`` (VBench): optical flow (RAFT) between consecutive frames; a pair moves if
  the mean of its top 5 % flow magnitudes exceeds ``6 · min(H, W) / 256`` px; the video is
  dynamic if at least ``round(4 · N / 16)`` pairs move. A set's score is the dynamic fraction.
- ``fid_fvd``: the Fréchet distance of per-frame features of generated and real videos
  (FID-VID as DisCo reports it **[check: feature network]**).
- ``cd_fvd`` (Ge et al. 2024, "On the Content Bias in Fréchet Video Distance"): FVD with
  self-supervised VideoMAE features of 16-frame clips instead of I3D's.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

import numpy as np

from holdpose.errors import HoldposeError, require
from holdpose.evaluate.fidelity import frechet_distance

logger = logging.getLogger(__name__)

VBENCH_TOP_FRACTION = 0.05  # dynamic degree: the top 5 % of flow magnitudes
CD_FVD_CLIP_FRAMES = 16


def _unit(features) -> np.ndarray:
    features = np.asarray(features, np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)


# --- from features -----------------------------------------------------------------------------------


def clip_temporal(embeddings) -> float:
    """Mean cosine similarity of consecutive frames' image embeddings ``[N, D]`` (N >= 2)."""
    e = _unit(embeddings)
    if len(e) < 2:
        raise ValueError(f"clip_temporal needs at least 2 frames, got {len(e)}")
    return float(np.mean(np.sum(e[1:] * e[:-1], axis=-1)))


def vbench_consistency(features) -> float:
    """VBench's subject/background consistency of one video from per-frame features ``[N, D]``:
    the mean over frames i >= 1 of ``(max(0, cos(f_i, f_0)) + max(0, cos(f_i, f_{i−1}))) / 2``."""
    f = _unit(features)
    if len(f) < 2:
        raise ValueError(f"consistency needs at least 2 frames, got {len(f)}")
    to_first = np.maximum(0.0, f[1:] @ f[0])
    to_previous = np.maximum(0.0, np.sum(f[1:] * f[:-1], axis=-1))
    return float(np.mean((to_first + to_previous) / 2))


def mse_p_norm(detected, target, present, size: tuple[int, int]) -> float:
    """Mean of ``((Δx / W)² + (Δy / H)²)`` over keypoints present in both (``detected``,
    ``target``: ``[..., K, 2]`` pixels; ``present``: ``[..., K]`` bool; ``size`` = (W, H)).
    NaN when no point is present. Equals holdpose's ``mse_p`` (px²) / W² for square frames."""
    width, height = size
    scale = np.array([width, height], np.float64)
    d = (np.asarray(detected, np.float64) - np.asarray(target, np.float64)) / scale
    keep = np.asarray(present, bool) & np.isfinite(d).all(-1)
    return float(np.mean(np.sum(d[keep] ** 2, axis=-1))) if keep.any() else float("nan")


def fid_fvd(features_generated, features_real) -> float:
    """Fréchet distance of per-frame features pooled over all frames of the generated and real videos."""
    return frechet_distance(features_generated, features_real)


# --- with a network given as a callable ------------------------------------------------------------


def motion_smoothness(frames, interpolate: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
    """VBench's motion smoothness of ``frames`` uint8 ``[N, H, W, 3]`` (N >= 3): the odd frames are
    re-created by ``interpolate(previous even, next even) -> uint8 [H, W, 3]`` and compared with the
    real ones; 1 means the interpolator predicts every dropped frame exactly."""
    frames = np.asarray(frames)
    if len(frames) < 3:
        raise ValueError(f"motion smoothness needs at least 3 frames, got {len(frames)}")
    errors = [np.abs(frames[i].astype(np.float64) - np.asarray(interpolate(frames[i - 1], frames[i + 1]), np.float64))
              .mean() for i in range(1, len(frames) - 1, 2)]
    return float((255.0 - np.mean(errors)) / 255.0)


def dynamic_degree(frames, flow: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """VBench's dynamic degree of one video: ``flow(a, b) -> [H, W, 2]`` pixels between consecutive
    frames; see the module docstring for the thresholds. Returns whether the video is dynamic."""
    frames = np.asarray(frames)
    if len(frames) < 2:
        raise ValueError(f"dynamic degree needs at least 2 frames, got {len(frames)}")
    height, width = frames.shape[1:3]
    threshold = 6.0 * min(height, width) / 256.0
    needed = round(4 * len(frames) / 16.0)
    moving = 0
    for a, b in zip(frames[:-1], frames[1:]):
        magnitude = np.linalg.norm(np.asarray(flow(a, b), np.float64), axis=-1).ravel()
        top = np.sort(magnitude)[-max(1, int(len(magnitude) * VBENCH_TOP_FRACTION)):]
        moving += bool(top.mean() > threshold)
    return moving >= needed


def cd_fvd(clip_features_generated, clip_features_real) -> float:
    """CD-FVD from VideoMAE features of 16-frame clips ``[N, D]`` (see :class:`VideoMAEClipFeatures`)."""
    return frechet_distance(clip_features_generated, clip_features_real)


def clips(frames, length: int = CD_FVD_CLIP_FRAMES) -> np.ndarray:
    """Non-overlapping ``length``-frame clips ``[C, length, H, W, 3]`` of ``frames`` (the rest dropped)."""
    frames = np.asarray(frames)
    count = len(frames) // length
    return frames[:count * length].reshape(count, length, *frames.shape[1:])


# --- networks from disk -------------------------------------------------------------------------------


class HFImageFeatures:
    """Per-frame features of a ``transformers`` vision model saved in a local folder: DINO ViT-B/16
    (``ViTModel``: the CLS token, VBench's subject features) or CLIP (``CLIPModel``: image
    embeddings, VBench's background features and ``clip_temporal``)."""

    def __init__(self, model_dir: str | os.PathLike):
        from holdpose.evaluate.features import load_pretrained_folder, weights_path

        self.path = weights_path(model_dir, "vision model folder")
        transformers = require("transformers", "diffusion")
        require("torch", "diffusion")
        what, needs = "vision model folder", "save it with save_pretrained (model and image processor)"
        config, = load_pretrained_folder((transformers.AutoConfig,), self.path, what, needs)
        self.is_clip = config.model_type == "clip"
        model_class = transformers.CLIPModel if self.is_clip else transformers.AutoModel
        self.model, self.processor = load_pretrained_folder((model_class, transformers.AutoImageProcessor), self.path,
                                                            what, needs)
        self.model.eval()
        self.name = f"{config.model_type} ({self.path.name})"

    def __call__(self, frames) -> np.ndarray:
        torch = require("torch", "diffusion")
        inputs = self.processor(images=list(np.asarray(frames)), return_tensors="pt")
        with torch.no_grad():
            if self.is_clip:
                out = self.model.get_image_features(pixel_values=inputs["pixel_values"])
                out = getattr(out, "pooler_output", out)
            else:
                out = self.model(pixel_values=inputs["pixel_values"]).last_hidden_state[:, 0]
        return out.double().numpy()


class VideoMAEClipFeatures:
    """Clip features for CD-FVD from a ``transformers`` VideoMAE model in a local folder: the mean
    of the last hidden states over tokens ``[N, D]`` for clips uint8 ``[N, T, H, W, 3]``.
    The paper uses VideoMAE-v2 ViT-g fine-tuned on SSv2 **[check: a transformers export of it]**."""

    def __init__(self, model_dir: str | os.PathLike):
        from holdpose.evaluate.features import load_pretrained_folder, weights_path

        self.path = weights_path(model_dir, "VideoMAE model folder")
        transformers = require("transformers", "diffusion")
        self.model, self.processor = load_pretrained_folder(
            (transformers.VideoMAEModel, transformers.VideoMAEImageProcessor), self.path, "VideoMAE folder")
        self.model.eval()
        self.name = f"videomae ({self.path.name})"

    def __call__(self, clip_batch) -> np.ndarray:
        torch = require("torch", "diffusion")
        inputs = self.processor([list(clip) for clip in np.asarray(clip_batch)], return_tensors="pt")
        with torch.no_grad():
            hidden = self.model(**inputs).last_hidden_state
        return hidden.mean(1).double().numpy()


# --- all of them ---------------------------------------------------------------------------------------


def _try(name: str, compute: Callable, skipped: dict):
    try:
        return compute()
    except HoldposeError as err:  # missing package or weights: skip this metric, say why in one line
        logger.warning("skipped %s: %s", name, err)
        skipped[name] = str(err)
        return None


def video_metrics(frames, *, reference_frames=None, clip_model: str | None = None, dino_model: str | None = None,
                  videomae_model: str | None = None, inception64: str | bool | None = None,
                  interpolate: Callable | None = None, flow: Callable | None = None) -> dict:
    """Every S7 metric of one generated video ``frames`` uint8 ``[N, H, W, 3]`` whose network is
    available; ``reference_frames`` (the real video) enables the distances. ``None`` values
    were skipped; ``result["skipped"]`` says why (also logged, one line each)."""
    from holdpose.evaluate import features

    frames = np.asarray(frames)
    skipped: dict[str, str] = {}
    out: dict = {}

    def need(value, what):
        if value is None:
            raise HoldposeError(f"no {what} given")
        return value

    clip = _try("clip_temporal", lambda: HFImageFeatures(need(clip_model, "CLIP model folder")), skipped)
    dino = _try("subject_consistency", lambda: HFImageFeatures(need(dino_model, "DINO model folder")), skipped)
    if clip is not None:
        clip_features = clip(frames)
        out["clip_temporal"] = clip_temporal(clip_features)
        out["background_consistency"] = vbench_consistency(clip_features)
    else:
        skipped["background_consistency"] = skipped["clip_temporal"]
    out["subject_consistency"] = vbench_consistency(dino(frames)) if dino is not None else None
    out["motion_smoothness"] = _try("motion_smoothness", lambda: motion_smoothness(
        frames, need(interpolate, "frame interpolator (AMT)")), skipped)
    out["dynamic_degree"] = _try("dynamic_degree", lambda: dynamic_degree(frames, need(flow, "optical flow (RAFT)")),
                                 skipped)
    if reference_frames is not None:
        reference_frames = np.asarray(reference_frames)
        inception_weights = None if inception64 in (None, True) else inception64
        inception = _try("fid64", lambda: features.InceptionFeatures(inception_weights, dims=64), skipped)
        if inception is not None:
            out["fid64"] = frechet_distance(inception(frames), inception(reference_frames))
        videomae = _try("cd_fvd", lambda: VideoMAEClipFeatures(need(videomae_model, "VideoMAE model folder")),
                        skipped)
        if videomae is not None:
            out["cd_fvd"] = cd_fvd(videomae(clips(frames)), videomae(clips(reference_frames)))
    for name in ("clip_temporal", "background_consistency", "subject_consistency", "fid64", "cd_fvd"):
        out.setdefault(name, None)
    out["skipped"] = skipped
    return out


def dynamic_fraction(videos_dynamic: Sequence[bool]) -> float:
    """VBench's dynamic degree of a set of videos: the fraction judged dynamic."""
    return float(np.mean(np.asarray(videos_dynamic, float))) if len(videos_dynamic) else float("nan")
