"""Evaluation as the literature does it: does the output hold the pose, is it stable, is it faithful?

- :mod:`~holdpose.evaluate.keypoints`: OKS, PCK, person matching, COCO keypoint AP (= pycocotools).
- :mod:`~holdpose.evaluate.adherence`: re-detected poses against the target: OKS AP/AR, CAP,
  PCE, MSE-P, PCK, per part and per frame.
- :mod:`~holdpose.evaluate.temporal`: VBench temporal flickering, warping error, keypoint jitter.
- :mod:`~holdpose.evaluate.fidelity`: SSIM, PSNR, L1; Fréchet distance and KID on features.
- :mod:`~holdpose.evaluate.features`: LPIPS, FID, KID, FVD, CLIP extractors from local weights.
- :mod:`~holdpose.evaluate.run`: :func:`evaluate_video`, all of it in one streaming pass.
- :mod:`~holdpose.evaluate.report`: ``metrics.json`` and ``index.html`` with plots.
- :mod:`~holdpose.evaluate.compare`: :func:`~holdpose.evaluate.compare.compare`, several videos side by side, one table.
- :mod:`~holdpose.evaluate.detector`: a detector's accuracy on COCO-annotated images.

The names below load their module on first use, so ``import holdpose.evaluate`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate_video": "run", "Evaluation": "run",
    "write_report": "report",
    "evaluate_detector": "detector", "write_detector_report": "detector",
    "score_adherence": "adherence", "pose_adherence": "adherence",
    "temporal_flickering": "temporal", "warp_error": "temporal", "keypoint_jitter": "temporal",
    "ssim": "fidelity", "psnr": "fidelity", "l1": "fidelity", "frechet_distance": "fidelity",
    "kernel_inception_distance": "fidelity",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"holdpose.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'holdpose.evaluate' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
