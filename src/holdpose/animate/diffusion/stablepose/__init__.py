"""Stable-Pose (NeurIPS 2024): a pose adapter with pose-masked ViT attention for a frozen SD 1.5.

``model`` (torch modules), ``data`` (numpy training views), ``training`` (the trainer),
``animator`` (the ``stablepose`` backend), ``cli`` (``holdpose train stablepose``). See docs/stable-pose.md.
"""
