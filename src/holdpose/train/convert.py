"""Checkpoint conversion (SEED_MODULES S8): third-party ``.pth``/``.ckpt``/``.safetensors`` files
to one safetensors file whose keys are the names of holdpose's (diffusers') modules.

A conversion is a **renaming table**: an ordered list of ``(old prefix, new prefix)`` rows;
each key takes the first row whose old prefix starts it. Tables are data: the built-in formats
below generate theirs from the architecture's shape, and ``--table FILE.json`` reads
``[["old", "new"], ...]`` rows from disk. Keys no row matches are kept unchanged (``plain``
has no rows) or, with ``drop_unmatched``, dropped.

Pickled files (``.pth``, ``.ckpt``, ``.bin``) run code when loaded, so they are read only with
``allow_pickle=True`` (``--allow-pickle``), and then with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, whenever the file allows it.

Built-in formats:

- ``plain``: unwrap (``state_dict`` / ``model`` / ``module.`` wrappers), keep the names
  (DisPose's ``DisPose.pth`` and MimicMotion's checkpoints already use diffusers' names);
- ``ldm-controlnet``: a ControlNet or ControlNet-like adapter in the original ``ldm`` layout
  (``control_model.input_blocks.*``, ``zero_convs.*``, ``middle_block_out``, ``input_hint_block``)
  to ``ControlNetModel`` / :class:`~holdpose.train.side.SideNetwork` names;
- ``ldm-stablepose``: Stable-Pose's released checkpoint (``stable_pose_adapter.*`` only; the
  frozen SD weights in the same file are left out): the ldm-controlnet rows plus its pose
  extractor and PMSA ViT (``StablePoseAdapter`` names).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from holdpose.errors import HoldposeError, require
from holdpose.io.atomic import atomic_path

logger = logging.getLogger(__name__)

PICKLED = (".pth", ".pt", ".ckpt", ".bin", ".tar")
WRAPPERS = ("state_dict", "model", "module", "net")  # dict keys under which trainers nest the weights

# ldm ResBlock sub-layers -> diffusers ResnetBlock2D (the rows every ldm table shares)
LDM_RESNET_LEAVES = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
                     ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."))


def ldm_encoder_table(levels: int = 4, layers_per_block: int = 2, hint_blocks: int = 6) -> list[tuple[str, str]]:
    """Rows from the ldm encoder layout to diffusers' (SD 1.5: 4 levels of 2 layers, a hint
    encoder of 6 inner convolutions). Attention sub-layers keep their names in both layouts."""
    rows = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
            ("input_blocks.0.0.", "conv_in."), ("middle_block_out.0.", "controlnet_mid_block."),
            ("input_hint_block.0.", "controlnet_cond_embedding.conv_in."),
            (f"input_hint_block.{2 * hint_blocks + 2}.", "controlnet_cond_embedding.conv_out.")]
    rows += [(f"input_hint_block.{2 * i + 2}.", f"controlnet_cond_embedding.blocks.{i}.") for i in range(hint_blocks)]
    index = 1
    for level in range(levels):
        for layer in range(layers_per_block):
            rows += _resnet_rows(f"input_blocks.{index}.0.", f"down_blocks.{level}.resnets.{layer}.")
            rows.append((f"input_blocks.{index}.1.", f"down_blocks.{level}.attentions.{layer}."))
            index += 1
        if level < levels - 1:
            rows.append((f"input_blocks.{index}.0.op.", f"down_blocks.{level}.downsamplers.0.conv."))
            index += 1
    rows += [(f"zero_convs.{i}.0.", f"controlnet_down_blocks.{i}.") for i in range(index)]
    rows += _resnet_rows("middle_block.0.", "mid_block.resnets.0.")
    rows.append(("middle_block.1.", "mid_block.attentions.0."))
    rows += _resnet_rows("middle_block.2.", "mid_block.resnets.1.")
    return rows


def _resnet_rows(old: str, new: str) -> list[tuple[str, str]]:
    return [(old + a, new + b) for a, b in LDM_RESNET_LEAVES]


def ldm_encoder_table_for(keys) -> list[tuple[str, str]]:
    """:func:`ldm_encoder_table` with the shape read from the checkpoint's own keys: the
    downsamplers' ``input_blocks.N.0.op`` indices give the levels and layers per level, the
    last ``input_hint_block`` index the number of hint convolutions."""
    import re

    ops = sorted({int(m.group(1)) for k in keys if (m := re.search(r"input_blocks\.(\d+)\.0\.op\.", k))})
    hints = [int(m.group(1)) for k in keys if (m := re.search(r"input_hint_block\.(\d+)\.", k))]
    if not ops:
        return ldm_encoder_table()
    return ldm_encoder_table(levels=len(ops) + 1, layers_per_block=ops[0] - 1,
                             hint_blocks=(max(hints) - 2) // 2 if hints else 6)


# Stable-Pose's own modules in its ldm adapter (cldm/stable_pose_cldm.py, ldm/modules/pmsa_vit.py) ->
# holdpose's StablePoseAdapter; the pose extractor's convolutions sit at Sequential indices 0, 2, 4, 6, 8
STABLEPOSE_ROWS = (
    [(f"feature_extractor.pre_extractor.{2 * i}.", f"pose_encoder.convs.{i}.") for i in range(5)]
    + [("feature_extractor.extractors.0.0.", "pose_encoder.convs.5."),
       ("feature_extractor.zero_convs.0.", "pose_encoder.zero_conv."),
       ("input_blocks.1.0.cond_conv.", "down_blocks.0.resnets.0.cond_conv."),
       ("input_blocks.1.0.attn_layer.to_patch_embedding.0.", "down_blocks.0.resnets.0.pmsa.patch_conv."),
       ("input_blocks.1.0.attn_layer.to_patch_embedding.2.", "down_blocks.0.resnets.0.pmsa.patch_norm."),
       ("input_blocks.1.0.attn_layer.to_patch_embedding.3.", "down_blocks.0.resnets.0.pmsa.patch_linear."),
       ("input_blocks.1.0.attn_layer.to_patch_embedding.4.", "down_blocks.0.resnets.0.pmsa.token_norm."),
       ("input_blocks.1.0.attn_layer.to_out.1.", "down_blocks.0.resnets.0.pmsa.out_conv.")])
STABLEPOSE_LAYER_LEAVES = (("0.norm.", "attn_norm."), ("0.to_qkv.", "to_qkv."), ("0.to_out.", "to_out."),
                           ("1.net.0.", "ff_norm."), ("1.net.1.", "ff_in."), ("1.net.3.", "ff_out."))


def ldm_stablepose_table_for(keys) -> list[tuple[str, str]]:
    """Stable-Pose's released adapter (``stable_pose_adapter.*``, an ldm ControlNet-like encoder
    whose input block 1 is an AttnResBlock with a PMSA ViT) to holdpose's names: its own modules
    first, then the ldm encoder rows (:func:`ldm_encoder_table_for`) for the rest."""
    import re

    layer = re.compile(r"attn_layer\.transformer\.layers\.(\d+)\.")
    layers = sorted({int(m.group(1)) for k in keys if (m := layer.search(k))})
    rows = list(STABLEPOSE_ROWS)
    rows += [(f"input_blocks.1.0.attn_layer.transformer.layers.{i}.{old}",
              f"down_blocks.0.resnets.0.pmsa.layers.{i}.{new}") for i in layers for old, new in STABLEPOSE_LAYER_LEAVES]
    return rows + ldm_encoder_table_for(keys)


# format -> function of the source keys (prefixes stripped) returning the renaming table
FORMATS = {
    "plain": lambda keys: [],
    "ldm-controlnet": ldm_encoder_table_for,
    "ldm-stablepose": ldm_stablepose_table_for,
}
# prefixes stripped before the table applies, per format
SOURCE_PREFIXES = {"ldm-controlnet": ("control_model.",), "ldm-stablepose": ("stable_pose_adapter.",)}
# formats whose checkpoints hold a whole model: only the keys under their prefix are converted
SUBMODEL_FORMATS = {"ldm-stablepose"}


def read_table(path: str | os.PathLike) -> list[tuple[str, str]]:
    """A renaming table from a JSON file: a list of ``[old prefix, new prefix]`` pairs."""
    try:
        rows = json.loads(Path(path).read_text())
        table = [(str(old), str(new)) for old, new in rows]
    except (OSError, ValueError, TypeError) as err:
        raise HoldposeError(f"{path}: not a renaming table ({err}); write a JSON list of [old, new] prefix "
                            "pairs") from err
    return table


def rename(state: dict, table, *, strip_prefixes=(), drop_unmatched: bool = False) -> dict:
    """Apply the renaming ``table`` (first matching row wins) to the keys of ``state``, after
    removing the first of ``strip_prefixes`` each key starts with. Raises ``HoldposeError``
    if two keys end up with one name."""
    out = {}
    for key, value in state.items():
        name = next((key[len(p):] for p in strip_prefixes if key.startswith(p)), key)
        row = next(((old, new) for old, new in table if name.startswith(old)), None)
        if row is None and drop_unmatched:
            continue
        new_name = row[1] + name[len(row[0]):] if row else name
        if new_name in out:
            raise HoldposeError(f"renaming maps two keys to {new_name!r}; the table does not fit this checkpoint")
        out[new_name] = value
    return out


def unwrap(obj, source: str = "checkpoint") -> dict:
    """The flat name -> tensor dict inside what a trainer saved: descend through ``state_dict``
    / ``model`` / ``module`` wrappers and drop a ``module.`` prefix (DataParallel) on every key."""
    torch = require("torch", "diffusion")
    while isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise HoldposeError(f"{source}: no tensors found (top-level keys: {', '.join(map(str, list(obj)[:6]))})")
        obj = inner
    if not isinstance(obj, dict):
        raise HoldposeError(f"{source}: holds a {type(obj).__name__}, not a dict of tensors")
    tensors = {str(k): v for k, v in obj.items() if torch.is_tensor(v)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_state_dict(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict:
    """Tensors of a ``.safetensors`` or (with ``allow_pickle``) pickled checkpoint, on the CPU."""
    torch = require("torch", "diffusion")
    path = Path(path)
    if not path.is_file():
        raise HoldposeError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return require("safetensors.torch", "diffusion").load_file(str(path))
    if not allow_pickle:
        raise HoldposeError(f"{path}: a pickled checkpoint can run code when loaded; pass --allow-pickle "
                            "(allow_pickle=True) if you trust its source")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the restricted unpickler refuses anything but tensors
        logger.warning("%s: not loadable with weights_only=True (%s); unpickling it fully because "
                       "allow_pickle=True", path, str(err).splitlines()[0])
        obj = torch.load(path, map_location="cpu", weights_only=False)
    return unwrap(obj, str(path))


def check_fits(state: dict, expected: dict, source: str = "converted checkpoint",
               hint: str = "pick the --format (or --table) that matches the checkpoint") -> None:
    """Strict-load check: ``state`` must have exactly the names and shapes of ``expected``
    (name -> tensor or shape), as ``load_state_dict(strict=True)`` demands; ``hint`` ends the
    error (what the user can do)."""
    shape = lambda v: tuple(v.shape) if hasattr(v, "shape") else tuple(v)  # noqa: E731
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if shape(state[k]) != shape(expected[k]))
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {what} (first: {v[0]})" for what, v in
                 (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", wrong)) if v]
        raise HoldposeError(f"{source} does not fit the model: {'; '.join(parts)}; {hint}")


def expected_from_config(folder: str | os.PathLike) -> dict:
    """Name -> shape of the diffusers model whose ``config.json`` is in ``folder`` (built on the
    meta device: no memory, no weights read)."""
    diffusers = require("diffusers", "diffusion")
    accelerate = require("accelerate", "diffusion")
    config_path = Path(folder) / "config.json"
    try:
        config = json.loads(config_path.read_text())
        cls = getattr(diffusers, config["_class_name"])
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise HoldposeError(f"{config_path}: not a diffusers model config ({err}); give the folder of a model "
                            "saved with save_pretrained") from err
    with accelerate.init_empty_weights():
        model = cls.from_config(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def convert_weights(source: str | os.PathLike, output: str | os.PathLike, *, format: str = "plain",
                    table_file: str | os.PathLike | None = None, strip_prefix: str | None = None,
                    drop_unmatched: bool = False, expected: dict | None = None, allow_pickle: bool = False,
                    overwrite: bool = False) -> dict:
    """Convert ``source`` to the safetensors file ``output`` and return the converted tensors.

    ``format`` picks a built-in table (:data:`FORMATS`), ``table_file`` a JSON one (applied
    first); ``strip_prefix`` removes a prefix from every key first. With ``expected`` (name ->
    shape, e.g. :func:`expected_from_config`) the result must fit it exactly before anything is
    written. The output is written atomically; an existing file needs ``overwrite``."""
    if format not in FORMATS:
        raise HoldposeError(f"unknown checkpoint format {format!r}; choose one of {', '.join(FORMATS)}")
    output = Path(output)
    if output.suffix != ".safetensors":
        raise HoldposeError(f"{output}: the output must be a .safetensors file")
    if output.exists() and not overwrite:
        raise HoldposeError(f"{output} exists; pass --overwrite to replace it")
    state = load_state_dict(source, allow_pickle=allow_pickle)
    if format in SUBMODEL_FORMATS:  # e.g. Stable-Pose's final.pth also holds the frozen UNet, VAE, text encoder
        ours = {k: v for k, v in state.items() if any(k.startswith(p) for p in SOURCE_PREFIXES[format])}
        state = ours or state
    prefixes = ((strip_prefix,) if strip_prefix else ()) + SOURCE_PREFIXES.get(format, ())
    state = rename(state, [], strip_prefixes=prefixes)
    table = (read_table(table_file) if table_file else []) + FORMATS[format](list(state))
    converted = rename(state, table, drop_unmatched=drop_unmatched)
    if expected is not None:
        check_fits(converted, expected, f"{source} converted as {format}")
    # safetensors refuses tensors that share memory (tied weights): give each its own
    tensors = {k: v.detach().contiguous().clone() for k, v in converted.items()}
    with atomic_path(output) as tmp:
        require("safetensors.torch", "diffusion").save_file(tensors, str(tmp),
                                                            metadata={"source": Path(source).name, "format": format})
    return tensors
