"""Pose adherence: perfect scores, known PCK for known shifts, CAP, person counts, parts."""

from __future__ import annotations

import numpy as np
import pytest

from holdpose.evaluate.adherence import (
    PARTS,
    choose_detector,
    cosine_similarity_matrix,
    fit_target,
    frame_oks,
    person_boxes,
    score_adherence,
)
from holdpose.evaluate.keypoints import COCO_SIGMAS
from holdpose.sequence import PoseSequence

HEIGHT = 200.0  # body box height of the test person


def _person(seed=0) -> np.ndarray:
    """133 points; the 17 body points span exactly 100..300 in y (height 200)."""
    rng = np.random.default_rng(seed)
    kp = rng.uniform([200, 120], [320, 280], (133, 2))
    kp[0] = [260, 100]  # nose at the top
    kp[15:17] = [[240, 300], [280, 300]]  # ankles at the bottom
    return kp


def _sequence(num_frames=8, people=1, seed=0) -> PoseSequence:
    seq = PoseSequence.empty(num_frames, people, size=(640, 480), fps=25)
    for p in range(people):
        seq.keypoints[:, p] = _person(seed + p) + np.array([150.0 * p, 0])
        seq.scores[:, p] = 0.9
        seq.track_ids[:, p] = p
    return seq


def test_identical_poses_score_perfectly():
    target = _sequence()
    result = score_adherence(target.copy(), target)
    m = result.metrics
    for key in ("oks_ap", "oks_ar", "cap", "cap_ar", "pck@0.05", "pck@0.1", "pck@0.2", "mean_oks"):
        assert m[key] == pytest.approx(1.0), key
    assert m["pce"] == 0 and m["mse_p"] == 0
    for part in PARTS:
        assert result.per_part[part]["oks_ap"] == pytest.approx(1.0)
        assert result.per_part[part]["pck@0.05"] == 1.0
    np.testing.assert_allclose(result.keypoint_error, 0)
    assert result.per_frame["oks"].tolist() == [1.0] * 8


@pytest.mark.parametrize("shift, expected", [(5.0, (1, 1, 1)), (15.0, (0, 1, 1)), (30.0, (0, 0, 1)), (50.0, (0, 0, 0))])
def test_shifted_pose_gives_expected_pck(shift, expected):
    # Thresholds 0.05, 0.1, 0.2 of the 200 px height: 10, 20, 40 px.
    target = _sequence()
    detected = target.copy()
    detected.keypoints += np.array([0.6, 0.8], np.float32) * shift  # |shift| px in a slanted direction
    m = score_adherence(detected, target).metrics
    assert (m["pck@0.05"], m["pck@0.1"], m["pck@0.2"]) == pytest.approx(expected)
    assert m["mse_p"] == pytest.approx(shift ** 2, rel=1e-5)
    w, h = target.size  # normalised: x by the width, y by the height
    assert m["mse_p_norm"] == pytest.approx((0.6 * shift / w) ** 2 + (0.8 * shift / h) ** 2, rel=1e-5)
    assert m["cap"] == pytest.approx(1.0)  # a translation does not change the shape
    assert m["oks_ap"] < 1.0 or shift <= 5


def test_half_the_points_shifted_gives_half_pck():
    target = _sequence()
    detected = target.copy()
    detected.keypoints[:, :, 0:17:2] += np.array([25.0, 0])  # 9 of 17 body points, 25 px
    m = score_adherence(detected, target).metrics
    assert m["pck@0.1"] == pytest.approx(8 / 17)
    assert m["pck@0.2"] == pytest.approx(1.0)
    assert m["mse_p"] == pytest.approx(9 * 25 ** 2 / 17)


def test_missing_people_and_points():
    target = _sequence(num_frames=4, people=2)
    detected = target.copy()
    detected.scores[:2, 1] = 0  # person 1 missed in frames 0-1
    detected.track_ids[:2, 1] = -1
    result = score_adherence(detected, target)
    assert result.metrics["pce"] == pytest.approx(0.5)
    assert result.per_frame["pce"].tolist() == [1, 1, 0, 0]
    assert result.metrics["pck@0.2"] == pytest.approx(6 / 8)  # 6 of 8 person-frames found, all points right
    assert result.metrics["oks_ar"] == pytest.approx(6 / 8)
    assert result.per_frame["oks"].tolist() == pytest.approx([0.5, 0.5, 1, 1])
    # A detected point below min_score is missing: wrong for PCK, absent from MSE-P.
    detected = target.copy()
    detected.scores[:, :, 3] = 0.1
    m = score_adherence(detected, target).metrics
    assert m["pck@0.05"] == pytest.approx(16 / 17) and m["mse_p"] == 0
    # An extra person counts in PCE.
    extra = _sequence(num_frames=4, people=3)
    assert score_adherence(extra, _sequence(num_frames=4, people=2)).metrics["pce"] == 1


def test_cap_ignores_position_and_scale_but_not_shape():
    target = _sequence()
    scaled = target.copy()
    scaled.keypoints = target.keypoints * 0.7 + np.array([40.0, -20.0], np.float32)
    result = score_adherence(scaled, target)
    assert result.metrics["cap"] == pytest.approx(1.0)
    assert result.metrics["oks_ap"] < 0.5
    bent = target.copy()
    bent.keypoints[:, :, 9] += np.array([-90.0, 60.0])  # move a wrist far: the shape changes a little
    body = slice(0, 17)
    sim = cosine_similarity_matrix(bent.keypoints[0, :, body], target.keypoints[0, :, body],
                                   np.ones((1, 17), bool), sigmas=COCO_SIGMAS)
    assert sim[0, 0] < 0.999  # cosines of min-max normalised (all positive) vectors stay high
    upside_down = target.copy()  # the same points mirrored top to bottom: another shape
    upside_down.keypoints[..., 1] = 480 - upside_down.keypoints[..., 1]
    # CAP is lenient: min-max normalised coordinates are all positive, so even this keeps
    # cosines above 0.5 in some frames' thresholds; it still falls below 1.
    assert score_adherence(upside_down, target).metrics["cap"] < 0.8


def test_cosine_similarity_matches_humansd_definition():
    rng = np.random.default_rng(7)
    gt = rng.uniform(0, 300, (17, 2))
    pred = gt + rng.normal(0, 15, (17, 2))
    visible = np.ones(17, bool)
    visible[[3, 4]] = False

    def humansd(g, d, vis):  # COCOevalSimilarity.computeSimilarity, weightedCosineSimilarity, fixed y typo
        def norm(v):
            v = (v - v.min()) / (v.max() - v.min())
            return v / np.sqrt((v ** 2).sum())
        xg, yg = norm(g[vis, 0] / COCO_SIGMAS[vis]), norm(g[vis, 1] / COCO_SIGMAS[vis])
        xd, yd = norm(d[vis, 0] / COCO_SIGMAS[vis]), norm(d[vis, 1] / COCO_SIGMAS[vis])
        g_, d_ = np.concatenate([xg, yg]), np.concatenate([xd, yd])
        return g_ @ d_ / np.linalg.norm(g_) / np.linalg.norm(d_)

    sim = cosine_similarity_matrix(pred[None], gt[None], visible[None], sigmas=COCO_SIGMAS)
    assert sim[0, 0] == pytest.approx(humansd(gt, pred, visible), rel=1e-12)
    # A missing predicted point costs its share of the labelled points.
    missing = pred.copy()
    missing[0] = np.nan
    both = visible.copy()
    both[0] = False
    sim = cosine_similarity_matrix(missing[None], gt[None], visible[None], sigmas=COCO_SIGMAS)
    assert sim[0, 0] == pytest.approx(humansd(gt, pred, both) * 14 / 15, rel=1e-12)
    assert cosine_similarity_matrix(pred[None], gt[None], np.zeros((1, 17), bool))[0, 0] == 0


def test_target_on_another_canvas_is_scaled():
    target = _sequence()
    big = target.copy()
    big.keypoints *= 2
    big.size = (1280, 960)
    fitted, notes = fit_target(big, (640, 480))
    np.testing.assert_allclose(fitted.keypoints, target.keypoints, atol=1e-4)
    assert notes == []
    assert score_adherence(target.copy(), big).metrics["pck@0.05"] == 1.0
    wide = big.copy()
    wide.size = (1280, 480)
    assert "aspect ratio" in fit_target(wide, (640, 480))[1][0]


def test_frame_oks_and_boxes():
    target = _sequence(num_frames=1, people=2)
    present = target.scores[0] > 0.3
    boxes = person_boxes(target.keypoints[0], present)
    assert boxes[0, 3] - boxes[0, 1] == pytest.approx(HEIGHT)
    assert frame_oks(target.keypoints[0], target.scores[0], target.keypoints[0], target.scores[0]) == pytest.approx(1)
    assert frame_oks(target.keypoints[0][:1], target.scores[0][:1], target.keypoints[0],
                     target.scores[0]) == pytest.approx(0.5)
    assert np.isnan(frame_oks(target.keypoints[0], target.scores[0], target.keypoints[0], 0 * target.scores[0]))


def test_choose_detector_falls_back_to_mediapipe_and_says_so():
    config, note = choose_detector("auto")
    assert config.name == "mediapipe" and "flatters" in note
    config, note = choose_detector("auto", pose_model="dw.onnx", max_people=2)
    assert config.name == "dwpose" and config.max_people == 2 and config.options["pose_model"] == "dw.onnx"
    from holdpose.errors import HoldposeError

    with pytest.raises(HoldposeError, match="weights"):
        choose_detector("dwpose")
    with pytest.raises(HoldposeError, match="unknown detector"):
        choose_detector("openpose")


def test_fast_matching_equals_match_people():
    from holdpose.evaluate.adherence import match_frame
    from holdpose.evaluate.keypoints import match_people

    rng = np.random.default_rng(3)
    for shape in [(1, 1), (1, 3), (4, 1), (0, 2), (2, 0), (3, 3)]:
        sim = rng.uniform(0, 1, shape)
        fast, ref = match_frame(sim), match_people(sim)
        assert fast.pairs.tolist() == ref.pairs.tolist(), shape
        np.testing.assert_array_equal(fast.gt_oks, ref.gt_oks)
        assert fast.missed.tolist() == ref.missed.tolist() and fast.unmatched.tolist() == ref.unmatched.tolist()
