"""Diffusion backends end to end with tiny random-weight models, offline.

The models are built from small configs and saved with ``save_pretrained``
(tests/diffusion_fixtures.py), then loaded through the same code a user's folders
go through. Beside sizes and counts, the tests pin the properties the backends
promise: same seed same frames, batched equals one at a time, the same noise for
every frame, and equality with diffusers' own pipelines given the same noise.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import reference_image, single_torch_thread, tiny_models, walking_poses  # noqa: E402

from holdpose.animate.base import Animator  # noqa: E402
from holdpose.errors import HoldposeError  # noqa: E402

STEPS = 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_torch_thread():
        yield


@pytest.fixture(scope="module")
def paths():
    return tiny_models()


@pytest.fixture(scope="module")
def controlnet(paths):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    return ControlNetAnimator(paths["model"], paths["controlnet"], device="cpu")


@pytest.fixture(scope="module")
def animatediff(paths):
    from holdpose.animate.diffusion.animatediff import AnimateDiffAnimator

    return AnimateDiffAnimator(paths["model"], paths["controlnet"], motion_adapter=paths["motion_adapter"],
                               device="cpu")


def run(animator, poses, reference=None, **options):
    reference = reference_image(poses.size) if reference is None else reference
    options.setdefault("num_inference_steps", STEPS)
    options.setdefault("resolution", min(poses.size))  # the tiny models' size, not SD 1.5's default 512
    return np.stack(list(animator(reference, poses, prompt="a dancer", **options)))


# --- frame by frame ------------------------------------------------------------------


def test_controlnet_frames_have_the_canvas_size_and_count(controlnet):
    poses = walking_poses(3, size=(66, 70))  # not a multiple of 8: generated at 64x64, resized back
    frames = run(controlnet, poses, batch_size=2)
    assert frames.shape == (3, 70, 66, 3) and frames.dtype == np.uint8
    assert controlnet.pose_style == "openpose_full"


def test_controlnet_same_seed_same_frames(controlnet):
    poses = walking_poses(2)
    a = run(controlnet, poses, seed=3)
    b = run(controlnet, poses, seed=3)
    c = run(controlnet, poses, seed=4, guidance_scale=1.0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_controlnet_batched_equals_one_at_a_time(controlnet):
    poses = walking_poses(5)
    batched = run(controlnet, poses, batch_size=4).astype(int)
    single = run(controlnet, poses, batch_size=1).astype(int)
    assert np.abs(batched - single).max() <= 1
    assert (batched != single).mean() < 1e-3


def test_controlnet_every_frame_starts_from_the_same_noise(controlnet):
    poses = walking_poses(1)
    still = poses[np.zeros(3, int)]  # the same pose three times
    frames = run(controlnet, still, batch_size=2).astype(int)
    assert np.array_equal(frames[0], frames[1])  # one batch: bit for bit
    assert np.abs(frames[0] - frames[2]).max() <= 1  # another batch size: up to float rounding


def test_controlnet_equals_the_tutorial_pipeline_with_a_fixed_seed(controlnet):
    """One diffusers pipeline call per frame with generator=manual_seed(seed) draws the same
    noise for every frame, so it must give holdpose's frames."""
    import torch
    from diffusers import StableDiffusionControlNetPipeline
    from PIL import Image

    from holdpose.render.openpose import render_pose_maps

    poses = walking_poses(2)
    ours = run(controlnet, poses, seed=7, batch_size=2, guidance_scale=6.0, controlnet_scale=0.8)
    parts = {**controlnet.pipe.components, "scheduler": controlnet.scheduler_for(None)}
    pipe = StableDiffusionControlNetPipeline(**parts, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for frame, pose_map in zip(ours, render_pose_maps(poses, "openpose_full")):
        out = pipe("a dancer", image=Image.fromarray(pose_map), num_inference_steps=STEPS, guidance_scale=6.0,
                   controlnet_conditioning_scale=0.8, generator=torch.Generator("cpu").manual_seed(7),
                   output_type="np", height=64, width=64).images[0]
        theirs = (out * 255).round().astype(np.uint8)
        assert np.abs(frame.astype(int) - theirs).max() <= 1


@pytest.mark.parametrize("scheduler", ["ddim", "unipc", "dpm++"] + [
    pytest.param(name, marks=pytest.mark.slow) for name in ("euler", "dpm++_karras", "pndm", "heun")])
def test_controlnet_schedulers_run_and_are_deterministic(controlnet, scheduler):
    poses = walking_poses(1)
    a = run(controlnet, poses, scheduler=scheduler, guidance_scale=1.0)
    b = run(controlnet, poses, scheduler=scheduler, guidance_scale=1.0)
    assert a.shape == (1, 64, 64, 3) and np.array_equal(a, b)


def test_multi_controlnet_with_own_images_and_scales(paths):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    animator = ControlNetAnimator(paths["model"], [paths["controlnet"], paths["controlnet2"]], device="cpu")
    poses = walking_poses(2)
    depth = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    frames = run(animator, poses, control_images=["pose", depth], controlnet_scale=[1.0, 0.5], guidance_scale=1.0)
    assert frames.shape == (2, 64, 64, 3)
    other = run(animator, poses, control_images=[depth], controlnet_scale=[1.0, 2.0], guidance_scale=1.0)
    assert not np.array_equal(frames, other)  # the second ControlNet's scale and images count
    with pytest.raises(HoldposeError, match="control_images"):
        run(animator, poses)  # a second ControlNet needs its images
    with pytest.raises(HoldposeError, match="controlnet_scale"):
        run(animator, poses, control_images=[depth], controlnet_scale=[1.0, 1.0, 1.0])


class StillAnimator(Animator):
    """Yields the reference for every pose: stands in for the warp animator as init."""

    name = "still"

    def __call__(self, reference, poses, *, seed=0, callback=None, **options):
        for _ in range(poses.num_frames):
            yield reference.copy()


def test_image_to_image_from_frames_and_from_an_animator(controlnet):
    poses = walking_poses(3)
    reference = reference_image(poses.size)
    txt2img = run(controlnet, poses, reference, guidance_scale=1.0)
    from_animator = run(controlnet, poses, reference, init=StillAnimator(), strength=0.5, batch_size=2,
                        guidance_scale=1.0)
    from_frames = run(controlnet, poses, reference, init=np.stack([reference] * 3), strength=0.5, batch_size=2,
                      guidance_scale=1.0)
    assert from_animator.shape == (3, 64, 64, 3)
    assert np.array_equal(from_animator, from_frames)
    assert not np.array_equal(from_animator, txt2img)
    # low strength keeps the init closer than high strength
    weak = run(controlnet, poses[:1], reference, init=StillAnimator(), strength=0.5, num_inference_steps=4,
               guidance_scale=1.0)
    strong = run(controlnet, poses[:1], reference, init=StillAnimator(), strength=1.0, num_inference_steps=4,
                 guidance_scale=1.0)
    err = lambda frames: np.abs(frames.astype(float) - reference).mean()  # noqa: E731
    assert err(weak) < err(strong)


def test_ip_adapter_loads_and_changes_the_frames(paths):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    animator = ControlNetAnimator(paths["model"], paths["controlnet"], ip_adapter=paths["ip_adapter"],
                                  ip_adapter_weight="models/ip-adapter.safetensors", device="cpu")
    poses = walking_poses(2)
    with_image = run(animator, poses, ip_adapter_scale=1.0)
    without = run(animator, poses, ip_adapter_scale=0.0)
    assert with_image.shape == (2, 64, 64, 3)
    assert not np.array_equal(with_image, without)
    assert animator.describe_options(ip_adapter_scale=1.0)["ip_adapter_scale"] == 1.0


# --- whole clip ------------------------------------------------------------------------


def test_animatediff_frames_have_the_canvas_size_and_count(animatediff):
    poses = walking_poses(7, size=(66, 70))
    frames = run(animatediff, poses, window=4, stride=2, guidance_scale=1.0)
    assert frames.shape == (7, 70, 66, 3) and frames.dtype == np.uint8


def test_animatediff_same_seed_same_frames(animatediff):
    poses = walking_poses(4)
    a = run(animatediff, poses, window=4, stride=2, seed=1)  # with guidance
    b = run(animatediff, poses, window=4, stride=2, seed=1)
    c = run(animatediff, poses, window=4, stride=2, seed=2, guidance_scale=1.0)
    assert c.shape == a.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_animatediff_one_window_equals_the_diffusers_pipeline(animatediff):
    """With one window over the whole clip, holdpose's loop is diffusers' AnimateDiff
    ControlNet pipeline given the same initial latents."""
    from diffusers import AnimateDiffControlNetPipeline
    from PIL import Image

    from holdpose.animate.diffusion.noise import frame_noise
    from holdpose.render.openpose import render_pose_maps

    poses = walking_poses(4)
    ours = run(animatediff, poses, window=8, stride=4, seed=5, guidance_scale=5.0)
    pipe = AnimateDiffControlNetPipeline(**{**animatediff.pipe.components,
                                            "scheduler": animatediff.scheduler_for(None)})
    pipe.set_progress_bar_config(disable=True)
    latents = frame_noise(5, range(4), (4, 32, 32)).permute(1, 0, 2, 3).unsqueeze(0)
    maps = [Image.fromarray(m) for m in render_pose_maps(poses, "openpose_full")]
    video = pipe("a dancer", conditioning_frames=maps, num_frames=4, num_inference_steps=STEPS, guidance_scale=5.0,
                 latents=latents, output_type="np", height=64, width=64).frames[0]
    theirs = (np.asarray(video) * 255).round().astype(np.uint8)
    assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_animatediff_reference_anchor_changes_the_clip(animatediff):
    poses = walking_poses(4)
    options = dict(window=3, stride=1, guidance_scale=1.0)
    plain = run(animatediff, poses, **options)
    anchored = run(animatediff, poses, **options, reference_pose=walking_poses(1))
    assert anchored.shape == (4, 64, 64, 3)
    assert not np.array_equal(plain, anchored)


@pytest.mark.slow
def test_animatediff_fusion_variants(animatediff):
    poses = walking_poses(4)
    options = dict(window=3, stride=1, guidance_scale=1.0)  # windows [0-2] [1-3]: pyramid != flat
    pyramid = run(animatediff, poses, **options)
    flat = run(animatediff, poses, **options, fusion="flat")
    freenoise = run(animatediff, poses, **options, fusion="freenoise")
    assert freenoise.shape == (4, 64, 64, 3)
    assert not np.array_equal(pyramid, flat)
    assert np.array_equal(run(animatediff, poses, **options), pyramid)  # FreeNoise switched off again


def test_animatediff_start_frame_gives_the_tail_of_the_clip(animatediff):
    poses = walking_poses(6)
    whole = run(animatediff, poses, window=4, stride=2, decode_chunk_size=4, guidance_scale=1.0)
    tail = run(animatediff, poses, window=4, stride=2, decode_chunk_size=4, guidance_scale=1.0, start_frame=3)
    assert np.array_equal(whole[3:], tail)


# --- errors ---------------------------------------------------------------------------------


def test_missing_local_model_is_one_clear_error(paths, tmp_path):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    with pytest.raises(HoldposeError, match="no such file or folder") as err:
        ControlNetAnimator(tmp_path / "nowhere" / "sd15", paths["controlnet"], device="cpu")
    assert "--model" in str(err.value)
    with pytest.raises(HoldposeError, match="ControlNet"):
        ControlNetAnimator(paths["model"], str(tmp_path / "missing-controlnet"), device="cpu")


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`:UserWarning")
def test_offline_hub_id_says_how_to_get_it(paths, monkeypatch, tmp_path):
    import huggingface_hub.constants

    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HoldposeError) as err:
        ControlNetAnimator(paths["model"], "lllyasviel/control_v11p_sd15_openpose", device="cpu")
    message = str(err.value)
    assert "lllyasviel/control_v11p_sd15_openpose" in message
    assert "hf download lllyasviel/control_v11p_sd15_openpose" in message
    assert "HF_HUB_OFFLINE" in message
    assert "not in the local Hugging Face cache" in message and "\n" not in message


def test_pickled_checkpoints_are_refused(paths, tmp_path):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really a pickle")
    with pytest.raises(HoldposeError, match="allow_pickle"):
        ControlNetAnimator(ckpt, paths["controlnet"], device="cpu")
    pth = tmp_path / "controlnet.pth"
    pth.write_bytes(b"not really a pickle")
    with pytest.raises(HoldposeError, match="allow_pickle"):
        ControlNetAnimator(paths["model"], pth, device="cpu")


def test_single_safetensors_file_goes_through_from_single_file(paths, tmp_path, monkeypatch):
    import diffusers

    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    calls = []
    real = diffusers.StableDiffusionPipeline.from_pretrained

    def fake_from_single_file(path, **kwargs):
        calls.append((path, dict(kwargs)))
        kwargs.pop("config", None)
        return real(str(paths["model"]), **kwargs)

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_single_file", fake_from_single_file)
    single = tmp_path / "my-model.safetensors"
    single.write_bytes(b"")
    animator = ControlNetAnimator(single, paths["controlnet"], device="cpu", model_config=str(paths["model"]))
    assert calls and calls[0][0] == str(single) and calls[0][1]["config"] == str(paths["model"])
    assert animator.config()["model"] == str(single)


def test_bad_options_are_refused_before_work(controlnet, animatediff):
    poses = walking_poses(2)
    bad = [
        (controlnet, dict(init=StillAnimator(), strength=1.5), "strength"),
        (controlnet, dict(init=StillAnimator(), strength=0.0), "strength"),
        (controlnet, dict(strength=0.5), "needs init"),
        (controlnet, dict(batch_size=0), "batch_size"),
        (controlnet, dict(num_inference_steps=0), "num_inference_steps"),
        (controlnet, dict(scheduler="magic"), "scheduler"),
        (controlnet, dict(guidance_scale=-1), "guidance_scale"),
        (controlnet, dict(controlnet_scale=[1.0, 1.0]), "controlnet_scale"),
        (controlnet, dict(promt="typo"), "unknown option 'promt'"),
        (controlnet, dict(control_images=[np.zeros((1, 64, 64, 3), np.uint8)]), "1 frames given"),
        (animatediff, dict(window=4, stride=5), "stride"),
        (animatediff, dict(window=0), "window"),
        (animatediff, dict(fusion="median"), "fusion"),
        (animatediff, dict(window=1, reference_pose=walking_poses(1)), "window"),
    ]
    for animator, options, message in bad:
        with pytest.raises(HoldposeError, match=message):
            run(animator, poses, **options)
    with pytest.raises(HoldposeError, match="seed"):
        run(controlnet, poses, seed=-1)
    with pytest.raises(HoldposeError, match="poses.size"):
        run(controlnet, poses, reference=reference_image((32, 32)))
    # an option of another backend is refused by name (each backend declares its own; none knows the others')
    with pytest.raises(HoldposeError, match="unknown option 'window' for the controlnet backend"):
        run(controlnet, walking_poses(1), window=16, guidance_scale=1.0)


def test_bad_construction_arguments(paths):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    with pytest.raises(HoldposeError, match="dtype"):
        ControlNetAnimator(paths["model"], paths["controlnet"], device="cpu", dtype="int8")
    with pytest.raises(HoldposeError, match="device"):
        ControlNetAnimator(paths["model"], paths["controlnet"], device="tpu7")
    with pytest.raises(HoldposeError, match="cpu_offload"):
        ControlNetAnimator(paths["model"], paths["controlnet"], device="cpu", cpu_offload="model")
    with pytest.raises(HoldposeError, match="pose_style"):
        ControlNetAnimator(paths["model"], paths["controlnet"], device="cpu", pose_style="stick")


def test_importing_the_backends_imports_no_torch():
    code = ("import sys, holdpose.animate.diffusion.controlnet, holdpose.animate.diffusion.animatediff, holdpose.animate.resume; "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)
