"""Closed-loop adherence in the run path: frames judged as they are written, drifting ones made
again, every try recorded, resumable. The diffusion path runs with the tiny random-weight models;
a detector stub stands in for MediaPipe (random weights draw no person) and a wrapper makes
chosen frames drift. The warp path runs for real on a real photo with MediaPipe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from holdpose.animate.base import Animator, retry_seed
from holdpose.animate.resume import FRAME_NAME, VERDICTS_NAME, run_animation
from holdpose.errors import HoldposeError
from holdpose.evaluate.closed_loop import VerifySettings, closed_loop_summary, read_records
from holdpose.evaluate.verdicts import Thresholds
from holdpose.io.video import read_image

from conftest import interrupted_after_frames

FRAMES = 5


@pytest.fixture(scope="module")
def controlnet():
    pytest.importorskip("diffusers")
    from diffusion_fixtures import single_torch_thread, tiny_models

    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    with single_torch_thread():
        paths = tiny_models()
        yield ControlNetAnimator(paths["model"], paths["controlnet"], device="cpu")


@pytest.fixture(scope="module")
def still():
    """One standing pose held for FRAMES frames on the tiny models' 64x64 canvas."""
    from diffusion_fixtures import walking_poses

    poses = walking_poses(FRAMES)
    poses.keypoints[:] = poses.keypoints[:1]
    poses.scores[:] = poses.scores[:1]
    return poses


class SeesThePose:
    """Detector stub: finds the held pose on any frame that is not blank."""

    def __init__(self, poses):
        self.keypoints, self.scores = poses.keypoints[0], poses.scores[0]

    def __call__(self, frame):
        if not frame.any():
            return np.zeros((0, 133, 2), np.float32), np.zeros((0, 133), np.float32)
        return self.keypoints, self.scores


class Drifting(Animator):
    """Wraps a backend; the first try of the frames in ``drift`` comes out blank (nobody in it).
    Its retries give the frame the backend would have made (so the final clip can be compared
    with a run that never drifted) and are logged."""

    name = "drifting"
    resumable = True
    can_regenerate = True

    def __init__(self, inner, drift):
        self.inner, self.drift, self.retries = inner, set(drift), []

    def config(self):
        return {"inner": self.inner.config(), "drift": sorted(self.drift)}

    def describe_options(self, **options):
        return self.inner.describe_options(**options)

    def __call__(self, reference, poses, *, seed=0, callback=None, start_frame=0, **options):
        for offset, frame in enumerate(self.inner(reference, poses, seed=seed, start_frame=start_frame, **options)):
            yield np.zeros_like(frame) if start_frame + offset in self.drift else frame

    def regenerate(self, reference, poses, index, *, seed, attempt, **options):
        self.retries.append((index, attempt))
        # the batch the frame was made in, as in the first try: the very frame a clean run has
        return next(iter(self.inner(reference, poses, seed=seed, start_frame=index, **options)))


def _settings(poses, **kwargs):
    return VerifySettings(detector=SeesThePose(poses), **kwargs)


def _frames(folder, count=FRAMES):
    return np.stack([read_image(folder / "frames" / FRAME_NAME.format(i)) for i in range(count)])


OPTIONS = dict(prompt="a dancer", num_inference_steps=2, guidance_scale=1.0, batch_size=2, resolution=64)


def test_exactly_the_drifting_frames_are_made_again_and_the_clip_equals_a_clean_run(controlnet, still, tmp_path):
    from diffusion_fixtures import reference_image

    reference = reference_image()
    clean = run_animation(controlnet, reference, still, tmp_path / "clean", seed=5, video=False,
                          verify=_settings(still), **OPTIONS)
    summary = closed_loop_summary(read_records(clean.output_dir / VERDICTS_NAME), FRAMES)
    assert summary["counts"]["held"] == FRAMES and summary["tries"] == FRAMES

    drifting = Drifting(controlnet, drift={1, 3})
    run = run_animation(drifting, reference, still, tmp_path / "drift", seed=5, video=False,
                        verify=_settings(still), **OPTIONS)
    assert drifting.retries == [(1, 1), (3, 1)]  # one retry each: the first held
    np.testing.assert_array_equal(_frames(run.output_dir), _frames(clean.output_dir))
    records = read_records(run.output_dir / VERDICTS_NAME)
    assert [records[i]["kept"] for i in range(FRAMES)] == [0, 1, 0, 1, 0]
    first = records[1]["tries"][0]
    assert first["drift"] and first["reason"] == "nobody detected" and first["detected"] == "0/1"
    assert records[1]["tries"][1]["seed"] == retry_seed(5, 1, 1) != 5 and not records[1]["drift"]
    manifest = json.loads(run.manifest_path.read_text())["parameters"]
    assert manifest["verify"]["thresholds"]["min_pck"] == 0.9 and manifest["verify"]["max_retries"] == 2


def test_a_frame_that_never_holds_keeps_its_best_try_and_says_so(controlnet, still, tmp_path):
    from diffusion_fixtures import reference_image

    class AlwaysBlank(Drifting):
        def regenerate(self, reference, poses, index, *, seed, attempt, **options):
            self.retries.append((index, attempt))
            return np.zeros_like(reference)

    drifting = AlwaysBlank(controlnet, drift={2})
    run = run_animation(drifting, reference_image(), still, tmp_path / "run", seed=5, video=False,
                        verify=_settings(still, max_retries=3), **OPTIONS)
    assert drifting.retries == [(2, 1), (2, 2), (2, 3)]
    record = read_records(run.output_dir / VERDICTS_NAME)[2]
    assert record["drift"] and record["kept"] == 0 and len(record["tries"]) == 4


def test_interrupted_verified_run_resumes_without_judging_again(controlnet, still, tmp_path, monkeypatch):
    from diffusion_fixtures import reference_image

    reference = reference_image()
    whole = run_animation(Drifting(controlnet, {1, 3}), reference, still, tmp_path / "whole", seed=5, video=False,
                          verify=_settings(still), **OPTIONS)
    first = Drifting(controlnet, {1, 3})
    with interrupted_after_frames(monkeypatch, 3), pytest.raises(KeyboardInterrupt):
        # frames 0, 1 (its blank first try, then the retry over it) are on disk when the 4th write stops the run
        run_animation(first, reference, still, tmp_path / "cut", seed=5, video=False, verify=_settings(still),
                      **OPTIONS)
    done_before = set(read_records(tmp_path / "cut" / VERDICTS_NAME))
    second = Drifting(controlnet, {1, 3})
    resumed = run_animation(second, reference, still, tmp_path / "cut", seed=5, video=False,
                            verify=_settings(still), **OPTIONS)
    assert all(index not in done_before for index, _ in second.retries)  # verified frames were not redone
    assert sorted(first.retries + second.retries) == [(1, 1), (3, 1)]
    np.testing.assert_array_equal(_frames(resumed.output_dir), _frames(whole.output_dir))
    assert read_records(resumed.output_dir / VERDICTS_NAME).keys() == set(range(FRAMES))


def test_other_verify_settings_are_another_run(controlnet, still, tmp_path):
    from diffusion_fixtures import reference_image

    reference = reference_image()
    run_animation(controlnet, reference, still, tmp_path / "run", seed=5, video=False, verify=_settings(still),
                  **OPTIONS)
    with pytest.raises(HoldposeError, match="verify.thresholds.min_pck: 0.9 -> 0.5"):
        run_animation(controlnet, reference, still, tmp_path / "run", seed=5, video=False,
                      verify=_settings(still, thresholds=Thresholds(min_pck=0.5)), **OPTIONS)
    with pytest.raises(HoldposeError, match="max_retries"):
        VerifySettings(max_retries=-1)


def test_controlnet_retries_raise_the_control_and_start_from_the_warp_frame(controlnet):
    options = dict(controlnet_scale=0.8, batch_size=4)
    first = controlnet.retry_options(np.zeros((64, 64, 3), np.uint8), options, 1)
    assert first == dict(controlnet_scale=0.8, batch_size=1)  # a new seed only
    controlnet.character = type("FakeCharacter", (), {"rig": None})()
    later = controlnet.retry_options(np.zeros((64, 64, 3), np.uint8), options, 3)
    assert later["controlnet_scale"] == pytest.approx(1.2) and later["strength"] == 0.75
    assert later["init"].name == "warp"
    del controlnet.character


def test_warp_with_verify_on_a_real_photo_records_every_frame(tmp_path):
    """The puppet holds its pose by construction: every frame judged with MediaPipe, none made again."""
    import cv2
    from skimage import data

    from holdpose.animate import animate
    from holdpose.refine.keyframes import load_builtin_motion
    from holdpose.refine.timeline import resample

    photo = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    wave = resample(load_builtin_motion("wave"), 3)  # 9 frames
    result = animate(photo, wave, tmp_path / "out.mp4", verify=VerifySettings(detector="mediapipe"), progress=False)
    records = read_records(result.verdicts_path)
    assert result.verdicts_path == tmp_path / "out.verdicts.jsonl" and sorted(records) == list(range(9))
    assert all(len(r["tries"]) == 1 and r["kept"] == 0 for r in records.values())  # the puppet cannot retry
    # a waist-up photo at 256 px whose waving forearm runs along the photo's edge: the head holds, the
    # re-detected shoulders and arm land 10-40 px from the target in the raised frames (PCK 0.45-0.73)
    for r in records.values():
        verdict = r["tries"][0]
        assert 0.4 < verdict["pck"] <= 1 and verdict["drift"] == (verdict["pck"] < 0.9) and verdict["detected"] == "1/1"


def test_report_shows_the_closed_loop_per_frame(tmp_path):
    """holdpose evaluate picks up OUT.verdicts.jsonl: counts and per-frame states in metrics.json,
    and a strip of one cell per frame in the page."""
    from holdpose.cli import main
    from holdpose.io.video import VideoWriter

    with VideoWriter(tmp_path / "v.mp4", fps=10, size=(64, 64)) as writer:
        for i in range(12):
            writer.write(np.full((64, 64, 3), 10 * i, np.uint8))
    held = {"attempt": 0, "drift": False, "reason": "", "pck": 1.0}
    lines = [{"frame": i, "kept": 0, "drift": False, "tries": [held]} for i in range(10)]
    lines[4] = {"frame": 4, "kept": 1, "drift": False,
                "tries": [{"attempt": 0, "drift": True, "reason": "nobody detected", "pck": None}, held]}
    lines[7] = {"frame": 7, "kept": 0, "drift": True, "tries": [{"attempt": 0, "drift": True, "reason": "x",
                                                                  "pck": 0.5}] * 3}
    (tmp_path / "v.verdicts.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"frame": 1')
    assert main(["-q", "evaluate", str(tmp_path / "v.mp4"), "--detector", "none", "-o", str(tmp_path / "r")]) == 0
    loop = json.loads((tmp_path / "r" / "metrics.json").read_text())["closed_loop"]
    assert loop["counts"] == {"held": 8, "regenerated": 1, "corrected": 0, "drifting": 1, "unjudged": 2}
    assert loop["tries"] == 8 + 2 + 3
    assert loop["per_frame"]["state"][4] == "regenerated" and loop["per_frame"]["tries"][7] == 3
    assert loop["per_frame"]["pck_before"][4] is None and loop["per_frame"]["pck_after"][4] == 1.0
    page = (tmp_path / "r" / "index.html").read_text()
    assert page.count('class="cell" style') == 12 + 4  # 12 frames, 4 legend keys
    assert "frame 4 (0.40 s): drifted, made again, holds, 2 tries" in page


def test_animate_verify_through_the_cli(tmp_path, capsys):
    import cv2
    from skimage import data

    from holdpose.cli import main
    from holdpose.io.video import write_image

    write_image(tmp_path / "ref.png", cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA))
    assert main(["-q", "keyframes", "wave", "-o", str(tmp_path / "wave.npz"), "--fps", "2"]) == 0
    capsys.readouterr()
    assert main(["-q", "animate", str(tmp_path / "ref.png"), str(tmp_path / "wave.npz"), "-o", str(tmp_path / "o.mp4"),
                 "--verify", "--min-pck", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "verified: " in out and "(6 tries)" in out and str(tmp_path / "o.verdicts.jsonl") in out
    assert main(["-q", "animate", str(tmp_path / "ref.png"), str(tmp_path / "wave.npz"), "-o", str(tmp_path / "p.mp4"),
                 "--max-retries", "4"]) == 2
    assert "--max-retries: only with --verify" in capsys.readouterr().err
