"""Loading the models of the diffusion backends, and where they run.

- base model by Hugging Face id, diffusers folder or single ``.safetensors`` file;
  ControlNets, motion adapter and IP-Adapter the same way; pickled checkpoints refused
  unless asked for; one :class:`HoldposeError` that says what is missing and how to get it;
- device and dtype (CUDA float16, CPU float32 unless told otherwise).

torch, diffusers and transformers are imported inside the functions that need them;
importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from holdpose.errors import HoldposeError, require

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
DEFAULT_IP_ADAPTER_WEIGHT = "models/ip-adapter_sd15.safetensors"

SAFE_SUFFIXES = {".safetensors"}
PICKLE_SUFFIXES = {".ckpt", ".bin", ".pt", ".pth", ".pkl"}


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


_QUIET_LIBRARIES = False


def quiet_library_logs() -> None:
    """Keep diffusers' and transformers' own messages and loading bars ("Loading pipeline
    components", "Couldn't connect to the Hub ...") off the terminal: holdpose says in one line
    what went wrong. The CLI calls it unless -v; takes effect now or when they are imported."""
    global _QUIET_LIBRARIES
    _QUIET_LIBRARIES = True
    import sys

    for name in ("diffusers", "transformers"):
        if name in sys.modules:
            _silence(sys.modules[name])


def _silence(library) -> None:
    library.utils.logging.set_verbosity_error()
    library.utils.logging.disable_progress_bar()


def import_diffusers():
    """diffusers (and torch, transformers), or a :class:`MissingDependencyError` with the pip line."""
    require("torch", "diffusion")
    noisy = logging.getLogger("transformers.utils.import_utils")
    if _drop_torchvision_notice not in noisy.filters:
        noisy.addFilter(_drop_torchvision_notice)
    transformers = require("transformers", "diffusion")
    diffusers = require("diffusers", "diffusion")
    if _QUIET_LIBRARIES:
        _silence(transformers)
        _silence(diffusers)
    return diffusers


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


def load_or_explain(what: str, ref, kind: str, allow_pickle: bool, loader):
    try:
        with _loading_bars_hidden():
            return loader()
    except HoldposeError:
        raise
    except _BUG_TYPES:
        raise
    except Exception as err:  # OSError, hub errors, ValueError/RuntimeError for a wrong model: all the user's to fix
        raise load_error(what, str(ref), kind, err, allow_pickle) from err


@contextlib.contextmanager
def _loading_bars_hidden():
    """diffusers and transformers draw loading bars of their own ("Loading pipeline
    components...", "Loading weights"): library noise that holdpose shows only with -v
    (INFO logging), never under -q or by default."""
    import importlib

    if logging.getLogger("holdpose").isEnabledFor(logging.INFO):
        yield
        return
    switched = []
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        try:
            library = importlib.import_module(name)
        except ImportError:
            continue
        if library.is_progress_bar_enabled():
            library.disable_progress_bar()
            switched.append(library)
    try:
        yield
    finally:
        for library in switched:
            library.enable_progress_bar()


def controlnet_pipeline(components: dict, controlnet):
    """diffusers' ``StableDiffusionControlNetPipeline`` from :func:`load_base_components`' parts
    and a ControlNet (or a list of them), without the safety checker and image encoder."""
    return import_diffusers().StableDiffusionControlNetPipeline(
        **components, controlnet=controlnet, safety_checker=None, feature_extractor=None, image_encoder=None,
        requires_safety_checker=False)


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
        pipe = load_or_explain(what, model, kind, allow_pickle,
                     lambda: diffusers.StableDiffusionPipeline.from_single_file(str(model), **extra, **common))
    else:
        pipe = load_or_explain(what, model, kind, allow_pickle, lambda: diffusers.StableDiffusionPipeline.from_pretrained(
            str(model), use_safetensors=None if allow_pickle else True, **common))
    return {name: pipe.components[name] for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def load_model(cls_name: str, ref: str | os.PathLike, what: str, *, dtype, allow_pickle: bool = False):
    """A diffusers model (``ControlNetModel``, ``MotionAdapter``) from an id, folder or single file."""
    diffusers = import_diffusers()
    cls = getattr(diffusers, cls_name)
    kind = locate_model(ref, what)
    if kind == "file":
        check_single_file(ref, what, allow_pickle)
        return load_or_explain(what, ref, kind, allow_pickle, lambda: cls.from_single_file(str(ref), **dtype_kwargs(dtype)))
    return load_or_explain(what, ref, kind, allow_pickle, lambda: cls.from_pretrained(
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
        encoder = load_or_explain("IP-Adapter image encoder", image_encoder, enc_kind, allow_pickle,
                        lambda: transformers.CLIPVisionModelWithProjection.from_pretrained(
                            str(image_encoder), **_transformers_dtype(transformers, dtype),
                            use_safetensors=None if allow_pickle else True))
        pipe.register_modules(image_encoder=encoder)
    with quiet_fp32_notice():
        load_or_explain(what, ref, kind, allow_pickle,
              lambda: pipe.load_ip_adapter(repo, subfolder=subfolder, weight_name=weight_name))
    if pipe.image_encoder is not None and dtype is not None:
        pipe.image_encoder.to(dtype=dtype)


def _transformers_dtype(transformers, dtype) -> dict:
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}  # renamed in 4.56

