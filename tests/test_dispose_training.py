"""`holdpose train dispose` on a fixture clip with the tiny AnimateDiff stack: only the hybrid
ControlNet trains, the base model stays bit-identical, an interrupted run resumes exactly, and
(slow) the held-out loss falls."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from conftest import FIXTURES  # noqa: E402
from diffusion_fixtures import single_torch_thread, tiny_models  # noqa: E402

VIDEO = FIXTURES / "videos" / "dance_musepose_dance.mp4"
pytestmark = pytest.mark.skipif(not VIDEO.exists(), reason="fixture video missing")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_torch_thread():
        yield


def setup(paths, **extra):
    return dict(model=str(paths["model"]), motion_adapter=str(paths["motion_adapter"]), frames=3, size=64,
                max_frames=8, dift_ensemble=2, device="cpu", **extra)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The fixture clip's frames and poses, extracted once (cached in a run's data folder)."""
    from holdpose.animate.diffusion.dispose.training import prepare_videos

    root = tmp_path_factory.mktemp("dispose-data")
    clips = prepare_videos(VIDEO, root, 64, 8, 4)
    return root / "data"


def run_folder(tmp_path, prepared, name):
    folder = tmp_path / name
    shutil.copytree(prepared, folder / "data")
    return folder


def test_prepared_clip_has_frames_and_poses(prepared):
    data = np.load(prepared / "dance_musepose_dance.npz")
    assert data["frames"].shape == (8, 64, 64, 3) and data["keypoints"].shape == (8, 133, 2)
    assert (data["scores"][:, :17] > 0.5).mean() > 0.5  # a dancer is found in most frames
    assert (data["keypoints"][data["scores"] > 0.5] < 64).all()


def test_only_the_hybrid_controlnet_trains_and_a_resumed_run_ends_identical(tmp_path, prepared):
    from safetensors.torch import load_file

    from holdpose.animate.diffusion.dispose.training import TRAINABLE, predict, prepare_training
    from holdpose.train.loop import TrainConfig, train

    model, sampler = prepare_training(VIDEO, run_folder(tmp_path, prepared, "probe"), **setup(tiny_models()))
    base = {k: v.clone() for k, v in model.unet.state_dict().items()}
    initial = {k: v.clone() for k, v in model.controlnet.state_dict().items()}
    config = TrainConfig(steps=3, learning_rate=1e-3, shared_timestep=True, checkpoint_every=1, eval_every=3,
                         eval_draws=1)
    held_out = sampler.held_out()

    def fresh_run(output, **kwargs):  # as a new process would start: the untrained hybrid ControlNet
        model.controlnet.load_state_dict(initial)
        return train(model, predict, sampler, output, config, trainable=TRAINABLE, eval_batch=held_out,
                     progress=False, **kwargs)

    straight = fresh_run(tmp_path / "straight")
    assert straight.trainable_parameters == sum(p.numel() for p in model.controlnet.parameters())
    weights = load_file(str(straight.output / "trainable.safetensors"))
    assert set(weights) == {f"controlnet.{k}" for k, _ in model.controlnet.named_parameters()}
    assert all(torch.equal(base[k], v) for k, v in model.unet.state_dict().items())  # the base is untouched

    class Stop(Exception):
        pass

    def stop_after_2(step, loss):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        fresh_run(tmp_path / "interrupted", callback=stop_after_2)
    resumed = fresh_run(tmp_path / "interrupted")
    assert resumed.resumed_from == 2 and resumed.losses == straight.losses
    again = load_file(str(tmp_path / "interrupted" / "trainable.safetensors"))
    assert all(torch.equal(weights[k], again[k]) for k in weights)


@pytest.mark.slow
def test_training_lowers_the_held_out_loss_from_the_cli(tmp_path, prepared, capsys):
    import json

    from holdpose.cli import main

    paths = tiny_models()
    output = run_folder(tmp_path, prepared, "long")
    assert main(["-q", "train", "dispose", "--videos", str(VIDEO), "-o", str(output), "--model", str(paths["model"]),
                 "--motion-adapter", str(paths["motion_adapter"]), "--frames", "3", "--size", "64", "--max-frames",
                 "8", "--dift-ensemble", "2", "--steps", "40", "--lr", "1e-3", "--eval-every", "10",
                 "--checkpoint-every", "20", "--device", "cpu"]) == 0
    manifest = json.loads((output / "manifest.json").read_text())
    evals = manifest["eval_losses"]
    assert evals[-1][1] < evals[0][1]
    assert "held-out loss" in capsys.readouterr().out


def test_training_windows_get_the_sparse_fields_generation_gives(tmp_path, prepared):
    """A window that starts inside the clip gets each frame's move from the frame before, its
    first frame included, as a generation window does (not the reference's move to it)."""
    from holdpose.animate.diffusion.dispose.animator import DisPoseGuidance
    from holdpose.animate.diffusion.dispose.training import prepare_training
    from holdpose.render.motion import openpose_tracks, sparse_motion_fields

    _, sampler = prepare_training(VIDEO, run_folder(tmp_path, prepared, "fields"), **setup(tiny_models()))
    clip = sampler.clips[0]
    size = (clip.frames.shape[1],) * 2
    tracks, present = openpose_tracks(clip.poses, clip.poses[:1])

    def no_dense(keypoints, scores):
        return np.zeros((2, *size), np.float32)

    guidance = DisPoseGuidance(None, tracks, present, no_dense, clip.poses, size, None, (8, 8), 1.0, "cpu",
                               torch.float32)
    start = 3
    flows = sampler.batch(0, start)["flows"]
    for j in range(sampler.frames):
        expected = guidance.flows(start + j)[2:].float()
        tolerance = 1e-3 * float(expected.abs().max())  # generation keeps fields as float16
        assert (flows[j, 2:] - expected).abs().max() <= tolerance, f"window frame {j}"
    from_reference = sparse_motion_fields(tracks[[0, start + 1]], present[[0, start + 1]], size)[1]
    first = guidance.flows(start)[2:].float().numpy()
    assert np.abs(from_reference - first).max() > 10 * 1e-3 * np.abs(first).max()  # the two can be told apart
