"""`holdpose animate --backend controlnet|animatediff`: flags reach the API, models load from
folders, frames match the Python API's, reruns resume or refuse. Tiny random-weight models
(tests/diffusion_fixtures.py) stand in for the real ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")

from conftest import interrupted_after_frames  # noqa: E402
from diffusion_fixtures import reference_image, single_torch_thread, tiny_models, walking_poses  # noqa: E402

from holdpose.animate.cli import backend_options  # noqa: E402
from holdpose.animate.resume import FRAME_NAME  # noqa: E402
from holdpose.cli import build_parser, main  # noqa: E402
from holdpose.io.posefile import load_poses, save_poses  # noqa: E402
from holdpose.io.video import FrameSource, read_image, write_image  # noqa: E402

FRAMES = 5


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_torch_thread():
        yield


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("animate-cli")
    reference = reference_image()
    write_image(root / "ref.png", reference)
    poses = walking_poses(FRAMES)
    save_poses(poses, root / "poses.npz")
    return {"root": root, "ref": root / "ref.png", "poses": root / "poses.npz", "reference": reference,
            "sequence": poses, **tiny_models()}


def _argv(inputs, output, backend="controlnet", *extra):
    return ["-q", "animate", str(inputs["ref"]), str(inputs["poses"]), "-o", str(output), "--backend", backend,
            "--model", str(inputs["model"]), "--controlnet", str(inputs["controlnet"]), "--steps", "2",
            "--guidance", "3", "--device", "cpu", "--resolution", "64", "--no-align", *map(str, extra)]


def _frames(folder: Path, count: int) -> np.ndarray:
    return np.stack([read_image(folder / FRAME_NAME.format(i)) for i in range(count)])


def test_flags_map_to_constructor_and_call_options():
    args = build_parser().parse_args(
        ["animate", "r.png", "p.json", "-o", "o.mp4", "--backend", "controlnet", "--model", "m",
         "--controlnet", "a", "--controlnet", "b", "--controlnet-scale", "0.5", "--steps", "7", "--guidance", "2",
         "--batch-size", "3", "--vae-slicing", "--prompt", "a dancer"])
    assert backend_options(args) == {"model": "m", "controlnet": ["a", "b"], "vae_slicing": True,
                                     "prompt": "a dancer", "num_inference_steps": 7, "guidance_scale": 2.0,
                                     "controlnet_scale": 0.5, "batch_size": 3}
    args = build_parser().parse_args(["animate", "r.png", "p.json", "-o", "o.mp4", "--backend", "animatediff",
                                      "--controlnet-scale", "1", "--controlnet-scale", "0.3", "--window", "8"])
    assert backend_options(args) == {"controlnet_scale": [1.0, 0.3], "window": 8}


def test_every_option_of_every_backend_has_one_flag():
    """The flags come from the backends' option dataclasses: each option a flag once, except
    what only the API can pass (arrays, animators)."""
    import dataclasses

    from holdpose.animate.cli import backend_fields
    from holdpose.animate.options import flag_name
    from holdpose.animate.registry import backend_names, get_backend

    parser = build_parser()
    animate = parser._subparsers._group_actions[0].choices["animate"]
    flags = {flag for action in animate._actions for flag in action.option_strings}
    offered = backend_fields()
    for name in backend_names():
        cls = get_backend(name)
        for field in dataclasses.fields(cls.model_options_class) + dataclasses.fields(cls.options_class):
            if field.metadata.get("cli", True):
                assert flag_name(field) in flags and name in offered[field.name][1], (name, field.name)
            else:  # API only for this backend (another backend may offer the same flag)
                assert field.name not in offered or name not in offered[field.name][1], (name, field.name)


@pytest.mark.parametrize("argv, message", [
    (["--backend", "controlnet", "--window", "8"], "--window is for animatediff, dispose, not the controlnet backend"),
    (["--backend", "animatediff", "--batch-size", "2"], "--batch-size is for controlnet, stablepose, not the animatediff"),
    (["--prompt", "x"], "--prompt is for controlnet, animatediff, posecrafter, stablepose, dispose, not the warp backend"),
    # checked before any model is loaded: the default model id is not even looked up
    (["--backend", "controlnet", "--strength", "0.5"], "needs init frames"),
    (["--backend", "controlnet", "--guidance", "nan"], "argument --guidance: value must be a finite number"),
    (["--backend", "controlnet", "--controlnet-scale", "nan"], "argument --controlnet-scale: value must be a finite"),
    (["--backend", "controlnet", "--seed", "-1"], "argument --seed: value must be a whole number in [0, 4294967295]"),
    (["--backend", "animatediff", "--window", "4", "--stride", "8"], "stride (--stride) 8 is longer"),
    (["--backend", "controlnet", "--controlnet", "a", "--controlnet", "b", "--controlnet-scale", "1",
      "--controlnet-scale", "2", "--controlnet-scale", "3"], "3 values for 2 ControlNets"),
    (["--person", "3"], "person 3 is not a track id of"),
])
def test_bad_flags_are_one_line_before_any_work(inputs, tmp_path, capfd, argv, message):
    try:
        code = main(["-q", "animate", str(inputs["ref"]), str(inputs["poses"]), "-o", str(tmp_path / "o.mp4"), *argv])
    except SystemExit as usage_error:  # the flag's type refused it
        code = usage_error.code
    assert code == 2
    err = capfd.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the run's folder


def test_missing_model_folder_is_one_clear_line(inputs, tmp_path, capsys):
    argv = _argv(inputs, tmp_path / "o.mp4")
    argv[argv.index("--model") + 1] = str(tmp_path / "no-such-model")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no-such-model: no such file or folder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_controlnet_cli_matches_the_api_and_resumes(inputs, tmp_path, capsys):
    from holdpose.animate.diffusion.controlnet import ControlNetAnimator

    output = tmp_path / "out.mp4"
    assert main(_argv(inputs, output, "controlnet", "--seed", 3)) == 0
    assert f"{FRAMES} frames" in capsys.readouterr().out
    video = FrameSource(output)
    assert (video.num_frames, video.size) == (FRAMES, inputs["sequence"].size)
    manifest = json.loads((tmp_path / "out.frames" / "manifest.json").read_text())
    assert manifest["parameters"]["seed"] == 3

    # The same run through the Python API gives the same frames.
    animator = ControlNetAnimator(str(inputs["model"]), str(inputs["controlnet"]), device="cpu")
    expected = np.stack(list(animator(inputs["reference"], inputs["sequence"], seed=3, num_inference_steps=2,
                                      guidance_scale=3.0, resolution=64)))
    np.testing.assert_array_equal(_frames(tmp_path / "out.frames" / "frames", FRAMES), expected)

    # A rerun finds every frame on disk; other parameters are refused unless --overwrite.
    assert main(_argv(inputs, output, "controlnet", "--seed", 3)) == 0
    assert f"({FRAMES} resumed)" in capsys.readouterr().out
    assert main(_argv(inputs, output, "controlnet", "--seed", 4)) == 2
    err = capsys.readouterr().err
    assert "other parameters" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(_argv(inputs, output, "controlnet", "--seed", 4, "--overwrite")) == 0
    assert not np.array_equal(_frames(tmp_path / "out.frames" / "frames", FRAMES), expected)


def test_controlnet_cli_image_to_image_from_a_folder(inputs, tmp_path):
    init = tmp_path / "init"
    init.mkdir()
    for i in range(FRAMES):
        write_image(init / f"{i:03d}.png", np.full_like(inputs["reference"], 40 * i))
    output = tmp_path / "img2img.mp4"
    assert main(_argv(inputs, output, "controlnet", "--init", init, "--strength", 0.5, "--side-by-side",
                      tmp_path / "sbs.mp4")) == 0
    manifest = json.loads((tmp_path / "img2img.frames" / "manifest.json").read_text())
    assert manifest["parameters"]["options"]["strength"] == 0.5
    w, h = inputs["sequence"].size
    assert FrameSource(tmp_path / "sbs.mp4").size == (3 * w, h)


def test_animatediff_cli_writes_every_frame(inputs, tmp_path):
    output = tmp_path / "clip.mp4"
    assert main(_argv(inputs, output, "animatediff", "--motion-adapter", inputs["motion_adapter"], "--window", 4,
                      "--stride", 2)) == 0
    assert FrameSource(output).num_frames == FRAMES
    options = json.loads((tmp_path / "clip.frames" / "manifest.json").read_text())["parameters"]["options"]
    assert (options["window"], options["stride"], options["num_inference_steps"]) == (4, 2, 2)


def test_controlnet_cli_aligns_and_starts_from_the_warp_animator(inputs, tmp_path, capsys):
    """The whole default path on a real photo: the poses are aligned to the person found in the
    reference, the warp animator makes the init frames, ControlNet refines them."""
    import cv2
    from skimage import data

    write_image(tmp_path / "astronaut.png", cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA))
    assert main(["-q", "keyframes", "wave", "-o", str(tmp_path / "wave.npz"), "--fps", "2"]) == 0
    output = tmp_path / "out.mp4"
    assert main(["-q", "animate", str(tmp_path / "astronaut.png"), str(tmp_path / "wave.npz"), "-o", str(output),
                 "--backend", "controlnet", "--model", str(inputs["model"]), "--controlnet", str(inputs["controlnet"]),
                 "--steps", "2", "--guidance", "1", "--device", "cpu", "--init", "warp", "--strength", "0.5",
                 "--resolution", "128"]) == 0
    used = load_poses(tmp_path / "out.poses.json")
    assert used.size == (128, 128) and FrameSource(output).num_frames == used.num_frames == 6
    options = json.loads((tmp_path / "out.frames" / "manifest.json").read_text())["parameters"]["options"]
    assert options["init"]["animator"] == "warp" and options["strength"] == 0.5


def test_interrupted_cli_run_says_where_the_frames_are_and_resumes(inputs, tmp_path, capsys, monkeypatch):
    """Ctrl-C in the middle of a run: exit 130 with a message naming the frames folder; the same
    command again continues after the frames on disk and ends with every frame."""
    output = tmp_path / "out.mp4"
    with interrupted_after_frames(monkeypatch, 2):
        assert main(_argv(inputs, output, "controlnet")) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "out.frames" in err and "run the same command again" in err
    assert main(_argv(inputs, output, "controlnet")) == 0
    assert "(2 resumed)" in capsys.readouterr().out
    assert FrameSource(output).num_frames == FRAMES


def test_animatediff_cli_anchors_every_window_on_the_reference(inputs, tmp_path):
    """--anchor-reference: the pose found in the reference photo becomes each window's anchor frame."""
    import cv2
    from skimage import data

    write_image(tmp_path / "astronaut.png", cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA))
    assert main(["-q", "keyframes", "wave", "-o", str(tmp_path / "wave.npz"), "--fps", "2"]) == 0
    output = tmp_path / "clip.mp4"
    assert main(["-q", "animate", str(tmp_path / "astronaut.png"), str(tmp_path / "wave.npz"), "-o", str(output),
                 "--backend", "animatediff", "--model", str(inputs["model"]), "--controlnet", str(inputs["controlnet"]),
                 "--motion-adapter", str(inputs["motion_adapter"]), "--steps", "1", "--guidance", "1",
                 "--window", "4", "--stride", "2", "--anchor-reference", "--device", "cpu", "--resolution", "128"]) == 0
    assert FrameSource(output).num_frames == 6
    options = json.loads((tmp_path / "clip.frames" / "manifest.json").read_text())["parameters"]["options"]
    assert "poses_sha256" in options["reference_pose"]  # the anchor pose is part of the run's identity
