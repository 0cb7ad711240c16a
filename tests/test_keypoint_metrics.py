"""Keypoint metrics: known answers, matching, and agreement with pycocotools on real ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from coco_reference import pycocotools_stats
from conftest import fixture_path
from holdpose.evaluate.keypoints import COCO_SIGMAS, coco_keypoint_ap, match_people, oks, oks_matrix, pck


def _pose(seed=0, k=17):
    return np.random.default_rng(seed).uniform(50, 400, (k, 2))


# --- OKS ---------------------------------------------------------------------------

def test_oks_identical_pose_is_one():
    gt = _pose()
    assert oks(gt, gt, np.ones(17, bool), area=5000.0) == pytest.approx(1.0)


def test_oks_shift_of_one_point_gives_exp_minus_one():
    # Only the nose labelled (sigma .026). A shift d with d^2 = 2 * area * (2 sigma)^2
    # makes the exponent exactly 1, so OKS = e^-1.
    gt = _pose()
    area = 10_000.0
    d = math.sqrt(2 * area * (2 * 0.026) ** 2)  # 7.354 px
    pred = gt.copy()
    pred[0, 1] += d
    pred[1:] += 100.0  # unlabelled points must not matter
    visible = np.zeros(17, bool)
    visible[0] = True
    assert oks(pred, gt, visible, area) == pytest.approx(math.exp(-1), rel=1e-9)


def test_oks_uniform_shift_matches_formula_by_hand():
    gt = _pose(1)
    area, shift = 2500.0, np.array([3.0, 4.0])  # 5 px
    visible = np.ones(17, bool)
    visible[[3, 4]] = False  # ears unlabelled
    expected = np.mean([math.exp(-25.0 / (2 * area * (2 * s) ** 2)) for s, v in zip(COCO_SIGMAS, visible) if v])
    assert oks(gt + shift, gt, visible, area) == pytest.approx(expected, rel=1e-9)
    # A bigger shift lowers it; a missing (NaN) point contributes 0.
    assert oks(gt + 2 * shift, gt, visible, area) < expected
    pred = gt.copy()
    pred[0] = np.nan
    assert oks(pred, gt, visible, area) == pytest.approx(14 / 15, rel=1e-9)


def test_oks_matrix_matches_pairwise_oks():
    rng = np.random.default_rng(2)
    preds = rng.uniform(0, 300, (4, 17, 2))
    gts = rng.uniform(0, 300, (3, 17, 2))
    visible = rng.random((3, 17)) < 0.8
    areas = np.array([900.0, 4000.0, 12000.0])
    preds[1] = gts[2] + rng.normal(0, 3, (17, 2))
    mat = oks_matrix(preds, gts, visible, areas)
    assert mat.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            assert mat[i, j] == pytest.approx(oks(preds[i], gts[j], visible[j], areas[j]), abs=1e-12)
    assert mat[1, 2] > 0.8 and mat[1, 2] == mat[:, 2].max()


def test_oks_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="sigmas"):
        oks(np.zeros((5, 2)), np.zeros((5, 2)), np.ones(5, bool), 100.0)
    with pytest.raises(ValueError, match="areas"):
        oks_matrix(np.zeros((1, 17, 2)), np.zeros((2, 17, 2)), np.ones((2, 17), bool), np.ones(3))


# --- PCK ---------------------------------------------------------------------------

def test_pck_half_and_twice_the_threshold():
    gt = np.stack([_pose(3), _pose(4)])
    visible = np.ones((2, 17), bool)
    reference = np.array([200.0, 100.0])
    alpha = 0.2  # thresholds 40 px and 20 px
    direction = np.array([0.6, 0.8])  # unit vector
    half = gt + (0.5 * alpha * reference)[:, None, None] * direction
    twice = gt + (2 * alpha * reference)[:, None, None] * direction
    assert pck(half, gt, visible, reference, alpha) == 1.0
    assert pck(twice, gt, visible, reference, alpha) == 0.0
    # Invisible points are not scored; a NaN prediction is wrong.
    mixed = half.copy()
    mixed[0, :5] = twice[0, :5]
    visible_mixed = visible.copy()
    visible_mixed[1] = False
    assert pck(mixed, gt, visible_mixed, reference, alpha) == pytest.approx(12 / 17)
    mixed[0, 5] = np.nan
    assert pck(mixed, gt, visible_mixed, reference, alpha) == pytest.approx(11 / 17)
    assert math.isnan(pck(half, gt, np.zeros((2, 17), bool), reference, alpha))


# --- matching ------------------------------------------------------------------------

def test_match_people_optimal_with_a_missed_person():
    # 2 predictions, 3 people. Greedy would give pred 0 to gt 0 (0.9) and leave pred 1 with
    # gt 1 (0.1); the optimum is 0->1, 1->0 (0.8 + 0.85). gt 2 is missed.
    sim = np.array([[0.9, 0.8, 0.05],
                    [0.85, 0.1, 0.02]])
    m = match_people(sim)
    assert m.pairs.tolist() == [[1, 0], [0, 1]]  # (prediction, ground truth), by ground truth
    assert m.gt_oks.tolist() == [0.85, 0.8, 0.0]
    assert m.missed.tolist() == [2]
    assert m.unmatched.tolist() == []
    assert m.gt_oks.mean() == pytest.approx((0.85 + 0.8) / 3)


def test_match_people_min_oks_and_false_positive():
    sim = np.array([[0.7, 0.0], [0.2, 0.1], [0.0, 0.3]])
    m = match_people(sim, min_oks=0.25)
    assert m.pairs.tolist() == [[0, 0], [2, 1]]
    assert m.unmatched.tolist() == [1]
    m = match_people(sim, min_oks=0.5)
    assert m.pairs.tolist() == [[0, 0]]
    assert m.missed.tolist() == [1]
    assert m.gt_oks.tolist() == [0.7, 0.0]
    empty = match_people(np.zeros((0, 2)))
    assert empty.missed.tolist() == [0, 1] and empty.pairs.shape == (0, 2)
    with pytest.raises(ValueError, match="NaN"):
        match_people(np.array([[np.nan]]))


# --- COCO AP against pycocotools -------------------------------------------------------

def _fixture_gt() -> dict:
    data = json.loads(fixture_path("images", "annotations.json").read_text())
    keep = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox", "iscrowd")
    return {"images": [{"id": i["id"], "width": i["width"], "height": i["height"]} for i in data["images"]],
            "annotations": [{k: a[k] for k in keep} for a in data["annotations"]],
            "categories": [{k: c[k] for k in ("id", "name", "keypoints", "skeleton")} for c in data["categories"]]}


def _perturbed(gt: dict, rng, noise: float, *, miss: float = 0.0, false_positives: int = 0,
               duplicates: float = 0.0) -> list[dict]:
    """Detections from the ground truth: Gaussian noise of ``noise`` times each person's
    sqrt(area) per point, some people missed, some duplicated, some random poses."""
    preds = []
    for ann in gt["annotations"]:
        if ann["iscrowd"] or ann["num_keypoints"] == 0:
            continue
        kp = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)[:, :2]
        scale = math.sqrt(ann["area"])
        if rng.random() >= miss:
            preds.append({"image_id": ann["image_id"], "score": float(rng.uniform(0.3, 1.0)),
                          "keypoints": kp + rng.normal(0, noise * scale, (17, 2)) * rng.uniform(0.2, 2.0)})
        if rng.random() < duplicates:
            preds.append({"image_id": ann["image_id"], "score": float(rng.uniform(0.0, 0.6)),
                          "keypoints": kp + rng.normal(0, 2 * noise * scale + 2, (17, 2))})
    image_ids = [i["id"] for i in gt["images"]]
    for _ in range(false_positives):
        x, y = rng.uniform(0, 500, 2)
        preds.append({"image_id": int(rng.choice(image_ids)), "score": float(rng.uniform(0, 1)),
                      "keypoints": np.array([x, y]) + rng.uniform(0, 150, (17, 2))})
    order = rng.permutation(len(preds))
    return [preds[i] for i in order]


SCENARIOS = [  # (noise as a fraction of sqrt(area), miss, false positives, duplicates)
    (0.0, 0.0, 0, 0.0),
    (0.02, 0.0, 0, 0.0),
    (0.05, 0.2, 2, 0.3),
    (0.1, 0.3, 4, 0.5),
    (0.2, 0.0, 3, 0.2),
    (0.05, 0.5, 0, 1.0),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_coco_keypoint_ap_agrees_with_pycocotools(scenario, seed):
    pytest.importorskip("pycocotools")
    gt = _fixture_gt()
    rng = np.random.default_rng(seed * 100 + SCENARIOS.index(scenario))
    noise, miss, fps, dups = scenario
    preds = _perturbed(gt, rng, noise, miss=miss, false_positives=fps, duplicates=dups)
    ours = coco_keypoint_ap(preds, gt)
    stats = pycocotools_stats(gt, preds)
    got = [ours.ap, ours.ap50, ours.ap75, ours.ar, ours.ar50, ours.ar75]
    want = [stats[0], stats[1], stats[2], stats[5], stats[6], stats[7]]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_coco_keypoint_ap_ignored_people_agree_with_pycocotools():
    """A crowd person and a person with no labelled point, both ignored, and detections
    on them that must count neither as true nor as false positives (a crowd absorbs several)."""
    pytest.importorskip("pycocotools")
    gt = _fixture_gt()
    ann = gt["annotations"][1]
    crowd = dict(ann, id=9001, iscrowd=1)
    empty = dict(ann, id=9002, num_keypoints=0, keypoints=[0] * 51, bbox=[400.0, 20.0, 80.0, 160.0], area=6000.0)
    gt["annotations"] += [crowd, empty]
    rng = np.random.default_rng(7)
    preds = _perturbed(gt, rng, 0.05, miss=0.2, false_positives=2)
    kp_crowd = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)[:, :2]
    preds += [{"image_id": ann["image_id"], "score": 0.95, "keypoints": kp_crowd + rng.normal(0, 2, (17, 2))},
              {"image_id": ann["image_id"], "score": 0.97, "keypoints": kp_crowd + rng.normal(0, 3, (17, 2))},
              {"image_id": ann["image_id"], "score": 0.96, "keypoints": kp_crowd + rng.normal(0, 4, (17, 2))},
              {"image_id": ann["image_id"], "score": 0.9, "keypoints": rng.uniform([410, 30], [470, 170], (17, 2))}]
    ours = coco_keypoint_ap(preds, gt)
    stats = pycocotools_stats(gt, preds)
    np.testing.assert_allclose([ours.ap, ours.ap50, ours.ap75, ours.ar, ours.ar50, ours.ar75],
                               [stats[0], stats[1], stats[2], stats[5], stats[6], stats[7]], atol=1e-4)
    assert ours.num_gt == 6


def test_coco_keypoint_ap_known_answers():
    gt = {"images": [{"id": 1}, {"id": 2}], "annotations": []}
    rng = np.random.default_rng(0)
    people = [rng.uniform(0, 200, (17, 2)) for _ in range(3)]
    for n, (image_id, kp) in enumerate(zip([1, 1, 2], people)):
        flat = np.concatenate([kp, np.full((17, 1), 2.0)], 1).ravel().tolist()
        gt["annotations"].append({"id": n + 1, "image_id": image_id, "keypoints": flat, "num_keypoints": 17,
                                  "area": 4000.0, "bbox": [0, 0, 200, 200], "iscrowd": 0})
    perfect = [{"image_id": i, "keypoints": kp, "score": 0.9} for i, kp in zip([1, 1, 2], people)]
    result = coco_keypoint_ap(perfect, gt)
    assert (result.ap, result.ar) == (pytest.approx(1.0), pytest.approx(1.0))
    # One person missed: recall 2/3 at every threshold; precision 1 up to it, 0 after.
    result = coco_keypoint_ap(perfect[:2], gt)
    assert result.ar == pytest.approx(2 / 3)
    assert result.ap == pytest.approx(67 / 101)  # recall points 0.00 .. 0.66
    # A false positive scored above everything halves the precision of the first hit.
    junk = {"image_id": 2, "keypoints": people[2] + 500, "score": 0.99}
    assert coco_keypoint_ap(perfect + [junk], gt).ap < 1.0
    assert coco_keypoint_ap([], gt).ap == 0.0
    with pytest.raises(ValueError, match="image 3"):
        coco_keypoint_ap([{"image_id": 3, "keypoints": people[0], "score": 1.0}], gt)
