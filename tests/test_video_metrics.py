"""Video metrics of the seed papers (SEED_MODULES S7): known answers, tiny random networks, skip lines."""

import json
import logging

import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.evaluate.video_metrics import (
    cd_fvd, clip_temporal, clips, dynamic_degree, dynamic_fraction, fid_fvd, motion_smoothness, mse_p_norm,
    vbench_consistency, video_metrics)


def _angles(*degrees):
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r), np.zeros_like(r)], 1) * 3.0  # not unit length on purpose


def test_clip_temporal_is_the_mean_cosine_of_consecutive_frames():
    assert clip_temporal(_angles(0, 60, 60, 150)) == pytest.approx((0.5 + 1 + 0) / 3)


def test_vbench_consistency_averages_first_and_previous_similarity_clipped_at_zero():
    # frame 1: cos to first 0.5, to previous 0.5; frame 2 at 120°: to first -0.5 -> 0, to previous 0.5
    assert vbench_consistency(_angles(0, 60, 120)) == pytest.approx(((0.5 + 0.5) / 2 + (0 + 0.5) / 2) / 2)
    assert vbench_consistency(np.ones((5, 8))) == pytest.approx(1.0)


def test_mse_p_norm_divides_x_by_width_and_y_by_height():
    target = np.zeros((2, 3, 2))
    detected = target + [[64.0, 0.0]]  # 0.1 of a 640-px width
    detected[1] = target[1] + [0.0, 24.0]  # 0.05 of a 480-px height
    present = np.ones((2, 3), bool)
    present[1, 2] = False
    expected = (3 * 0.01 + 2 * 0.0025) / 5
    assert mse_p_norm(detected, target, present, (640, 480)) == pytest.approx(expected)
    assert np.isnan(mse_p_norm(detected, target, np.zeros((2, 3), bool), (640, 480)))


def _fade(n=9, size=16):
    levels = np.linspace(0, 240, n)
    return np.stack([np.full((size, size, 3), v) for v in levels]).astype(np.uint8)


def test_motion_smoothness_is_one_for_a_perfect_interpolator_and_drops_with_its_error():
    frames = _fade()
    average = lambda a, b: ((a.astype(np.float64) + b) / 2).round().astype(np.uint8)  # noqa: E731
    assert motion_smoothness(frames, average) == pytest.approx(1.0)
    off_by_ten = lambda a, b: np.clip(average(a, b).astype(int) + 10, 0, 255).astype(np.uint8)  # noqa: E731
    assert motion_smoothness(frames, off_by_ten) == pytest.approx(245 / 255)


def test_dynamic_degree_thresholds():
    frames = np.zeros((16, 256, 256, 3), np.uint8)  # threshold 6 px, 4 moving pairs needed
    calls = iter(range(100))

    def flow_moving_in(pairs, magnitude):
        def flow(a, b):
            index = next(calls)
            field = np.zeros((256, 256, 2))
            if index in pairs:
                field[..., 0] = magnitude
            return field
        return flow

    assert dynamic_degree(frames, flow_moving_in({0, 3, 7, 9}, 6.5))
    calls = iter(range(100))
    assert not dynamic_degree(frames, flow_moving_in({0, 3, 7}, 6.5))
    calls = iter(range(100))
    assert not dynamic_degree(frames, flow_moving_in(set(range(15)), 5.9))
    assert dynamic_fraction([True, False, False, True]) == 0.5


def test_frechet_based_distances_known_answer():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    assert fid_fvd(a, a) == pytest.approx(0.0, abs=1e-6)
    assert cd_fvd(a + [3.0, 0, 0, 0], a) == pytest.approx(9.0, rel=1e-6)  # same covariance, mean shifted by 3
    assert clips(np.zeros((40, 2, 2, 3))).shape == (2, 16, 2, 2, 3)


# --- tiny random networks saved to disk ---------------------------------------------------------------


def _tiny_clip(folder):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=99, max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8), projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _tiny_dino(folder):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    ViTModel(ViTConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                       image_size=32, patch_size=8)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _tiny_videomae(folder):
    from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=8, num_frames=16, tubelet_size=2, hidden_size=32,
                                 intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)).save_pretrained(
        folder)
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_networks(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("video-metric-nets")
    return {"clip": _tiny_clip(root / "clip"), "dino": _tiny_dino(root / "dino"),
            "videomae": _tiny_videomae(root / "videomae")}


def test_tiny_networks_give_the_known_answers_on_a_still_video(tiny_networks, caplog):
    rng = np.random.default_rng(1)
    still = np.repeat(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8), 32, axis=0)
    with caplog.at_level(logging.WARNING):
        out = video_metrics(still, reference_frames=still, clip_model=tiny_networks["clip"],
                            dino_model=tiny_networks["dino"], videomae_model=tiny_networks["videomae"],
                            interpolate=lambda a, b: a, flow=lambda a, b: np.zeros(a.shape[:2] + (2,)))
    for name in ("clip_temporal", "background_consistency", "subject_consistency", "motion_smoothness"):
        assert out[name] == pytest.approx(1.0, abs=1e-6), name
    assert out["dynamic_degree"] is False
    assert out["cd_fvd"] == pytest.approx(0.0, abs=1e-4)  # a video against itself
    assert set(out["skipped"]) <= {"fid64"}  # pytorch-fid and its weights are not installed here


def test_changing_frames_lower_the_tiny_clip_scores(tiny_networks):
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    out = video_metrics(noise, clip_model=tiny_networks["clip"], dino_model=tiny_networks["dino"])
    assert out["clip_temporal"] < 0.9999 and out["subject_consistency"] < 0.9999


def test_without_networks_every_metric_is_skipped_with_one_line(caplog, tmp_path):
    frames = _fade(6)
    with caplog.at_level(logging.WARNING, logger="holdpose.evaluate.video_metrics"):
        out = video_metrics(frames, reference_frames=frames, clip_model=tmp_path / "nothing-here")
    assert all(out[name] is None for name in ("clip_temporal", "subject_consistency", "motion_smoothness",
                                              "dynamic_degree", "fid64", "cd_fvd"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6 and all(line.startswith("skipped ") and "\n" not in line for line in lines)
    assert any("nothing-here" in line for line in lines)


def test_holdpose_evaluate_runs_them_from_model_folders(tiny_networks, tmp_path):
    """evaluate_video with --dino-model / --videomae-model: a still video against itself is
    perfectly consistent and at CD-FVD 0; the metrics land in metrics.json with their definitions."""
    from holdpose.evaluate.report import write_report
    from holdpose.evaluate.run import evaluate_video
    from holdpose.io.video import VideoWriter

    rng = np.random.default_rng(3)
    still = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "still.mp4", fps=8, size=(32, 32)) as writer:
        for _ in range(32):
            writer.write(still)
    ev = evaluate_video(tmp_path / "still.mp4", ground_truth=tmp_path / "still.mp4", detector=None,
                        dino_model=tiny_networks["dino"], videomae_model=tiny_networks["videomae"], progress=False)
    assert ev.metrics["subject_consistency"] == pytest.approx(1.0, abs=1e-6)
    assert ev.metrics["cd_fvd"] == pytest.approx(0.0, abs=1e-4)
    assert "clip" in ev.skipped and "fid64" in ev.skipped  # not asked for: one line each
    write_report(ev, tmp_path / "report")
    doc = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert "VideoMAE" in doc["definitions"]["cd_fvd"] and doc["subject_consistency"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(HoldposeError, match="ground-truth"):
        evaluate_video(tmp_path / "still.mp4", detector=None, videomae_model=tiny_networks["videomae"],
                       progress=False)
