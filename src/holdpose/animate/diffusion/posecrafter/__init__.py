"""PoseCrafter (ECCV 2024): one-shot personalised video from one training video (docs/posecrafter.md).

- :mod:`.config`: names and defaults (light);
- :mod:`.model`: key-frame and temporal attention injected into SD 1.5's UNet and ControlNet (torch);
- :mod:`.tuning` / :mod:`.training`: ``holdpose tune`` (the light API, then the torch loop);
- :mod:`.editing`: affine latent editing of face and hands (numpy);
- :mod:`.animator`: the ``posecrafter`` backend of ``holdpose animate`` (its reference is the tuned folder);
- :mod:`.cli`: the ``tune`` subcommand (also ``holdpose train posecrafter``).
"""
