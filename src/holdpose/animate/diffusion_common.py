"""Mechanism shared by the diffusion backends (:mod:`.controlnet`, :mod:`.animatediff`).

Written once and imported by both, so a fix lands in every backend:

- model loading: base model by Hugging Face id, diffusers folder or single
  ``.safetensors`` file; ControlNets, motion adapter and IP-Adapter the same way;
  pickled checkpoints refused unless asked for; one :class:`HoldposeError` that says
  what is missing and how to get it;
- device and dtype (CUDA float16, CPU float32 unless told otherwise), memory savers;
- schedulers by short name (:data:`SCHEDULERS`);
- prompt encoding (once per call) and IP-Adapter image embeddings;
- noise that depends only on the seed (:func:`shared_noise`, :func:`frame_noise`);
- control images: pose maps rendered in the backend's style, or the user's images,
  at the generation size (:func:`control_streams`, :class:`ControlFrameStore`);
- VAE encoding and chunked decoding to ``uint8`` frames;
- the options every diffusion backend takes (:class:`DiffusionOptions`) and the
  base class that loads the models (:class:`DiffusionAnimator`).

torch, diffusers and transformers are imported inside the functions that need them;
importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from holdpose.animate.base import Animator, check_poses, check_reference
from holdpose.animate.resume import fingerprint
from holdpose.errors import HoldposeError, require
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
DEFAULT_IP_ADAPTER = "h94/IP-Adapter"
DEFAULT_IP_ADAPTER_WEIGHT = "models/ip-adapter_sd15.safetensors"

SAFE_SUFFIXES = {".safetensors"}
PICKLE_SUFFIXES = {".ckpt", ".bin", ".pt", ".pth", ".pkl"}
POSE = "pose"  # a ``control_images`` entry meaning "the pose maps of the pose sequence"

# name -> (diffusers class, config overrides). All deterministic: no scheduler here draws
# fresh noise per step, so a frame depends only on its initial noise (see shared_noise).
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "heun": ("HeunDiscreteScheduler", {}),
}

DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "half": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16"}
CPU_OFFLOAD = (None, "model", "sequential")


def import_torch():
    return require("torch", "diffusion")


def _drop_torchvision_notice(record: logging.LogRecord) -> bool:
    # transformers notes on import that its image processors fall back to PIL without
    # torchvision; holdpose never installs torchvision, so the notice is noise for our users.
    return "requires torchvision (not installed)" not in str(record.msg)


@contextlib.contextmanager
def quiet_fp32_notice():
    """diffusers' ``ModelMixin.to(dtype)`` warns about "modules that should be kept in float32"
    even when there are none (UNetMotionModel, IP-Adapter loading): keep it out of the log."""
    modeling_logger = logging.getLogger("diffusers.models.modeling_utils")
    level = modeling_logger.level
    modeling_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        modeling_logger.setLevel(level)


def import_diffusers():
    """diffusers (and torch, transformers), or a :class:`MissingDependencyError` with the pip line."""
    require("torch", "diffusion")
    noisy = logging.getLogger("transformers.utils.import_utils")
    if _drop_torchvision_notice not in noisy.filters:
        noisy.addFilter(_drop_torchvision_notice)
    require("transformers", "diffusion")
    return require("diffusers", "diffusion")


# --- device and dtype ---------------------------------------------------------------


def resolve_device(device: str | None = None):
    """``torch.device`` for ``device`` ("cpu", "cuda", "cuda:1", "mps"); None or "auto" takes
    CUDA when torch sees a GPU, else Apple's MPS, else the CPU (and says which in the log)."""
    torch = import_torch()
    if device in (None, "auto"):
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
        logger.info("diffusion device: %s (pass device= / --device to choose)", device)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise HoldposeError(f"device {device!r} is not one torch knows; use cpu, cuda, cuda:N or mps") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HoldposeError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU (a CPU-only build, "
                            "or no driver); install a CUDA build of torch or pass --device cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HoldposeError(f"device {device!r}: MPS is not available on this machine; pass --device cpu")
    return dev


def resolve_dtype(dtype: str | None, device) -> Any:
    """``torch.dtype`` for "float32"/"fp32", "float16"/"fp16", "bfloat16"/"bf16"; None or
    "auto" gives float16 on CUDA and MPS, float32 on the CPU."""
    torch = import_torch()
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    name = DTYPES.get(str(dtype).lower())
    if name is None:
        raise HoldposeError(f"dtype {dtype!r} is not supported; use float32, float16 or bfloat16")
    if name == "float16" and device.type == "cpu":
        logger.warning("float16 on the CPU is slow and some operations lack it; float32 or bfloat16 is safer")
    return getattr(torch, name)


# --- model loading ------------------------------------------------------------------


def dtype_kwargs(dtype) -> dict:
    """``{"dtype": dtype}`` for diffusers that take it (newer ones warn on ``torch_dtype``),
    else ``{"torch_dtype": dtype}``."""
    from diffusers.pipelines import pipeline_utils

    return {"dtype": dtype} if hasattr(pipeline_utils, "_resolve_dtype") else {"torch_dtype": dtype}


def locate_model(ref: str | os.PathLike, what: str) -> str:
    """"file", "folder" or "hub" for a model reference. Something that looks like a
    path but is not there is an error here, so a typo never turns into a download."""
    if ref is None or str(ref).strip() == "":
        raise HoldposeError(f"{what}: no model given")
    path = Path(ref).expanduser()
    if path.is_file():
        return "file"
    if path.is_dir():
        return "folder"
    text = str(ref)
    looks_like_path = (isinstance(ref, os.PathLike) or os.path.isabs(text) or text.startswith(("./", "../", "~", "."))
                       or "\\" in text or text.count("/") > 1
                       or path.suffix.lower() in SAFE_SUFFIXES | PICKLE_SUFFIXES)
    if looks_like_path:
        raise HoldposeError(f"{what}: {text}: no such file or folder (give a Hugging Face id such as "
                            f"{DEFAULT_CONTROLNET!r}, a diffusers folder, or a .safetensors file)")
    return "hub"


def check_single_file(path: str | os.PathLike, what: str, allow_pickle: bool) -> None:
    """Refuse pickled checkpoints (.ckpt, .bin, .pt, .pth): unpickling runs code from the file."""
    suffix = Path(path).suffix.lower()
    if suffix in SAFE_SUFFIXES:
        return
    if suffix in PICKLE_SUFFIXES:
        if allow_pickle:
            logger.warning("%s: loading a pickled checkpoint %s because allow_pickle=True", what, path)
            return
        raise HoldposeError(
            f"{what}: {path} is a pickled checkpoint ({suffix}); loading it can run arbitrary code. "
            "Use a .safetensors version of it, or pass allow_pickle=True (--allow-pickle) if you trust the file")
    raise HoldposeError(f"{what}: {path}: not a model file (expected .safetensors, or a diffusers folder)")


# How diffusers / huggingface_hub say that a model is neither cached nor downloadable.
_NOT_CACHED_SIGNS = ("not fully cached locally", "Cannot find an appropriate cached snapshot",
                     "couldn't connect to", "Couldn't connect to", "outgoing traffic has been disabled",
                     "LocalEntryNotFoundError", "Max retries exceeded", "Name or service not known")


def load_error(what: str, ref: str, kind: str, err: BaseException, allow_pickle: bool) -> HoldposeError:
    """The one error a user sees when a model cannot be loaded: what, why, and how to get it."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    not_cached = kind == "hub" and any(sign in reason for sign in _NOT_CACHED_SIGNS)
    if not_cached:  # the hub libraries' own sentence runs to several lines of advice that does not apply
        reason = "it is not in the local Hugging Face cache and the Hub cannot be reached"
    parts = [f"cannot load the {what} {ref!r}: {reason.rstrip('.')}."]
    if kind == "hub":
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        if offline:
            parts.append("HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache.")
        parts.append(f"Download it where there is internet: `hf download {ref}` (older huggingface_hub: "
                     f"`huggingface-cli download {ref}`), then copy the cache (~/.cache/huggingface) here or pass "
                     "the downloaded folder as a local path.")
    elif kind == "folder":
        parts.append("A model folder must be in diffusers layout (config.json or model_index.json beside "
                     ".safetensors weights, as save_pretrained writes it).")
    else:
        parts.append("Single files need the base model's configs: pass model_config= (--model-config) a diffusers "
                     "folder or id of the same architecture when offline.")
    if "safetensors" in reason.lower() and not allow_pickle:
        parts.append("It may hold only pickled weights (.bin/.ckpt); holdpose loads .safetensors only unless "
                     "allow_pickle=True (--allow-pickle), for sources you trust.")
    return HoldposeError(" ".join(parts))


_BUG_TYPES = (TypeError, AttributeError, NameError, AssertionError, ImportError, NotImplementedError)


def _load(what: str, ref, kind: str, allow_pickle: bool, loader):
    try:
        return loader()
    except HoldposeError:
        raise
    except _BUG_TYPES:
        raise
    except Exception as err:  # OSError, hub errors, ValueError/RuntimeError for a wrong model: all the user's to fix
        raise load_error(what, str(ref), kind, err, allow_pickle) from err


def load_base_components(model: str | os.PathLike, *, dtype, allow_pickle: bool = False,
                         model_config: str | None = None) -> dict:
    """Stable Diffusion 1.x parts (vae, text_encoder, tokenizer, unet, scheduler) from an id,
    a diffusers folder, or one ``.safetensors`` file (``from_single_file``; ``model_config``
    names a diffusers folder or id with the matching configs, needed offline)."""
    diffusers = import_diffusers()
    what = "base model (--model)"
    kind = locate_model(model, what)
    common = dict(**dtype_kwargs(dtype), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if kind == "file":
        check_single_file(model, what, allow_pickle)
        extra = {"config": str(model_config)} if model_config else {}
        pipe = _load(what, model, kind, allow_pickle,
                     lambda: diffusers.StableDiffusionPipeline.from_single_file(str(model), **extra, **common))
    else:
        pipe = _load(what, model, kind, allow_pickle, lambda: diffusers.StableDiffusionPipeline.from_pretrained(
            str(model), use_safetensors=None if allow_pickle else True, **common))
    return {name: pipe.components[name] for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def load_model(cls_name: str, ref: str | os.PathLike, what: str, *, dtype, allow_pickle: bool = False):
    """A diffusers model (``ControlNetModel``, ``MotionAdapter``) from an id, folder or single file."""
    diffusers = import_diffusers()
    cls = getattr(diffusers, cls_name)
    kind = locate_model(ref, what)
    if kind == "file":
        check_single_file(ref, what, allow_pickle)
        return _load(what, ref, kind, allow_pickle, lambda: cls.from_single_file(str(ref), **dtype_kwargs(dtype)))
    return _load(what, ref, kind, allow_pickle, lambda: cls.from_pretrained(
        str(ref), **dtype_kwargs(dtype), use_safetensors=None if allow_pickle else True))


def combine_controlnets(controlnets: list):
    """One ControlNet as is; several as diffusers' ``MultiControlNetModel`` (residuals summed,
    each scaled by its own conditioning scale)."""
    if len(controlnets) == 1:
        return controlnets[0]
    diffusers = import_diffusers()
    multi = getattr(diffusers, "MultiControlNetModel", None)
    if multi is None:  # diffusers < 0.31 keeps it in the pipeline package
        from diffusers.pipelines.controlnet import MultiControlNetModel as multi
    return multi(controlnets)


def load_ip_adapter(pipe, ref: str, *, weight: str = DEFAULT_IP_ADAPTER_WEIGHT, image_encoder: str | None = None,
                    dtype=None, allow_pickle: bool = False) -> None:
    """Load an IP-Adapter into ``pipe`` (``pipe.load_ip_adapter``).

    ``ref``: a Hugging Face id or folder holding ``weight`` (a path inside it, default
    "models/ip-adapter_sd15.safetensors", image encoder beside it in "image_encoder"), or
    a weight file itself (image encoder in an "image_encoder" folder next to it).
    ``image_encoder``: another folder or id for the CLIP image encoder.
    """
    what = "IP-Adapter (--ip-adapter)"
    kind = locate_model(ref, what)
    if kind == "file":
        check_single_file(ref, what, allow_pickle)
        repo, subfolder, weight_name = str(Path(ref).parent), "", Path(ref).name
    else:
        weight_path = Path(weight)
        repo, subfolder, weight_name = str(ref), weight_path.parent.as_posix().strip("."), weight_path.name
        check_single_file(weight_name, what, allow_pickle)
    if image_encoder is not None:
        transformers = require("transformers", "diffusion")
        enc_kind = locate_model(image_encoder, "IP-Adapter image encoder")
        encoder = _load("IP-Adapter image encoder", image_encoder, enc_kind, allow_pickle,
                        lambda: transformers.CLIPVisionModelWithProjection.from_pretrained(
                            str(image_encoder), **_transformers_dtype(transformers, dtype),
                            use_safetensors=None if allow_pickle else True))
        pipe.register_modules(image_encoder=encoder)
    with quiet_fp32_notice():
        _load(what, ref, kind, allow_pickle,
              lambda: pipe.load_ip_adapter(repo, subfolder=subfolder, weight_name=weight_name))
    if pipe.image_encoder is not None and dtype is not None:
        pipe.image_encoder.to(dtype=dtype)


def _transformers_dtype(transformers, dtype) -> dict:
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}  # renamed in 4.56


def make_scheduler(name: str, config, overrides: dict | None = None):
    """A scheduler of :data:`SCHEDULERS` built from the model's own scheduler config
    (its betas and training steps), with the per-name and caller ``overrides``."""
    diffusers = import_diffusers()
    if name not in SCHEDULERS:
        raise HoldposeError(f"scheduler {name!r} is not supported; choose one of {', '.join(SCHEDULERS)}")
    cls_name, kwargs = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(config, **{**kwargs, **(overrides or {})})


def set_timesteps(scheduler, num_inference_steps: int, strength: float, device):
    """Reset ``scheduler`` and return the timesteps to run: all of them, or for
    image-to-image (``strength < 1``) the last ``strength`` part of them (as diffusers'
    img2img pipelines do). Resetting clears multistep schedulers' history, so every batch
    or clip starts from the same state."""
    scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    if strength >= 1.0:
        return timesteps
    init_steps = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init_steps, 0)
    timesteps = timesteps[t_start * scheduler.order:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * scheduler.order)
    if len(timesteps) == 0:
        raise HoldposeError(f"strength {strength} with {num_inference_steps} steps leaves no denoising step; "
                            "raise --strength or --steps")
    return timesteps


# --- prompts ------------------------------------------------------------------------


def encode_prompt(pipe, prompt: str, negative_prompt: str, device, do_cfg: bool):
    """``(cond, uncond)`` text embeddings ``[1, 77, D]`` (``uncond`` None without guidance),
    computed once per call and reused for every frame."""
    cond, uncond = pipe.encode_prompt(prompt, device, 1, do_cfg, negative_prompt or None)
    return cond, uncond


def batch_embeds(cond, uncond, batch: int):
    """Text embeddings for a batch: ``[uncond x batch, cond x batch]`` with guidance, as the
    diffusers pipelines order them, else ``[cond x batch]``."""
    torch = import_torch()
    cond = cond.expand(batch, *cond.shape[1:])
    if uncond is None:
        return cond
    return torch.cat([uncond.expand(batch, *uncond.shape[1:]), cond])


def ip_adapter_embeds(pipe, reference: np.ndarray, device, do_cfg: bool) -> list:
    """IP-Adapter image embeddings of the reference, one tensor per adapter, ``[2, ...]``
    (unconditional first) with guidance, computed once per call."""
    from PIL import Image

    return pipe.prepare_ip_adapter_image_embeds(Image.fromarray(reference), None, device, 1, do_cfg)


def batch_image_embeds(embeds: list, batch: int, do_cfg: bool) -> list:
    """IP-Adapter embeddings repeated for a batch, in the order of :func:`batch_embeds`."""
    torch = import_torch()
    out = []
    for embed in embeds:
        if do_cfg:
            uncond, cond = embed.chunk(2)
            out.append(torch.cat([uncond.repeat_interleave(batch, 0), cond.repeat_interleave(batch, 0)]))
        else:
            out.append(embed.repeat_interleave(batch, 0))
    return out


# --- noise --------------------------------------------------------------------------


def shared_noise(seed: int, shape: tuple[int, ...]):
    """One float32 CPU noise tensor drawn from ``torch.Generator().manual_seed(seed)``.

    The frame-by-frame backend gives this same tensor to every frame: a generator that
    advanced from frame to frame would give each frame other noise (more flicker), and
    frame k's noise would depend on how many frames came before (no resuming). Drawn on
    the CPU, so the noise is the same on every device; it equals what a diffusers
    pipeline draws for one image with ``generator=torch.Generator("cpu").manual_seed(seed)``.
    """
    torch = import_torch()
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)


def subseed(seed: int, *key: int) -> int:
    """A 63-bit seed derived from ``seed`` and ``key`` (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(seed), *[int(k) for k in key]]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def frame_noise(seed: int, frames: Iterable[int], shape: tuple[int, ...], *, key: int = 1):
    """Noise ``[len(frames), *shape]`` where frame i's noise depends only on (seed, i):
    the same whatever the clip length, window or batch (used for whole-clip models)."""
    torch = import_torch()
    return torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(subseed(seed, key, i)),
                                    dtype=torch.float32) for i in frames])


# --- control images -----------------------------------------------------------------


def generation_size(canvas: tuple[int, int], resolution: int | None, multiple: int = 8) -> tuple[int, int]:
    """``(width, height)`` to generate at: the canvas (or the canvas scaled so its short side
    is ``resolution``), rounded down to a multiple of ``multiple`` (at least one multiple)."""
    w, h = canvas
    if resolution:
        scale = resolution / min(w, h)
        w, h = w * scale, h * scale
    return max(multiple, int(w) // multiple * multiple), max(multiple, int(h) // multiple * multiple)


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` resized to ``size`` (width, height); area filter down, cubic up."""
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    import cv2

    shrink = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def frames_of(source, what: str, num_frames: int, size: tuple[int, int], start: int = 0) -> Iterator[np.ndarray]:
    """RGB frames ``start..num_frames-1`` of ``source`` at ``size``: a path (video, image
    folder, one image repeated), an ``[T, H, W, 3]`` array, or a sequence of ``[H, W, 3]`` arrays."""
    if isinstance(source, (str, os.PathLike)):
        from holdpose.io.video import FrameSource

        frames = FrameSource(source)
        if frames.kind == "image":
            image = resize(next(iter(frames)), size)
            return (image for _ in range(start, num_frames))
        if frames.num_frames < num_frames:
            raise HoldposeError(f"{what}: {source} has {frames.num_frames} frames, the poses have {num_frames}")
        return (resize(f, size) for f in FrameSource(source, start=start, stop=num_frames))
    if isinstance(source, np.ndarray) and source.ndim == 3:
        image = resize(_check_image(source, what), size)
        return (image for _ in range(start, num_frames))
    if hasattr(source, "__len__"):
        if len(source) < num_frames:
            raise HoldposeError(f"{what}: {len(source)} frames given, the poses have {num_frames}")
        return (resize(_check_image(source[i], what), size) for i in range(start, num_frames))
    raise HoldposeError(f"{what}: expected a path, an array [T, H, W, 3] or a list of frames, "
                        f"got {type(source).__name__}")


def _check_image(image, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise HoldposeError(f"{what}: frames must be RGB uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    return image


def control_streams(poses: PoseSequence, sources: list, pose_style: str, size: tuple[int, int],
                    start: int = 0) -> list[Iterator[np.ndarray]]:
    """One iterator of control images per ControlNet, frames ``start..``, at ``size``:
    pose maps in ``pose_style`` for :data:`POSE` entries, the given images otherwise."""
    from holdpose.render.openpose import render_pose_maps

    streams = []
    for n, source in enumerate(sources):
        if isinstance(source, str) and source == POSE:
            streams.append(islice(render_pose_maps(poses, pose_style, size=size), start, None))
        else:
            streams.append(frames_of(source, f"control_images[{n}]", poses.num_frames, size, start))
    return streams


class ControlFrameStore:
    """The control images of a whole clip, kept PNG-compressed in memory and read back by
    frame index: a whole-clip model needs any window's maps at every step, and a pose map
    compresses about 50x, so memory stays small however long the clip."""

    def __init__(self, streams: list[Iterator[np.ndarray]], num_frames: int):
        import cv2

        self._cv2 = cv2
        self._frames: list[list[bytes]] = []
        for stream in streams:
            encoded = [cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
                       for frame in islice(stream, num_frames)]
            if len(encoded) < num_frames:
                raise HoldposeError(f"control images: {len(encoded)} frames, need {num_frames}")
            self._frames.append(encoded)

    def extra(self, streams: list[Iterator[np.ndarray]]) -> None:
        """Append one more frame per ControlNet (e.g. the reference pose as an anchor); it gets index -1."""
        for frames, stream in zip(self._frames, streams):
            frames.append(self._cv2.imencode(".png", next(iter(stream)), [self._cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
                          .tobytes())

    def get(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Per ControlNet, ``uint8 [len(indices), H, W, 3]``."""
        cv2 = self._cv2
        return [np.stack([cv2.imdecode(np.frombuffer(frames[i], np.uint8), cv2.IMREAD_UNCHANGED) for i in indices])
                for frames in self._frames]


def control_tensor(images: np.ndarray, device, dtype):
    """``uint8 [N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [0, 1], as ControlNets take them
    (diffusers' control image processor does not normalise to [-1, 1])."""
    torch = import_torch()
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return tensor.to(device=device, dtype=dtype)


# --- VAE ------------------------------------------------------------------------------


def encode_frames(vae, frames: np.ndarray, device, dtype):
    """``uint8 [N, H, W, 3]`` -> scaled latents ``[N, C, H/f, W/f]``: the mode of the VAE's
    posterior (no sampling, so a frame's latent does not depend on a generator's state)."""
    torch = import_torch()
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0
    latents = vae.encode(x.to(device=device, dtype=vae.dtype)).latent_dist.mode()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return ((latents - shift) * vae.config.scaling_factor).to(dtype)


def decode_latents(vae, latents) -> np.ndarray:
    """Scaled latents ``[N, C, h, w]`` -> ``uint8 [N, H, W, 3]``, rounded as diffusers'
    image processor does (``(x / 2 + 0.5).clamp(0, 1) * 255``, rounded)."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    images = vae.decode((latents / vae.config.scaling_factor + shift).to(vae.dtype), return_dict=False)[0]
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return (images * 255).round().astype(np.uint8)


# --- options ----------------------------------------------------------------------------


@dataclass
class DiffusionOptions:
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
        resolution: short side of the generated frames (None: the canvas); frames are
            resized back to the canvas.
        ip_adapter_scale: weight of the IP-Adapter's image prompt (when one is loaded).
        decode_chunk_size: frames decoded by the VAE at once.
    """

    prompt: str = ""
    negative_prompt: str = ""
    num_inference_steps: int = 20
    guidance_scale: float = 7.5
    controlnet_scale: float | list = 1.0
    control_images: list | None = None
    scheduler: str | None = None
    resolution: int | None = None
    ip_adapter_scale: float = 0.6
    decode_chunk_size: int = 8

    SOURCE_FIELDS = ("control_images", "init")  # strings here are paths: recorded by content hash

    @classmethod
    def from_kwargs(cls, options: dict, backend: str, ignored: Iterable[str] = ()) -> "DiffusionOptions":
        """Options from keyword arguments. Names meant for another backend (``ignored``) are
        dropped with a log line; unknown names are an error that lists the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in options.items() if k in names}
        other = [k for k in options if k not in names]
        unknown = [k for k in other if k not in set(ignored)]
        if unknown:
            raise HoldposeError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                                f"for the {backend} backend; it takes: {', '.join(sorted(names))}")
        for name in other:
            if options[name] is not None:
                logger.info("the %s backend ignores %s", backend, name)
        return cls(**known)

    def check(self, num_controlnets: int, has_ip_adapter: bool) -> "DiffusionOptions":
        """Validate and normalise in place (``controlnet_scale`` and ``control_images`` become
        one entry per ControlNet). Raises :class:`HoldposeError` naming the option."""
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise HoldposeError("prompt and negative_prompt must be strings")
        _check_int(self.num_inference_steps, "num_inference_steps (--steps)", 1)
        _check_int(self.decode_chunk_size, "decode_chunk_size", 1)
        if self.resolution is not None:
            _check_int(self.resolution, "resolution", 8)
        if not np.isfinite(float(self.guidance_scale)) or float(self.guidance_scale) < 0:
            raise HoldposeError(f"guidance_scale (--guidance) must be >= 0, got {self.guidance_scale}")
        self.guidance_scale = float(self.guidance_scale)
        scales = self.controlnet_scale
        scales = [scales] * num_controlnets if np.isscalar(scales) else list(scales)
        if len(scales) == 1 and num_controlnets > 1:
            scales = scales * num_controlnets
        if len(scales) != num_controlnets:
            raise HoldposeError(f"controlnet_scale (--controlnet-scale): {len(scales)} values for "
                                f"{num_controlnets} ControlNets; give one, or one per --controlnet")
        self.controlnet_scale = [float(s) for s in scales]
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


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise HoldposeError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise HoldposeError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


# --- the shared base class -------------------------------------------------------------


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

    Args:
        model: base Stable Diffusion 1.x model: Hugging Face id, diffusers folder, or a
            single ``.safetensors`` file.
        controlnet: one ControlNet or a list (id, folder or ``.safetensors`` file); the
            first is normally the OpenPose one.
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
        model_config: diffusers folder or id with the configs for a single-file ``model``.
        pose_style: pose-map style of the ControlNet (default: the class's ``pose_style``).
    """

    name = "diffusion"
    pose_style = "openpose_full"
    resumable = True  # __call__ takes start_frame (see holdpose.animate.resume)
    options_class = DiffusionOptions
    default_scheduler = "unipc"
    scheduler_overrides: dict = {}

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL,
                 controlnet: str | os.PathLike | Sequence[str | os.PathLike] = DEFAULT_CONTROLNET, *,
                 ip_adapter: str | os.PathLike | None = None, ip_adapter_weight: str = DEFAULT_IP_ADAPTER_WEIGHT,
                 ip_adapter_image_encoder: str | None = None, device: str | None = None, dtype: str | None = None,
                 vae_slicing: bool = False, vae_tiling: bool = False, cpu_offload: str | None = None,
                 allow_pickle: bool = False, model_config: str | None = None, pose_style: str | None = None,
                 **model_options):
        from holdpose.render.openpose import STYLES

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if cpu_offload not in CPU_OFFLOAD:
            raise HoldposeError(f"cpu_offload must be one of {CPU_OFFLOAD}, got {cpu_offload!r}")
        if cpu_offload and self.device.type == "cpu":
            raise HoldposeError("cpu_offload moves models to a GPU while they run; it needs --device cuda")
        if pose_style is not None:
            if pose_style not in STYLES:
                raise HoldposeError(f"pose_style {pose_style!r} is unknown; choose one of {', '.join(STYLES)}")
            self.pose_style = pose_style
        controlnets = [controlnet] if isinstance(controlnet, (str, os.PathLike)) else list(controlnet)
        if not controlnets:
            raise HoldposeError("at least one ControlNet is needed (--controlnet)")

        components = load_base_components(model, dtype=self.dtype, allow_pickle=allow_pickle,
                                          model_config=model_config)
        nets = [load_model("ControlNetModel", ref, f"ControlNet (--controlnet) #{n + 1}", dtype=self.dtype,
                           allow_pickle=allow_pickle) for n, ref in enumerate(controlnets)]
        self.pipe = self.build_pipeline(components, combine_controlnets(nets), allow_pickle=allow_pickle,
                                        **model_options)
        if ip_adapter is not None:
            load_ip_adapter(self.pipe, str(ip_adapter), weight=ip_adapter_weight,
                            image_encoder=ip_adapter_image_encoder, dtype=self.dtype, allow_pickle=allow_pickle)
        if vae_slicing:
            self.pipe.vae.enable_slicing()
        if vae_tiling:
            self.pipe.vae.enable_tiling()
        if cpu_offload == "model":
            self.pipe.enable_model_cpu_offload(device=self.device)
        elif cpu_offload == "sequential":
            self.pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.num_controlnets = len(nets)
        self.has_ip_adapter = ip_adapter is not None
        self.model_config = ModelConfig(
            model=str(model), controlnet=[str(c) for c in controlnets],
            ip_adapter=None if ip_adapter is None else str(ip_adapter),
            ip_adapter_weight=ip_adapter_weight if ip_adapter is not None else None, device=str(self.device),
            dtype=str(self.dtype).replace("torch.", ""), vae_tiling=bool(vae_tiling), pose_style=self.pose_style)

    # Subclasses: wrap the loaded parts into their diffusers pipeline.
    def build_pipeline(self, components: dict, controlnet, **model_options):
        raise NotImplementedError

    @property
    def execution_device(self):
        """Where inputs go: the GPU even when models are offloaded to the CPU between uses."""
        return self.pipe._execution_device

    def config(self) -> dict:
        """What this animator loaded (models, device, dtype), for manifests."""
        return dataclasses.asdict(self.model_config)

    def other_backend_options(self) -> set[str]:
        """Option names of the other diffusion backends, ignored rather than refused."""
        from holdpose.animate.animatediff import AnimateDiffOptions
        from holdpose.animate.controlnet import ControlNetOptions

        names = {f.name for cls in (ControlNetOptions, AnimateDiffOptions) for f in dataclasses.fields(cls)}
        return names - {f.name for f in dataclasses.fields(self.options_class)}

    def resolve_options(self, options: dict):
        """Options with defaults filled in, checked and normalised."""
        opts = self.options_class.from_kwargs(options, self.name, self.other_backend_options())
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
                     guidance_scale: float, do_cfg: bool):
        """One noise prediction: the ControlNet's residuals on ``control_input``, the UNet on
        ``unet_input`` with them (both the same tensor for image models; a video UNet takes
        ``[B, C, F, h, w]`` where the ControlNet sees the frames as a batch), then
        classifier-free guidance over the ``[unconditional, conditional]`` halves."""
        pipe = self.pipe
        down, mid = pipe.controlnet(control_input, t, encoder_hidden_states=text, controlnet_cond=controlnet_cond,
                                    conditioning_scale=conditioning_scale, guess_mode=False, return_dict=False)
        noise_pred = pipe.unet(unet_input, t, encoder_hidden_states=text, added_cond_kwargs=added,
                               down_block_additional_residuals=down, mid_block_additional_residual=mid,
                               return_dict=False)[0]
        if do_cfg:
            noise_uncond, noise_text = noise_pred.chunk(2)
            noise_pred = noise_uncond + guidance_scale * (noise_text - noise_uncond)
        return noise_pred

    def set_ip_adapter_scale(self, scale: float) -> None:
        if self.has_ip_adapter:
            self.pipe.set_ip_adapter_scale(scale)
