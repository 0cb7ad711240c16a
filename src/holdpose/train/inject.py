"""Injection into a diffusers model: attention processors by name pattern, blocks by path.

A diffusers ``Attention`` module calls ``self.processor(attn, hidden_states, ...)``. When the
processor is an ``nn.Module`` it becomes a child of the attention module, so its parameters
appear in the model's state dict under ``<attention path>.processor.<name>`` and train, save
and load with the model (SEED_MODULES S1). Processor names are those of
``model.attn_processors``, e.g. ``down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor``.

    names = inject_processors(unet, r"\\.attn1\\.processor$",
                              lambda name, attn: AdditiveProcessor(ZeroLinear(attn.query_dim)))
    old = replace_module(unet, "down_blocks.0.resnets.0", MyBlock(...))

This module imports torch when imported; import it inside the functions that need it.
"""

from __future__ import annotations

import re
from typing import Callable

from holdpose.errors import require

torch = require("torch", "diffusion")
_processors = require("diffusers.models.attention_processor", "diffusion")


def inject_processors(model, pattern: str, factory: Callable) -> list[str]:
    """Give every attention layer of ``model`` whose processor name matches the regular
    expression ``pattern`` (``re.search``) the processor ``factory(name, attention_module)``.

    The other processors are kept as they are. Returns the replaced names, sorted; raises
    ``ValueError`` naming the pattern when nothing matches (a typo would otherwise train nothing).
    """
    current = dict(model.attn_processors)
    regex = re.compile(pattern)
    chosen = sorted(name for name in current if regex.search(name))
    if not chosen:
        examples = ", ".join(sorted(current)[:2])
        raise ValueError(f"no attention processor of {type(model).__name__} matches {pattern!r} "
                         f"(names look like {examples})")
    for name in chosen:
        current[name] = factory(name, model.get_submodule(name.removesuffix(".processor")))
    model.set_attn_processor(current)
    return chosen


def replace_module(model, path: str, module):
    """Put ``module`` at the dotted ``path`` of ``model`` (``down_blocks.0.resnets.0``) and
    return the module it replaces. Works inside ``nn.ModuleList`` and ``nn.Sequential``."""
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = parent.get_submodule(child)  # raises AttributeError naming the path when it does not exist
    setattr(parent, child, module)  # nn.Module.__setattr__ registers it under the same key
    return old


class AdditiveProcessor(torch.nn.Module):
    """Standard attention plus a trainable term: ``base(attn, h, ...) + addition(h)``.

    ``h`` is the attention layer's input (``[B, N, C]`` tokens) and ``addition`` maps it to the
    attention output's shape. With a zero-initialised ``addition`` (:class:`ZeroLinear`) the
    layer's output is bit-identical to the unmodified layer's, since ``x + 0 == x`` exactly.
    ``base`` defaults to diffusers' ``AttnProcessor2_0`` (scaled-dot-product attention).
    """

    def __init__(self, addition, base=None):
        super().__init__()
        self.addition = addition
        self.base = base if base is not None else _processors.AttnProcessor2_0()

    def forward(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        out = self.base(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                        attention_mask=attention_mask, temb=temb, **kwargs)
        return out + self.addition(hidden_states)


class ZeroLinear(torch.nn.Linear):
    """A ``Linear`` whose weight and bias start at zero: a trainable addition that changes
    nothing until trained (ControlNet's zero convolution, for tokens)."""

    def __init__(self, in_features: int, out_features: int | None = None):
        super().__init__(in_features, out_features or in_features)
        torch.nn.init.zeros_(self.weight)
        torch.nn.init.zeros_(self.bias)


def zero_conv(in_channels: int, out_channels: int | None = None, kernel_size: int = 1):
    """A ``Conv2d`` with zero weight and bias (ControlNet's zero convolution: 1x1; odd sizes keep
    the spatial size)."""
    conv = torch.nn.Conv2d(in_channels, out_channels or in_channels, kernel_size=kernel_size,
                           padding=kernel_size // 2)
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    return conv
