"""Window fusion (pure numpy) and resumable runs (any animator; both diffusion backends)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from holdpose.animate.base import Animator
from holdpose.animate.resume import fingerprint, manifest_differences, run_animation
from holdpose.animate.diffusion.windows import context_windows, fusion_weights, window_profile
from holdpose.errors import HoldposeError

# --- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_frames, length, stride", [
    (1, 16, 4), (16, 16, 4), (17, 16, 4), (40, 16, 8), (64, 16, 4), (100, 16, 16), (23, 5, 3), (9, 4, 1), (50, 7, 7),
])
@pytest.mark.parametrize("scheme", ["pyramid", "flat"])
def test_windows_cover_every_frame_and_weights_sum_to_one(num_frames, length, stride, scheme):
    windows = context_windows(num_frames, length, stride)
    covered = np.zeros(num_frames, int)
    for window in windows:
        assert len(window) == min(length, num_frames)  # the motion module always sees `length` frames
        assert np.array_equal(window, np.arange(window[0], window[0] + len(window)))
        covered[window] += 1
    assert (covered >= 1).all()
    assert windows[0][0] == 0 and windows[-1][-1] == num_frames - 1
    starts = [w[0] for w in windows]
    assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:]))
    weights = fusion_weights(windows, num_frames, scheme)
    total = np.zeros(num_frames)
    for window, weight in zip(windows, weights):
        assert weight.shape == window.shape and (weight > 0).all()
        total[window] += weight
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


def test_pyramid_profile_and_bad_windows():
    assert window_profile(5).tolist() == [1, 2, 3, 2, 1]
    assert window_profile(4).tolist() == [1, 2, 2, 1]
    assert context_windows(40, 16, 8)[1].tolist() == list(range(8, 24))
    for args in [(0, 16, 4), (10, 0, 1), (10, 4, 5), (10, 4, 0)]:
        with pytest.raises(ValueError):
            context_windows(*args)
    with pytest.raises(ValueError, match="in no window"):
        fusion_weights([np.arange(3)], 5)
    with pytest.raises(ValueError, match="scheme"):
        window_profile(4, "median")


def test_fusing_equal_predictions_changes_nothing():
    """If every window predicts the same per-frame value, fusion returns it exactly."""
    num_frames = 30
    truth = np.random.default_rng(0).normal(size=num_frames)
    windows = context_windows(num_frames, 8, 3)
    fused = np.zeros(num_frames)
    for window, weight in zip(windows, fusion_weights(windows, num_frames)):
        fused[window] += weight * truth[window]
    np.testing.assert_allclose(fused, truth, atol=1e-12)


# --- run_animation with a cheap animator ------------------------------------------------------


class CountingAnimator(Animator):
    """Frame i is a flat image of value (seed + 7 i) mod 256 plus the reference's mean; counts frames made."""

    name = "counting"

    def __init__(self, resumable=False):
        self.resumable = resumable
        self.made = 0

    def config(self):
        return {"kind": "test"}

    def __call__(self, reference, poses, *, seed=0, callback=None, start_frame=0, level=0, **options):
        for i in range(start_frame, poses.num_frames):
            self.made += 1
            yield np.full(reference.shape, (seed + 7 * i + level + int(reference.mean())) % 256, np.uint8)


class Interrupt(Exception):
    pass


def interrupt_after(k):
    def callback(index, frame):
        if index + 1 == k:
            raise Interrupt(f"stopped after {k} frames")
    return callback


def small_poses(num_frames=6):
    from diffusion_fixtures import walking_poses

    return walking_poses(num_frames, size=(32, 24))


@pytest.mark.parametrize("resumable", [True, False])
def test_interrupted_run_resumes_to_the_same_frames(tmp_path, resumable):
    from holdpose.io.video import FrameSource, read_image

    poses = small_poses(6)
    reference = np.full((24, 32, 3), 10, np.uint8)
    animator = CountingAnimator(resumable)
    with pytest.raises(Interrupt):
        run_animation(animator, reference, poses, tmp_path / "run", seed=3, level=1, callback=interrupt_after(4))
    assert len(list((tmp_path / "run" / "frames").glob("*.png"))) == 4
    assert not (tmp_path / "run" / "animation.mp4").exists()
    animator.made = 0
    run = run_animation(animator, reference, poses, tmp_path / "run", seed=3, level=1)
    assert run.resumed_from == 4
    assert animator.made == (2 if resumable else 6)  # a resumable animator skips the work
    whole = run_animation(CountingAnimator(), reference, poses, tmp_path / "whole", seed=3, level=1)
    for i in range(6):
        assert np.array_equal(read_image(run.frames_dir / f"frame_{i:06d}.png"),
                              read_image(whole.frames_dir / f"frame_{i:06d}.png"))
    video = FrameSource(run.video_path)
    assert video.num_frames == 6 and video.size == (32, 24)
    manifest = json.loads(run.manifest_path.read_text())["parameters"]
    assert manifest["seed"] == 3 and manifest["num_frames"] == 6 and manifest["backend"] == "counting"
    assert manifest["options"] == {"level": 1}


def test_rerun_with_other_parameters_refuses_unless_overwrite(tmp_path):
    poses = small_poses(3)
    reference = np.zeros((24, 32, 3), np.uint8)
    run_animation(CountingAnimator(), reference, poses, tmp_path / "run", seed=1, level=0, video=False)
    with pytest.raises(HoldposeError) as err:
        run_animation(CountingAnimator(), reference, poses, tmp_path / "run", seed=2, level=5, video=False)
    message = str(err.value)
    assert "seed: 1 -> 2" in message and "options.level" in message and "overwrite" in message
    moved = poses.copy()
    moved.keypoints[0, 0, 0, 0] += 1
    with pytest.raises(HoldposeError, match="poses_sha256"):
        run_animation(CountingAnimator(), reference, moved, tmp_path / "run", seed=1, level=0, video=False)
    run = run_animation(CountingAnimator(), reference, poses, tmp_path / "run", seed=2, level=5, video=False,
                        overwrite=True)
    assert run.resumed_from == 0 and run.video_path is None
    # the same parameters again: nothing to do
    animator = CountingAnimator(resumable=True)
    again = run_animation(animator, reference, poses, tmp_path / "run", seed=2, level=5, video=False)
    assert again.resumed_from == 3 and animator.made == 0


def test_frames_without_manifest_are_not_overwritten_silently(tmp_path):
    frames = tmp_path / "run" / "frames"
    frames.mkdir(parents=True)
    (frames / "frame_000000.png").write_bytes(b"x")
    with pytest.raises(HoldposeError, match="no manifest"):
        run_animation(CountingAnimator(), np.zeros((24, 32, 3), np.uint8), small_poses(2), tmp_path / "run")


def test_fingerprints_follow_content(tmp_path):
    a = np.zeros((2, 3), np.uint8)
    assert fingerprint(a) == fingerprint(a.copy()) != fingerprint(a + 1)
    file = tmp_path / "depth.png"
    file.write_bytes(b"one")
    before = fingerprint(str(file), paths=True)
    file.write_bytes(b"two")
    assert fingerprint(str(file), paths=True) != before
    assert fingerprint("pose", paths=True) == "pose"
    assert manifest_differences({"a": {"b": 1}}, {"a": {"b": 2}, "c": 3}) == ["a.b: 1 -> 2", "c: '<absent>' -> 3"]


# --- both diffusion backends through run_animation ------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    """The tiny models' folders, with torch on one thread."""
    pytest.importorskip("diffusers")
    from diffusion_fixtures import single_torch_thread, tiny_models

    with single_torch_thread():
        yield tiny_models()


def _diffusion_resume(tmp_path, animator, options, k):
    from diffusion_fixtures import reference_image, walking_poses

    from holdpose.io.video import read_image

    poses = walking_poses(5)
    reference = reference_image(poses.size)
    with pytest.raises(Interrupt):
        run_animation(animator, reference, poses, tmp_path / "run", seed=11, video=False,
                      callback=interrupt_after(k), **options)
    resumed = run_animation(animator, reference, poses, tmp_path / "run", seed=11, video=False, **options)
    whole = run_animation(animator, reference, poses, tmp_path / "whole", seed=11, video=False, **options)
    assert resumed.resumed_from == k
    for i in range(poses.num_frames):
        assert np.array_equal(read_image(resumed.frames_dir / f"frame_{i:06d}.png"),
                              read_image(whole.frames_dir / f"frame_{i:06d}.png")), f"frame {i}"
    manifest = json.loads(resumed.manifest_path.read_text())["parameters"]
    assert manifest["animator"]["device"] == "cpu" and manifest["options"]["prompt"] == "a dancer"
    with pytest.raises(HoldposeError, match="options.num_inference_steps: 2 -> 3"):
        run_animation(animator, reference, poses, tmp_path / "run", seed=11, video=False,
                      **{**options, "num_inference_steps": 3})


def test_controlnet_interrupted_and_resumed_equals_uninterrupted(tiny, tmp_path):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    animator = ControlNetAnimator(tiny["model"], tiny["controlnet"], device="cpu")
    # interrupted mid-batch (batch 2, after 3 frames): the resumed run re-makes the whole batch
    _diffusion_resume(tmp_path, animator, dict(prompt="a dancer", num_inference_steps=2, batch_size=2, resolution=64), k=3)


def test_animatediff_interrupted_and_resumed_equals_uninterrupted(tiny, tmp_path):
    from holdpose.animate.diffusion.animatediff import AnimateDiffAnimator

    animator = AnimateDiffAnimator(tiny["model"], tiny["controlnet"], motion_adapter=tiny["motion_adapter"],
                                   device="cpu")
    _diffusion_resume(tmp_path, animator, dict(prompt="a dancer", num_inference_steps=2, window=4, stride=2,
                                               guidance_scale=1.0, decode_chunk_size=2, resolution=64), k=3)
