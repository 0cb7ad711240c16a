"""evaluate_video, the HTML/JSON report, compare and the CLI subcommands, on small synthetic videos.

Re-detection uses a stand-in detector (a DetectorConfig whose detector returns given
poses) so these tests run in seconds; the real MediaPipe path is in the slow tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import fixture_path
from holdpose.detect.base import PoseDetector
from holdpose.detect.extract import DetectorConfig
from holdpose.errors import HoldposeError
from holdpose.cli import build_parser
from holdpose.evaluate.compare import compare
from holdpose.evaluate.report import write_report
from holdpose.evaluate.run import evaluate_video
from holdpose.io.video import FrameSource, VideoWriter
from holdpose.sequence import PoseSequence

SIZE = (128, 96)
FRAMES = 8


def _texture(seed=0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 1, (SIZE[1] // 8, SIZE[0] // 8, 3)).astype(np.float32)
    return np.clip(40 + 160 * cv2.resize(small, SIZE, interpolation=cv2.INTER_CUBIC), 40, 200).astype(np.uint8)


def _write_video(path: Path, frames) -> Path:
    with VideoWriter(path, fps=8, size=SIZE) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture
def videos(tmp_path) -> dict[str, Path]:
    moving = [np.roll(_texture(), 2 * t, axis=1) for t in range(FRAMES)]
    flickered = [np.clip(f.astype(int) + (12 if t % 2 else 0), 0, 255).astype(np.uint8) for t, f in enumerate(moving)]
    still = [_texture(1)] * FRAMES
    still_flickered = [np.clip(f.astype(int) + (12 if t % 2 else 0), 0, 255).astype(np.uint8) for t, f in enumerate(still)]
    return {"gt": _write_video(tmp_path / "gt.mp4", moving), "flicker": _write_video(tmp_path / "flicker.mp4", flickered),
            "still": _write_video(tmp_path / "still.mp4", still),
            "still_flicker": _write_video(tmp_path / "still_flicker.mp4", still_flickered)}


def _target() -> PoseSequence:
    """One person whose 17 body points span 20..80 px in y (height 60) on the 128x96 canvas."""
    rng = np.random.default_rng(0)
    seq = PoseSequence.empty(FRAMES, 1, size=SIZE, fps=8)
    kp = rng.uniform([40, 25], [90, 75], (133, 2))
    kp[0], kp[15] = [64, 20], [60, 80]
    seq.keypoints[:, 0] = kp + np.arange(FRAMES)[:, None, None] * np.array([1.0, 0])
    seq.scores[:] = 0.9
    seq.track_ids[:] = 0
    return seq


class _GivenPoses(PoseDetector):
    def __init__(self, poses: PoseSequence):
        self.poses, self.t = poses, 0

    def __call__(self, image):
        keep = self.poses.track_ids[self.t] >= 0
        out = self.poses.keypoints[self.t][keep], self.poses.scores[self.t][keep]
        self.t += 1
        return out


@dataclass
class GivenPoses(DetectorConfig):
    """A detector config whose detector returns ``poses`` frame by frame (in-process only)."""

    poses: PoseSequence | None = None

    def build(self, *, video: bool):
        return _GivenPoses(self.poses)


def _shifted(target: PoseSequence, shift: float) -> GivenPoses:
    detected = target.copy()
    detected.keypoints += np.array([shift, 0], np.float32)
    return GivenPoses("given", 1, {}, detected)


# --- evaluate_video -------------------------------------------------------------------------


def test_identical_videos_score_perfectly(videos):
    ev = evaluate_video(videos["gt"], ground_truth=videos["gt"], detector=None, progress=False)
    assert ev.metrics["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert ev.metrics["psnr"] == 100.0  # capped
    assert ev.metrics["l1"] == 0.0
    assert ev.metrics["flicker"] == pytest.approx(ev.metrics["ground_truth_flicker"])  # the content's own
    assert ev.metrics["flicker_score"] == pytest.approx((255 - ev.metrics["flicker"]) / 255)
    assert np.isnan(ev.per_frame["flicker"][0]) and len(ev.per_frame["ssim"]) == FRAMES
    assert "adherence" in ev.skipped and ev.detected is None


def test_injected_flicker_shows_in_the_video_metrics(videos):
    # A still scene, +12 on every other frame: flickering is about 12 (H.264 rounds a
    # little) against the still ground truth's about 0, the warping error about (12/255)^2.
    ev = evaluate_video(videos["still_flicker"], ground_truth=videos["still"], detector=None, progress=False)
    assert ev.metrics["ground_truth_flicker"] < 0.5
    assert ev.metrics["flicker"] == pytest.approx(12, abs=1.5)
    assert ev.metrics["warp_error"] == pytest.approx((12 / 255) ** 2, rel=0.3)
    # On moving content too, the worst frames by SSIM are the brightened ones.
    ev = evaluate_video(videos["flicker"], ground_truth=videos["gt"], detector=None, progress=False)
    assert ev.metrics["flicker"] > ev.metrics["ground_truth_flicker"]
    assert ev.metrics["ssim"] < 1 and ev.metrics["psnr"] < 40
    assert [w.metric for w in ev.worst_frames] == ["ssim"] * 4
    assert all(w.index % 2 == 1 for w in ev.worst_frames)  # the brightened frames are the worst
    assert len({w.index for w in ev.worst_frames}) == 4
    assert abs(ev.worst_frames[0].index - ev.worst_frames[1].index) >= 4  # half a second apart when possible


def test_evaluate_with_target_scores_the_shift(videos):
    target = _target()
    ev = evaluate_video(videos["gt"], target=target, detector=_shifted(target, 4.5), workers=1, progress=False)
    # Height 60 px: PCK thresholds 3, 6 and 12 px for a 4.5 px shift.
    assert (ev.metrics["pck@0.05"], ev.metrics["pck@0.1"], ev.metrics["pck@0.2"]) == pytest.approx((0, 1, 1))
    assert ev.metrics["mse_p"] == pytest.approx(4.5 ** 2, rel=1e-4)
    assert ev.metrics["pce"] == 0 and ev.metrics["cap"] == pytest.approx(1)
    assert ev.metrics["keypoint_jitter"] == pytest.approx(0, abs=1e-3)  # the poses move at constant speed
    assert ev.detected.num_frames == FRAMES and ev.worst_frames[0].metric == "oks"
    assert ev.notes[0].startswith("detector: given")


def test_learned_metrics_with_a_custom_feature_extractor(videos):
    from holdpose.evaluate.fidelity import frechet_distance

    projection = np.random.default_rng(0).normal(0, 1, (16 * 16 * 3, 8))

    def features(frames):
        import cv2

        small = np.stack([cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in frames])
        return small.reshape(len(frames), -1).astype(np.float64) / 255 @ projection

    ev = evaluate_video(videos["flicker"], ground_truth=videos["gt"], detector=None, fid_features=features,
                        progress=False)
    out = np.concatenate([features(np.stack(list(FrameSource(videos["flicker"]))))])
    gt = features(np.stack(list(FrameSource(videos["gt"]))))
    assert ev.metrics["fid"] == pytest.approx(frechet_distance(out, gt), rel=1e-9)
    assert "kid" in ev.metrics and "lpips" in ev.skipped


def test_missing_weights_and_inputs_fail_before_the_pass(videos, tmp_path):
    with pytest.raises(HoldposeError, match="ground-truth"):
        evaluate_video(videos["gt"], lpips=True, detector=None, progress=False)
    with pytest.raises(HoldposeError, match="install|not found"):  # torch, lpips or the AlexNet weights
        evaluate_video(videos["gt"], ground_truth=videos["gt"], lpips=True, detector=None, progress=False)
    with pytest.raises(HoldposeError, match="not found"):
        evaluate_video(videos["gt"], ground_truth=videos["gt"], fid_features=tmp_path / "missing.onnx",
                       detector=None, progress=False)
    with pytest.raises(HoldposeError, match="no such"):
        evaluate_video(tmp_path / "nothing.mp4", detector=None, progress=False)


# --- the report ------------------------------------------------------------------------------


def test_report_files_exist_and_reference_their_plots(videos, tmp_path):
    target = _target()
    ev = evaluate_video(videos["flicker"], target=target, ground_truth=videos["gt"], detector=_shifted(target, 4.5),
                        workers=1, progress=False)
    files = write_report(ev, tmp_path / "report")
    page = files["html"].read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    for name in ("plots/per_frame.png", "plots/keypoint_error.png", "frames/worst_1.png"):
        assert name in images, name
    for name in images:
        assert (tmp_path / "report" / name).stat().st_size > 1000, name
    doc = json.loads((tmp_path / "report" / "metrics.json").read_text())
    for key in ("ssim", "psnr", "l1", "oks_ap", "oks_ar", "cap", "pce", "mse_p", "pck@0.05", "pck@0.1", "pck@0.2",
                "flicker", "flicker_score", "warp_error", "keypoint_jitter"):
        assert isinstance(doc[key], float), key
        assert len(doc["per_frame"].get(key, [0] * FRAMES)) == FRAMES
    assert doc["per_frame"]["flicker"][0] is None  # frame 0 has no previous frame
    assert set(doc["per_part"]) == {"body", "feet", "face", "hands"}
    assert len(doc["per_keypoint"]["error_px"]) == 133
    assert doc["definitions"]["cap"].startswith("cosine-similarity AP")


# --- compare -----------------------------------------------------------------------------------


def test_compare_writes_a_playable_video_and_one_table(videos, tmp_path):
    target = _target()
    files = compare([videos["gt"], videos["flicker"]], target, tmp_path / "cmp", ground_truth=videos["gt"],
                    detector=_shifted(target, 2.0), workers=1, progress=False)
    source = FrameSource(files["video"])
    frames = list(source)
    assert len(frames) == FRAMES == source.num_frames
    assert source.size == (3 * SIZE[0] + 8, SIZE[1] + 28)  # target + two videos, 4 px gaps, label bar
    doc = json.loads(files["metrics"].read_text())
    assert [v["label"] for v in doc["videos"]] == ["gt", "flicker"]
    assert doc["videos"][0]["ssim"] == pytest.approx(1.0)
    assert doc["videos"][1]["flicker"] > doc["videos"][0]["flicker"]
    page = files["html"].read_text()
    assert "compare.mp4" in page and "<b>" in page and 'poster="still.png"' in page
    assert page.count("still.png\"") == 2  # the video's poster and a link: the frame is shown once


# --- CLI ---------------------------------------------------------------------------------------


def _run_cli(*argv):
    """holdpose's own parser; the handler is called directly so a HoldposeError reaches the test."""
    args = build_parser().parse_args(["-q", *map(str, argv)])
    args.func(args)


def test_cli_evaluate_writes_the_report(videos, tmp_path, capsys):
    _run_cli("evaluate", videos["flicker"], "--ground-truth", videos["gt"], "--detector", "none",
             "-o", tmp_path / "rep")
    assert (tmp_path / "rep" / "index.html").exists() and (tmp_path / "rep" / "metrics.json").exists()
    out = capsys.readouterr().out
    assert "index.html" in out and "ssim" in out and "flicker" in out


def test_cli_user_errors(videos, tmp_path):
    with pytest.raises(HoldposeError, match="no such"):
        _run_cli("evaluate", tmp_path / "missing.mp4", "--detector", "none", "-o", tmp_path / "rep")
    with pytest.raises(HoldposeError, match="ground-truth"):
        _run_cli("evaluate", videos["gt"], "--lpips", "--detector", "none", "-o", tmp_path / "rep")
    with pytest.raises(HoldposeError, match="labels"):
        _run_cli("compare", videos["gt"], "--target", tmp_path / "t.json", "--labels", "a", "b", "-o", tmp_path / "c")
    (tmp_path / "file").write_text("x")
    with pytest.raises(HoldposeError, match="not a folder"):
        _run_cli("evaluate", videos["gt"], "--detector", "none", "-o", tmp_path / "file")
    with pytest.raises(SystemExit):
        _run_cli("evaluate", videos["gt"], "--min-score", "2", "-o", tmp_path / "rep")


# --- real detector (slow) ------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_real_video_against_its_own_poses(tmp_path):
    from holdpose.detect.extract import extract_poses
    from holdpose.io.posefile import save_poses

    src = fixture_path("videos", "dance_musepose_dance.mp4")  # full body: no points guessed off the canvas
    clip = tmp_path / "dance.mp4"
    with VideoWriter(clip, fps=24, size=(288, 512)) as writer:
        for frame in FrameSource(src, short_side=288, stop=48):
            writer.write(frame)
    poses = tmp_path / "poses.npz"
    save_poses(extract_poses(clip, progress=False), poses)
    _run_cli("evaluate", clip, "--target", poses, "--ground-truth", clip, "-o", tmp_path / "rep")
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert doc["ssim"] == pytest.approx(1.0) and doc["pce"] == 0
    assert doc["oks_ap"] > 0.8 and doc["pck@0.2"] > 0.9  # the same detector on the same frames


@pytest.mark.slow
def test_cli_evaluate_detector_on_coco_fixtures(tmp_path):
    annotations = fixture_path("images", "annotations.json")
    _run_cli("evaluate-detector", annotations.parent, annotations, "-o", tmp_path / "det")
    doc = json.loads((tmp_path / "det" / "metrics.json").read_text())
    assert doc["top-down/people"] == 6 and doc["top-down/mean_oks"] > 0.5
    assert (tmp_path / "det" / "images" / "785.png").exists()


def test_fid_with_an_onnx_feature_model(videos, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from holdpose.evaluate.features import OnnxImageFeatures
    from holdpose.evaluate.fidelity import frechet_distance

    # A tiny "network": 8x8 average pooling of the normalised image, flattened by holdpose.
    node = helper.make_node("AveragePool", ["image"], ["features"], kernel_shape=[64, 64], strides=[64, 64])
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             ["n", 3, 128, 128])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 3, 2, 2])])
    path = tmp_path / "pool.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    extractor = OnnxImageFeatures(path, input_size=(128, 128))
    ev = evaluate_video(videos["flicker"], ground_truth=videos["gt"], detector=None, fid_features=extractor,
                        progress=False)
    out = extractor(np.stack(list(FrameSource(videos["flicker"]))))
    assert out.shape == (FRAMES, 12)
    assert ev.metrics["fid"] == pytest.approx(frechet_distance(out, extractor(np.stack(list(FrameSource(videos["gt"]))))))


def test_learned_metrics_cover_every_compared_frame(videos, tmp_path):
    """A ground truth shorter than the output: features of exactly the common frames."""
    from holdpose.evaluate.run import LEARNED_BATCH

    short = _write_video(tmp_path / "short.mp4", list(FrameSource(videos["gt"]))[:5])
    seen = []

    def features(frames):
        seen.append(len(frames))
        return np.random.default_rng(len(seen)).normal(0, 1, (len(frames), 4))

    ev = evaluate_video(videos["flicker"], ground_truth=short, detector=None, fid_features=features, progress=False)
    assert sum(seen) == 2 * 5 and max(seen) <= LEARNED_BATCH  # output and ground truth, 5 frames each
    assert "fid" in ev.metrics and ev.frames == {"output": FRAMES, "ground_truth": 5}
    assert any("ground truth 5" in n or "first 5" in n for n in ev.notes)
