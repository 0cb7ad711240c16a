"""pycocotools' COCOeval on holdpose-style predictions: the independent implementation that
the tests and bench/bench_evaluate.py check holdpose's OKS AP/AR against."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np


def pycocotools_stats(gt_dict: dict, predictions: list[dict]) -> np.ndarray:
    """``COCOeval(iouType="keypoints").stats`` (12 values: AP, AP50, AP75, APm, APl, AR, ...)
    for ``predictions`` ``[{"image_id", "score", "keypoints": [17, 2]}]`` against a COCO dict.
    A missing (NaN) point goes 10^4 px away (OKS term 0); farther would make the detection's
    box larger than pycocotools' "all" area range (1e10) and get it ignored."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dict)
        gt.createIndex()
        results = []
        for p in predictions:
            kp = np.where(np.isfinite(p["keypoints"]), p["keypoints"], -1e4)
            results.append({"image_id": p["image_id"], "category_id": 1, "score": p["score"],
                            "keypoints": np.concatenate([kp, np.ones((len(kp), 1))], 1).ravel().tolist()})
        if not results:
            return np.zeros(12)
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats
