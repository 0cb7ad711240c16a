"""Mechanisms the research systems share when they modify a frozen Stable Diffusion model.

- :mod:`~holdpose.train.inject`: replace attention processors by name pattern with ``nn.Module``
  processors that may own trainable parameters; replace a block by its path (SEED_MODULES S1).
- :mod:`~holdpose.train.side`: a ControlNet-like side network built from any UNet, and hooks that
  add its residuals to a UNet that takes no residual arguments (S2).
- :mod:`~holdpose.train.loop`: the ε-prediction training loop with safetensors checkpoints of the
  trainable tensors and exact resume (S3); :mod:`~holdpose.train.checkpoint` reads and writes them.
- :mod:`~holdpose.train.inversion`: DDIM inversion with optional fixed-point refinement (S4).
- :mod:`~holdpose.train.convert`: third-party checkpoints to safetensors with key-renaming tables (S8).

Everything here imports torch and diffusers inside functions; see docs/training.md.
"""
