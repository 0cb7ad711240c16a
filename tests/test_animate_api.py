"""holdpose.animate.animate(): one entry for every backend, with the registry behind it.
The warp backend runs here for real on a real photo; the diffusion backends' runs through
the same path are in test_animate_cli.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from holdpose.animate import animate
from holdpose.animate.base import Animator
from holdpose.animate.options import Options, option
from holdpose.animate.registry import BACKENDS, backend_names, get_backend
from holdpose.errors import HoldposeError
from holdpose.io.posefile import load_poses
from holdpose.io.video import FrameSource, read_image
from holdpose.refine.keyframes import load_builtin_motion
from holdpose.sequence import PoseSequence

from conftest import interrupted_after_frames, random_sequence


@pytest.fixture(scope="module")
def wave() -> PoseSequence:
    from holdpose.refine.timeline import resample

    return resample(load_builtin_motion("wave"), 4)  # 12 frames


@pytest.fixture(scope="module")
def small_astronaut() -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


def test_registry_names_every_backend_once_and_loads_them():
    assert backend_names() == list(BACKENDS) and len(set(backend_names())) == len(BACKENDS)
    for name in backend_names():
        cls = get_backend(name)
        assert issubclass(cls, Animator) and cls.name == name
        for options_class in (cls.options_class, cls.model_options_class):
            assert issubclass(options_class, Options) and dataclasses.is_dataclass(options_class)
    with pytest.raises(HoldposeError, match="unknown backend 'magic'; choose one of warp"):
        get_backend("magic")


def test_warp_through_animate_writes_video_poses_and_cleans_up(tmp_path, small_astronaut, wave):
    result = animate(small_astronaut, wave, tmp_path / "out.mp4", progress=False)
    video = FrameSource(result.video_path)
    assert (video.num_frames, video.size, video.fps) == (12, (256, 256), 4)
    used = load_poses(result.poses_path)
    assert result.poses_path == tmp_path / "out.poses.json" and used.size == (256, 256) and used.num_frames == 12
    # aligned to the photo: the poses moved onto the astronaut, not where the wave was drawn
    assert np.abs(used.keypoints[0, 0, 5] - wave.keypoints[0, 0, 5]).max() > 5
    # the warp puppet is cheap: its frames are not kept unless asked for
    assert result.frames_dir is None and not (tmp_path / "out.frames").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out.poses.json"]


def test_warp_resumes_an_interrupted_run_to_the_same_frames(tmp_path, small_astronaut, wave, monkeypatch):
    whole = animate(small_astronaut, wave, tmp_path / "whole.mp4", keep_frames=True, progress=False)
    with interrupted_after_frames(monkeypatch, 5), pytest.raises(KeyboardInterrupt):
        animate(small_astronaut, wave, tmp_path / "cut.mp4", progress=False)
    assert len(list((tmp_path / "cut.frames" / "frames").glob("*.png"))) == 5  # kept for the rerun
    resumed = animate(small_astronaut, wave, tmp_path / "cut.mp4", keep_frames=True, progress=False)
    assert resumed.resumed_from == 5
    for i in range(12):
        name = f"frame_{i:06d}.png"
        assert np.array_equal(read_image(resumed.frames_dir / "frames" / name),
                              read_image(whole.frames_dir / "frames" / name)), name


def test_person_selects_one_slot(tmp_path, small_astronaut):
    two = random_sequence(num_frames=3, num_people=2, size=(256, 256), missing=0.0)
    two.keypoints[:] = np.clip(two.keypoints, 10, 246)
    result = animate(small_astronaut, two, tmp_path / "p1.mp4", align=False, person=1, progress=False)
    used = load_poses(result.poses_path)
    assert used.num_people == 1
    np.testing.assert_allclose(used.keypoints[:, 0, :17], two.keypoints[:, 1, :17], atol=0.01)
    with pytest.raises(HoldposeError, match="person 2 is not a track id of the poses; they have 0, 1"):
        animate(small_astronaut, two, tmp_path / "p2.mp4", align=False, person=2, progress=False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(backend="magic"), "unknown backend 'magic'"),
    (dict(prompt="a dancer"), "unknown option 'prompt' for the warp backend; it takes: no options"),
    (dict(backend="controlnet", window=8), "unknown option 'window' for the controlnet backend"),
    (dict(backend="controlnet", strength=0.5), "strength (--strength) needs init frames"),
    (dict(backend="controlnet", guidance_scale=float("nan")), "guidance_scale (--guidance) must be >= 0"),
    (dict(backend="animatediff", window=4, stride=8), "stride (--stride) 8 is longer"),
    (dict(seed=-1), "seed must be an integer"),
    (dict(output="out.gif"), "animate writes an .mp4 video"),
])
def test_bad_calls_fail_before_anything_is_read_or_written(tmp_path, kwargs, message):
    """Checked first: the reference and poses below do not even exist."""
    output = tmp_path / kwargs.pop("output", "out.mp4")
    with pytest.raises(HoldposeError) as err:
        animate(tmp_path / "missing.png", tmp_path / "missing.json", output, progress=False, **kwargs)
    assert message in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_new_backend_is_one_class_and_one_registry_line(tmp_path, small_astronaut, wave, monkeypatch):
    """What docs/backends.md promises: a module with an Animator subclass and its options, one
    line in BACKENDS, and animate() runs it through the same path (options checked, poses
    aligned, frames resumable, video and poses written)."""
    import sys
    import types

    @dataclasses.dataclass
    class TintOptions(Options):
        level: int = option(128, "grey level of every frame")

        def check(self):
            if not 0 <= self.level <= 255:
                raise HoldposeError(f"level must be in [0, 255], got {self.level}")
            return self

    class TintAnimator(Animator):
        name = "tint"
        options_class = TintOptions

        @classmethod
        def check_options(cls, model_options, options):
            super().check_options(model_options, options)
            TintOptions.from_kwargs(options, cls.name).check()

        def __call__(self, reference, poses, *, seed=0, callback=None, level=128):
            for _ in range(poses.num_frames):
                yield np.full_like(reference, level)

    module = types.ModuleType("tint_backend")
    module.TintAnimator = TintAnimator
    monkeypatch.setitem(sys.modules, "tint_backend", module)
    monkeypatch.setitem(BACKENDS, "tint", "tint_backend:TintAnimator")

    result = animate(small_astronaut, wave, tmp_path / "tint.mp4", backend="tint", level=200, progress=False)
    frames = list(FrameSource(result.video_path))
    assert len(frames) == 12 and abs(float(frames[3].mean()) - 200) < 2
    with pytest.raises(HoldposeError, match="level must be in"):
        animate(small_astronaut, wave, tmp_path / "bad.mp4", backend="tint", level=300, progress=False)
    with pytest.raises(HoldposeError, match="unknown option 'lvl' for the tint backend; it takes: level"):
        animate(small_astronaut, wave, tmp_path / "bad.mp4", backend="tint", lvl=3, progress=False)


def test_a_backend_can_say_what_its_reference_is(tmp_path, small_astronaut, wave, monkeypatch):
    """``Animator.load_character``: a backend whose reference is not a photo (PoseCrafter's tuned
    folder) returns its own Character; animate() then aligns to that character's pose and uses its
    image as the canvas. Photos still go the default way."""
    import sys
    import types

    from holdpose.animate.character import Character
    from holdpose.io.video import write_image

    folder = tmp_path / "character"
    write_image(folder / "look.png", small_astronaut)
    seen = []

    class FolderAnimator(Animator):
        name = "folder"
        reference_help = "a folder holding look.png"

        @classmethod
        def load_character(cls, reference):
            seen.append(reference)
            return Character.load(tmp_path / reference / "look.png")

        def __call__(self, reference, poses, *, seed=0, callback=None):
            for _ in range(poses.num_frames):
                yield reference

    module = types.ModuleType("folder_backend")
    module.FolderAnimator = FolderAnimator
    monkeypatch.setitem(sys.modules, "folder_backend", module)
    monkeypatch.setitem(BACKENDS, "folder", "folder_backend:FolderAnimator")
    monkeypatch.chdir(tmp_path)
    result = animate("character", wave, tmp_path / "f.mp4", backend="folder", progress=False)
    assert seen == ["character"] and result.size == (256, 256) and result.num_frames == 12
    assert Animator.load_character(small_astronaut) is None  # the default: animate() reads the photo itself
