"""Learned metrics (LPIPS, FID, KID, FVD, CLIP-I, CLIP-T) with weights the user has locally.

None of these is a holdpose dependency and holdpose never downloads weights: each loader
checks that its package and its weights file are there and otherwise raises a
:class:`holdpose.errors.HoldposeError` naming what to install and where to put it.

A **feature extractor** is any callable ``extractor(frames) -> features`` taking
``uint8 [N, H, W, 3]`` RGB frames and returning ``float [N, D]`` (for FID and KID,
:func:`holdpose.evaluate.fidelity.frechet_distance` and ``kernel_inception_distance``),
with a ``name``. A lambda over random projections is a valid one, which is how the tests
check the plumbing; for numbers comparable with papers use the networks they used:

- FID / KID: Inception-v3 pool features (2048-d), as pytorch-fid computes them
  (:class:`InceptionFeatures`, package ``pytorch-fid`` and its weights file
  ``pt_inception-2015-12-05-6726825d.pth``), or any ``.onnx`` / TorchScript model
  (:class:`OnnxImageFeatures`, :class:`TorchScriptImageFeatures`).
- FVD: I3D features of 16-frame clips (Unterthiner et al., 2018), here StyleGAN-V's
  TorchScript export ``i3d_torchscript.pt`` (:class:`I3DClipFeatures`).
- LPIPS (Zhang et al., 2018): package ``lpips`` with torchvision's AlexNet weights
  ``alexnet-owt-7be5be79.pth`` in torch's hub cache (:class:`LpipsMetric`).
- CLIP-I / CLIP-T: a CLIP model saved with ``save_pretrained`` in a local folder, loaded by
  ``transformers`` with ``local_files_only=True`` (:class:`ClipEmbedder`). CLIP-I is the
  cosine similarity of image embeddings (generated frame vs reference image, or vs the
  ground-truth frame), CLIP-T of image and prompt embeddings (raw cosine; torchmetrics'
  ``CLIPScore`` is 100 times it, clipped at 0).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from holdpose.errors import HoldposeError, MissingDependencyError, require

logger = logging.getLogger(__name__)

INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"
FVD_CLIP_FRAMES = 16


class FeatureExtractor(Protocol):
    """``extractor(frames uint8 [N, H, W, 3]) -> float [N, D]``."""

    name: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


def _torch():
    return require("torch", "diffusion")


def weights_path(path: str | os.PathLike, what: str) -> Path:
    """``path`` when it exists; else one line saying what is missing (holdpose never downloads)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise HoldposeError(f"{what} not found at {path}; holdpose does not download weights, put the file there "
                            "or pass its path")
    return path


def torch_hub_checkpoint(filename: str) -> Path:
    """Where torch keeps a downloaded checkpoint: ``torch.hub.get_dir()/checkpoints``, worked
    out as torch does (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``)
    without importing torch, so a missing file is reported at once."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints" / filename


def _require_module(module: str, install: str) -> None:
    """Fail fast, without importing it, when ``module`` is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(f"{module} is not installed; run: {install}")


def _resize_batch(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA if f.shape[1] > size[0] else cv2.INTER_CUBIC)
                     for f in frames])


class OnnxImageFeatures:
    """Features from an ONNX image model: frames resized to ``input_size`` (width, height),
    scaled to [0, 1], normalised by ``mean`` / ``std``, fed as float32 NCHW; the first
    output, flattened per image, is the feature vector."""

    def __init__(self, path: str | os.PathLike, *, input_size: tuple[int, int] = (299, 299),
                 mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), name: str | None = None):
        self.path = weights_path(path, "ONNX feature model")
        ort = require("onnxruntime", "onnx")
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = input_size
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self.name = name or self.path.stem

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = _resize_batch(np.asarray(frames), self.input_size).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        out = self.session.run(None, {self.input_name: (x - self.mean) / self.std})[0]
        return np.asarray(out, np.float64).reshape(len(frames), -1)


def load_torchscript(path: Path, flag: str, allow_pickle: bool):
    """A TorchScript model in eval mode. TorchScript is code: it runs only with ``allow_pickle``
    (CLI ``--allow-pickle``), as every pickled checkpoint in holdpose."""
    if not allow_pickle:
        raise HoldposeError(f"{path}: a TorchScript model ({flag}) runs code from the file; pass --allow-pickle "
                            "(allow_pickle=True) if you trust it, or give an .onnx model")
    torch = _torch()
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HoldposeError(f"{path}: not a TorchScript model ({flag}): {reason[:200]}") from err


class TorchScriptImageFeatures:
    """Features from a TorchScript image model taking float NCHW in [0, 1] at ``input_size``."""

    def __init__(self, path: str | os.PathLike, *, input_size: tuple[int, int] = (299, 299), name: str | None = None,
                 allow_pickle: bool = False):
        self.path = weights_path(path, "TorchScript feature model")
        self.model = load_torchscript(self.path, "--fid-features", allow_pickle)
        self.input_size = input_size
        self.name = name or self.path.stem

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        torch = _torch()
        x = _resize_batch(np.asarray(frames), self.input_size).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        with torch.no_grad():
            out = self.model(torch.from_numpy(x))
        return out.reshape(len(frames), -1).double().numpy()


class InceptionFeatures:
    """pytorch-fid's Inception-v3 (the FID network), 2048-d pool features, from a local weights file.

    Args:
        weights: path of ``pt_inception-2015-12-05-6726825d.pth``; default torch's hub
            cache, where pytorch-fid itself would have put it.
        dims: 2048 (FID), or 64, 192, 768 for pytorch-fid's earlier blocks, spatially averaged
            (Stable-Pose reports FID on the 64-d ones).
    """

    def __init__(self, weights: str | os.PathLike | None = None, *, dims: int = 2048):
        self.name = "inception-v3 (pytorch-fid)" if dims == 2048 else f"inception-v3 {dims}-d (pytorch-fid)"
        for module in ("torch", "torchvision", "pytorch_fid"):
            _require_module(module, "pip install pytorch-fid (FID's Inception needs torch, torchvision, pytorch-fid)")
        path = Path(weights) if weights else torch_hub_checkpoint(INCEPTION_WEIGHTS)
        weights_path(path, f"the FID Inception weights {INCEPTION_WEIGHTS}")
        torch = _torch()
        import pytorch_fid.inception as inception

        InceptionV3 = inception.InceptionV3

        original = inception.load_state_dict_from_url
        # weights_only: a plain state dict, never unpickled objects (the default changed across torch versions)
        inception.load_state_dict_from_url = lambda *a, **k: torch.load(str(path), map_location="cpu",
                                                                         weights_only=True)
        try:  # the network is built as pytorch-fid builds it; only the download is replaced by the file
            self.model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()
        finally:
            inception.load_state_dict_from_url = original

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        torch = _torch()
        x = torch.from_numpy(np.asarray(frames).astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
        with torch.no_grad():
            out = self.model(x)[0]  # resizes to 299 and scales to [-1, 1] itself
            if out.shape[-2:] != (1, 1):  # the blocks before the last are averaged, as pytorch-fid does
                out = torch.nn.functional.adaptive_avg_pool2d(out, (1, 1))
        return out.reshape(len(frames), -1).double().numpy()


class I3DClipFeatures:
    """I3D features of video clips for FVD, from StyleGAN-V's TorchScript ``i3d_torchscript.pt``
    (called with ``rescale=True, resize=True, return_features=True``: clips as float
    ``[N, 3, T, H, W]`` in 0..255, resized to 224 by the model); 400-d per clip."""

    name = "i3d (StyleGAN-V TorchScript)"

    def __init__(self, path: str | os.PathLike, *, allow_pickle: bool = False):
        self.path = weights_path(path, "the FVD I3D model (i3d_torchscript.pt)")
        self.model = load_torchscript(self.path, "--fvd-model", allow_pickle)

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        """``clips`` uint8 ``[N, T, H, W, 3]`` -> ``[N, D]``."""
        torch = _torch()
        x = torch.from_numpy(np.asarray(clips).astype(np.float32)).permute(0, 4, 1, 2, 3).contiguous()
        with torch.no_grad():
            out = self.model(x, rescale=True, resize=True, return_features=True)
        return out.reshape(len(clips), -1).double().numpy()


class LpipsMetric:
    """LPIPS (Zhang et al., 2018) distance per frame pair, AlexNet variant, from local weights.

    The ``lpips`` package ships its linear layers; the AlexNet backbone comes from
    torchvision, which would download ``alexnet-owt-7be5be79.pth`` on first use. holdpose
    refuses to let it: the file must already be in torch's hub cache.
    """

    name = "lpips (alex)"

    def __init__(self):
        for module in ("torch", "torchvision", "lpips"):
            _require_module(module, "pip install lpips (LPIPS needs torch, torchvision and lpips)")
        weights = torch_hub_checkpoint(ALEXNET_WEIGHTS)
        weights_path(weights, f"LPIPS's AlexNet weights {ALEXNET_WEIGHTS} (torchvision's, in torch's hub cache)")
        import lpips

        self.model = lpips.LPIPS(net="alex", verbose=False).eval()

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances ``[N]`` of frame batches ``uint8 [N, H, W, 3]``."""
        torch = _torch()

        def tensor(x):
            return torch.from_numpy(np.asarray(x).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)

        with torch.no_grad():
            return self.model(tensor(a), tensor(b)).reshape(-1).double().numpy()


def load_pretrained_folder(classes: tuple, path: Path, what: str, needs: str = "") -> tuple:
    """``cls.from_pretrained(path, local_files_only=True)`` for each of ``classes`` (a model and
    its processor), with one clear error naming ``what`` when the folder does not load."""
    try:
        return tuple(cls.from_pretrained(str(path), local_files_only=True) for cls in classes)
    except (OSError, ValueError) as err:
        raise HoldposeError(f"{path}: not a loadable {what} ({err}); {needs or 'save it with save_pretrained'}") from err


class ClipEmbedder:
    """CLIP image and text embeddings (unit length) from a local model folder (``save_pretrained``)."""

    def __init__(self, model_dir: str | os.PathLike):
        self.path = weights_path(model_dir, "CLIP model folder")
        _torch()
        transformers = require("transformers", "diffusion")
        self.model, self.processor = load_pretrained_folder(
            (transformers.CLIPModel, transformers.CLIPProcessor), self.path, "CLIP model folder",
            "it needs config.json, the weights and the processor files as save_pretrained writes them")
        self.model.eval()
        self.name = f"clip ({self.path.name})"

    def images(self, frames: np.ndarray) -> np.ndarray:
        torch = _torch()
        inputs = self.processor(images=list(np.asarray(frames)), return_tensors="pt")
        with torch.no_grad():
            out = self.model.get_image_features(**inputs)
        out = out.double().numpy()
        return out / np.linalg.norm(out, axis=-1, keepdims=True)

    def text(self, prompt: str) -> np.ndarray:
        torch = _torch()
        inputs = self.processor(text=[prompt], return_tensors="pt", padding=True, truncation=True)
        with torch.no_grad():
            out = self.model.get_text_features(**inputs)
        out = out.double().numpy()[0]
        return out / np.linalg.norm(out)


def load_feature_extractor(spec: str | os.PathLike | Callable, *, allow_pickle: bool = False) -> FeatureExtractor:
    """A feature extractor from a spec: a callable (returned as is), ``"inception"``
    (pytorch-fid's network, weights in torch's hub cache), or a path to an ``.onnx`` or
    TorchScript (``.pt``, ``.pth``, ``.jit``; only with ``allow_pickle``) model."""
    if callable(spec):
        if not hasattr(spec, "name"):
            try:
                spec.name = getattr(spec, "__name__", "custom")
            except AttributeError:
                pass
        return spec
    if str(spec) == "inception":
        return InceptionFeatures()
    path = Path(spec)
    if path.suffix.lower() == ".onnx":
        return OnnxImageFeatures(path)
    if path.suffix.lower() in (".pt", ".pth", ".jit"):
        return TorchScriptImageFeatures(path, allow_pickle=allow_pickle)
    raise HoldposeError(f"{spec}: unknown feature extractor; give 'inception', an .onnx file or a TorchScript .pt file")


__all__ = ["ALEXNET_WEIGHTS", "FVD_CLIP_FRAMES", "INCEPTION_WEIGHTS", "ClipEmbedder", "FeatureExtractor",
           "I3DClipFeatures", "InceptionFeatures", "LpipsMetric", "OnnxImageFeatures", "TorchScriptImageFeatures",
           "load_feature_extractor", "torch_hub_checkpoint"]
