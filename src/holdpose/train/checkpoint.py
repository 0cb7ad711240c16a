"""Checkpoints of the trainable tensors only: safetensors files and a JSON manifest.

A checkpoint folder holds

- ``trainable.safetensors``: the trainable parameters, by their name in the trained module;
- ``optimizer.safetensors``: AdamW's moments and step count per parameter
  (``exp_avg/<name>``, ``exp_avg_sq/<name>``, ``step/<name>``), so that a resumed run continues
  bit-identically;
- ``manifest.json``: the step, the training configuration, the trainable names with their
  shapes and exact parameter count, the losses so far, and the SHA-256 of both files.

Folders are written under a temporary name and renamed (:func:`holdpose.io.atomic.atomic_path`),
so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from holdpose.errors import HoldposeError, require
from holdpose.io.atomic import atomic_path, file_sha256

torch = require("torch", "diffusion")
safetensors_torch = require("safetensors.torch", "diffusion")

TRAINABLE = "trainable.safetensors"
OPTIMIZER = "optimizer.safetensors"
MANIFEST = "manifest.json"
FORMAT = "holdpose-trainable/1"


def trainable_tensors(params: dict) -> dict:
    """Name -> contiguous CPU copy of each parameter (what ``trainable.safetensors`` holds)."""
    return {name: p.detach().to("cpu").contiguous() for name, p in params.items()}


def optimizer_tensors(optimizer, params: dict) -> dict:
    """AdamW's per-parameter state as named tensors (empty before the first step)."""
    out = {}
    for name, p in params.items():
        for key, value in optimizer.state.get(p, {}).items():
            out[f"{key}/{name}"] = torch.as_tensor(value).detach().to("cpu").contiguous()
    return out


def restore_optimizer(optimizer, params: dict, tensors: dict) -> None:
    """Put the state saved by :func:`optimizer_tensors` back, on each parameter's device."""
    for name, p in params.items():
        state = {key: tensors[f"{key}/{name}"] for key in ("step", "exp_avg", "exp_avg_sq")
                 if f"{key}/{name}" in tensors}
        if state:
            # AdamW keeps "step" as a float32 CPU scalar tensor unless capturable/fused
            optimizer.state[p] = {k: (v if k == "step" else v.to(p.device)) for k, v in state.items()}


def save_checkpoint(folder: str | os.PathLike, params: dict, manifest: dict, optimizer=None) -> Path:
    """Write ``params`` (name -> parameter), the optimizer state and ``manifest`` (plus the
    tensor list, parameter count and file hashes) to ``folder``, atomically."""
    folder = Path(folder)
    tensors = trainable_tensors(params)
    with atomic_path(folder, directory=True) as tmp:
        safetensors_torch.save_file(tensors, str(tmp / TRAINABLE))
        files = {TRAINABLE: file_sha256(tmp / TRAINABLE)}
        if optimizer is not None:
            safetensors_torch.save_file(optimizer_tensors(optimizer, params), str(tmp / OPTIMIZER))
            files[OPTIMIZER] = file_sha256(tmp / OPTIMIZER)
        full = {"format": FORMAT, **manifest, "files": files,
                "trainable_parameters": sum(t.numel() for t in tensors.values()),
                "tensors": {name: list(t.shape) for name, t in tensors.items()}}
        (tmp / MANIFEST).write_text(json.dumps(full, indent=1))
    return folder


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise HoldposeError(f"{path}: not a holdpose training checkpoint ({err}); give the folder a training "
                            "run wrote") from err
    if manifest.get("format") != FORMAT:
        raise HoldposeError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def load_checkpoint(folder: str | os.PathLike, *, verify: bool = True) -> tuple[dict, dict, dict]:
    """``(trainable tensors, optimizer tensors, manifest)`` of a checkpoint folder; with
    ``verify`` the files must match the manifest's hashes."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    loaded = {}
    for name, digest in manifest["files"].items():
        path = folder / name
        if verify and (not path.is_file() or file_sha256(path) != digest):
            raise HoldposeError(f"{path}: missing or does not match its manifest; the checkpoint is damaged, "
                                "resume from an earlier one")
        loaded[name] = safetensors_torch.load_file(str(path))
    return loaded[TRAINABLE], loaded.get(OPTIMIZER, {}), manifest


def load_trainable(model, path: str | os.PathLike, *, strict: bool = True) -> list[str]:
    """Copy the tensors of ``trainable.safetensors`` (or of a checkpoint folder) into ``model``'s
    parameters of the same names; returns the names. ``strict``: every tensor must name a
    parameter of the same shape (the model must have the same injections as in training)."""
    path = Path(path)
    file = path / TRAINABLE if path.is_dir() else path
    tensors = safetensors_torch.load_file(str(file))
    own = dict(model.named_parameters())
    unknown = [n for n in tensors if n not in own or tuple(own[n].shape) != tuple(tensors[n].shape)]
    if unknown and strict:
        raise HoldposeError(f"{file}: {len(unknown)} tensors do not fit the model (first: {unknown[0]}); build the "
                            "model with the same injections and side networks as in training")
    with torch.no_grad():
        for name, value in tensors.items():
            if name in own and name not in unknown:
                own[name].copy_(value)
    return sorted(set(tensors) - set(unknown))
