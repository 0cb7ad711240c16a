"""`--backend dispose` end to end with tiny random models: untrained it is plain AnimateDiff
(bit for bit), trained weights load strictly and change the frames, the per-window conditions
keep their frame bookkeeping, and the CLI writes every frame of a clip with windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import one_torch_thread  # noqa: E402,F401 - the fixture pytestmark uses
from diffusion_fixtures import reference_image, tiny_models, walking_poses  # noqa: E402

from holdpose.errors import HoldposeError  # noqa: E402

OPTIONS = dict(num_inference_steps=1, window=3, stride=2, prompt="a dancer", resolution=64, seed=1)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def paths():
    return tiny_models()


def model_options(paths, **extra):
    return dict(model=str(paths["model"]), controlnet=str(paths["controlnet"]),
                motion_adapter=str(paths["motion_adapter"]), device="cpu", **extra)


@pytest.fixture(scope="module")
def dispose(paths):
    from holdpose.animate.diffusion.dispose.animator import DisPoseAnimator

    return DisPoseAnimator(**model_options(paths))


def rbf_propagator(poses):
    from holdpose.animate.diffusion.dispose.propagate import RBFPropagator

    return RBFPropagator(reference_image(), poses.keypoints[0, 0], poses.scores[0, 0], np.ones((64, 64), bool))


def run(animator, poses, **options):
    return np.stack(list(animator(reference_image(), poses, **{**OPTIONS, **options})))


def test_untrained_dispose_is_plain_animatediff_bit_for_bit(paths, dispose):
    from holdpose.animate.diffusion.animatediff import AnimateDiffAnimator

    poses = walking_poses(4)
    shared = dict(reference_pose=poses[:1], fusion="triangular")
    plain = run(AnimateDiffAnimator(**model_options(paths)), poses, **shared)
    ours = run(dispose, poses, propagator=rbf_propagator(poses), **shared)
    assert ours.shape == (4, 64, 64, 3) and np.array_equal(plain, ours)


def test_trained_weights_load_strictly_and_steer_the_frames(paths, dispose, tmp_path):
    from safetensors.torch import save_file

    from holdpose.animate.diffusion.dispose.animator import DisPoseAnimator

    poses = walking_poses(4)
    generator = torch.Generator().manual_seed(0)
    weights = {f"controlnet.{k}": (torch.randn(v.shape, generator=generator) * 0.05 if "controlnet_" in k else v)
               for k, v in dispose.hybrid.state_dict().items()}
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp_path / "trainable.safetensors"))
    trained = DisPoseAnimator(**model_options(paths, dispose_weights=str(tmp_path)))
    assert torch.equal(trained.hybrid.controlnet_mid_block.weight, weights["controlnet.controlnet_mid_block.weight"])
    # two steps: after one, the residuals' effect on the tiny model's frames is within rounding
    options = dict(reference_pose=poses[:1], propagator=rbf_propagator(poses), num_inference_steps=2)
    assert not np.array_equal(run(trained, poses, **options), run(dispose, poses, **options))

    save_file({"controlnet.nothing": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(HoldposeError, match="does not fit the model") as err:
        DisPoseAnimator(**model_options(paths, dispose_weights=str(tmp_path / "bad.safetensors")))
    assert "\n" not in str(err.value)


def test_window_conditions_follow_the_clip_frames(dispose):
    """The anchor (index num_frames) gets zero fields; clip frame j gets the move from j - 1
    (the reference for j = 0), and its points where frame j's keypoints are."""
    poses = walking_poses(5)
    reference_pose = walking_poses(1)
    guidance = dispose.window_guidance(reference_image(), poses, dispose.resolve_options(dict(
        reference_pose=reference_pose, propagator=rbf_propagator(reference_pose), resolution=64)), (64, 64))
    anchor = guidance.flows(5)
    assert anchor.shape == (4, 64, 64) and not anchor.any()
    first = guidance.flows(0).float()
    # the reference pose is walking_poses' frame 0 = clip frame 0: no move, no dense or sparse field
    assert not first.any()
    second = guidance.flows(1).float()
    moved = poses.keypoints[1, 0, 5] - poses.keypoints[0, 0, 5]
    assert second[2:].abs().sum() > 0 and np.sign(second[2].sum().item()) == np.sign(moved[0])
    maps, mask = guidance.point_maps([5, 0, 3])
    assert maps.shape[0] == 3 and torch.equal(mask[0], mask[1])  # anchor = reference pose = clip frame 0
    assert not torch.equal(mask[1], mask[2])


def test_unknown_motion_field_is_one_line():
    from holdpose.animate.diffusion.dispose.animator import DisPoseOptions

    with pytest.raises(HoldposeError, match="motion_field") as err:
        DisPoseOptions(motion_field="sparkles").check(1, False)
    assert "\n" not in str(err.value)


def cli_run(paths, tmp_path, fps: int, *extra, frames: int | None = None):
    import cv2
    from skimage import data

    from holdpose.cli import main
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.io.video import write_image

    write_image(tmp_path / "astronaut.png", cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA))
    assert main(["-q", "keyframes", "wave", "-o", str(tmp_path / "wave.npz"), "--fps", str(fps)]) == 0
    if frames is not None:
        save_poses(load_poses(tmp_path / "wave.npz")[:frames], tmp_path / "wave.npz")
    output = tmp_path / "clip.mp4"
    assert main(["-q", "animate", str(tmp_path / "astronaut.png"), str(tmp_path / "wave.npz"), "-o", str(output),
                 "--backend", "dispose", "--model", str(paths["model"]), "--controlnet", str(paths["controlnet"]),
                 "--motion-adapter", str(paths["motion_adapter"]), "--steps", "1", "--guidance", "1",
                 "--device", "cpu", "--resolution", "64", *extra]) == 0
    return output


def test_cli_animates_a_real_photo_with_the_rig_motion_field(paths, tmp_path):
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import FrameSource

    output = cli_run(paths, tmp_path, 2, "--window", "4", "--stride", "2")
    used = load_poses(tmp_path / "clip.poses.json")
    assert FrameSource(output).num_frames == used.num_frames == 6
    options = json.loads((tmp_path / "clip.frames" / "manifest.json").read_text())["parameters"]["options"]
    assert options["propagator"] == "rig" and options["fusion"] == "triangular"
    assert "poses_sha256" in options["reference_pose"]


@pytest.mark.slow
def test_cli_writes_all_frames_of_a_40_frame_clip_in_windows(paths, tmp_path):
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import FrameSource

    output = cli_run(paths, tmp_path, 16, frames=40)  # windows of 16 (the reference + 15), stride 10: 4 windows
    used = load_poses(tmp_path / "clip.poses.json")
    assert used.num_frames == 40 and FrameSource(output).num_frames == 40


def test_the_rig_motion_field_and_the_anchor_pose_come_from_one_detection(dispose, monkeypatch):
    """With the default (rig) motion field, the reference's anchor pose is the rig's own: the photo
    is not detected a second time."""
    pytest.importorskip("mediapipe")
    from skimage.data import astronaut

    import holdpose.detect.extract as extract
    from holdpose.animate.character import Character

    def second_detection(*args, **kwargs):
        raise AssertionError("the reference was detected twice")

    monkeypatch.setattr(extract, "detect_reference_pose", second_detection)
    character = Character(astronaut())
    options = {}
    dispose.character_options(character, options)
    rig = character.rig
    assert options["propagator"].name == "rig"
    assert np.array_equal(options["reference_pose"].keypoints[0, 0], rig.points.astype(np.float32))
