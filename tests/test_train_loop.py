"""The training loop (SEED_MODULES S3): loss, draws, trainable sets, checkpoints and exact resume."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import one_torch_thread  # noqa: E402,F401 - the fixture pytestmark uses
from diffusion_fixtures import CROSS_ATTENTION, tiny_unet  # noqa: E402

from holdpose.errors import HoldposeError  # noqa: E402
from holdpose.train import checkpoint as ckpt  # noqa: E402
from holdpose.train.loop import (  # noqa: E402
    TrainConfig, count_parameters, draw_noise, epsilon_loss, evaluation_loss, select_trainable, train)

ATTN1_OUT = [r"attn1\.to_out\."]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_state():
    torch.manual_seed(0)
    return {k: v.clone() for k, v in tiny_unet().state_dict().items()}


def fresh_unet(base_state):
    unet = tiny_unet()
    unet.load_state_dict(base_state)
    return unet


CONTEXT = torch.randn(1, 77, CROSS_ATTENTION, generator=torch.Generator().manual_seed(5))
# a "clip" of 4 frames of smooth 16x16 latents: something a UNet can learn quickly
_grid = torch.linspace(-1, 1, 16)
CLIP = torch.stack([torch.stack([torch.sin(3 * _grid[None, :] + k + c) * torch.cos(2 * _grid[:, None] - c)
                                 for c in range(4)]) for k in range(4)])


def predict(model, noisy, timesteps, batch):
    return model(noisy, timesteps, CONTEXT.expand(noisy.shape[0], -1, -1)).sample


def sample_batch(step, micro, rng):
    return {"latents": CLIP[np.sort(rng.choice(4, 2, replace=False))]}


def _config(**changes):
    return TrainConfig(**{"steps": 6, "learning_rate": 1e-3, "checkpoint_every": 2, "eval_every": 3,
                          "eval_draws": 2, **changes})


def test_weighted_loss_known_answer():
    predicted = torch.zeros(2, 4, 8, 8)
    target = torch.ones(2, 4, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :2] = 1  # a quarter of the cells
    f = 0.25
    assert float(epsilon_loss(predicted, target)) == 1.0
    assert float(epsilon_loss(predicted, target, 5 * mask + (1 - mask))) == pytest.approx(5 * f + 1 - f, abs=1e-7)


def test_draws_depend_only_on_seed_step_and_micro_batch():
    t1, e1 = draw_noise((3, 4, 8, 8), seed=1, step=7, micro=1)
    t2, e2 = draw_noise((3, 4, 8, 8), seed=1, step=7, micro=1)
    t3, e3 = draw_noise((3, 4, 8, 8), seed=1, step=8, micro=1)
    assert torch.equal(t1, t2) and torch.equal(e1, e2) and not torch.equal(e1, e3)
    assert t1.dtype == torch.int64 and ((t1 >= 0) & (t1 < 1000)).all() and e1.shape == (3, 4, 8, 8)
    shared, _ = draw_noise((8, 4, 8, 8), seed=0, step=0, shared_timestep=True)
    assert len(set(shared.tolist())) == 1
    many = torch.cat([draw_noise((64, 1), seed=0, step=s)[0] for s in range(20)]).float()
    assert 400 < float(many.mean()) < 600  # uniform over [0, 1000)


def test_trainable_set_by_name_counts_exactly_and_freezes_the_rest(base_state):
    unet = fresh_unet(base_state)
    params = select_trainable(unet, ATTN1_OUT)
    # every attn1 output projection is a Linear(C, C) with bias; C = 64 in the tiny UNet's 6 attn1 layers
    attn1 = [m for n, m in unet.named_modules() if n.endswith("attn1")]
    assert count_parameters(params) == sum(a.query_dim ** 2 + a.query_dim for a in attn1) == 6 * (64 * 64 + 64)
    assert all(p.requires_grad == (n in params) for n, p in unet.named_parameters())
    with pytest.raises(ValueError, match="nothing_like_this"):
        select_trainable(unet, ["nothing_like_this"])


def test_training_lowers_the_held_out_loss_and_touches_only_the_trainable_set(base_state, tmp_path):
    unet = fresh_unet(base_state)
    held_out = {"latents": CLIP}
    config = _config(steps=12, learning_rate=2e-3)
    result = train(unet, predict, sample_batch, tmp_path / "run", config, trainable=[r"^up_blocks\.1\."],
                   eval_batch=held_out, progress=False)
    first, last = result.eval_losses[0][1], result.eval_losses[-1][1]
    assert [s for s, _ in result.eval_losses] == [0, 3, 6, 9, 12]
    assert last < 0.9 * first
    assert last == pytest.approx(evaluation_loss(unet, predict, held_out, config), rel=1e-6)  # fixed draws
    state = unet.state_dict()
    changed = {k for k in base_state if not torch.equal(state[k], base_state[k])}
    assert changed and all(k.startswith("up_blocks.1.") for k in changed)
    assert result.trainable_parameters == count_parameters(
        {n: p for n, p in unet.named_parameters() if n.startswith("up_blocks.1.")})
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["trainable_parameters"] == result.trainable_parameters and manifest["step"] == 12
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.losses) == 12


class Killed(Exception):
    pass


def _kill_at(step_to_die):
    def callback(step, loss):
        if step == step_to_die:
            raise Killed
    return callback


def test_a_killed_run_resumes_to_the_same_weights_bit_for_bit(base_state, tmp_path):
    config = _config(steps=7, checkpoint_every=3, accumulate=2)
    whole = fresh_unet(base_state)
    train(whole, predict, sample_batch, tmp_path / "whole", config, trainable=ATTN1_OUT, eval_batch={"latents": CLIP},
          progress=False)

    broken = fresh_unet(base_state)
    with pytest.raises(Killed):  # dies after step 5: the last checkpoint is step 3
        train(broken, predict, sample_batch, tmp_path / "broken", config, trainable=ATTN1_OUT,
              eval_batch={"latents": CLIP}, callback=_kill_at(5), progress=False)
    resumed_model = fresh_unet(base_state)  # a new process: the model starts from the base weights again
    result = train(resumed_model, predict, sample_batch, tmp_path / "broken", config, trainable=ATTN1_OUT,
                   eval_batch={"latents": CLIP}, progress=False)
    assert result.resumed_from == 3
    a, b = whole.state_dict(), resumed_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, optim_a, manifest_a = ckpt.load_checkpoint(tmp_path / "whole" / "checkpoints" / "step-000007")
    _, optim_b, manifest_b = ckpt.load_checkpoint(tmp_path / "broken" / "checkpoints" / "step-000007")
    assert manifest_a["losses"] == manifest_b["losses"] and manifest_a["eval_losses"] == manifest_b["eval_losses"]
    assert optim_a.keys() == optim_b.keys() and all(torch.equal(optim_a[k], optim_b[k]) for k in optim_a)
    assert sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir()) == ["step-000006", "step-000007"]


def test_resuming_with_other_settings_is_refused_in_one_line(base_state, tmp_path):
    train(fresh_unet(base_state), predict, sample_batch, tmp_path / "run", _config(steps=2), trainable=ATTN1_OUT,
          progress=False)
    with pytest.raises(HoldposeError, match="different learning_rate") as err:
        train(fresh_unet(base_state), predict, sample_batch, tmp_path / "run", _config(steps=4, learning_rate=1e-2),
              trainable=ATTN1_OUT, progress=False)
    assert "\n" not in str(err.value)


def test_a_damaged_checkpoint_is_reported(base_state, tmp_path):
    train(fresh_unet(base_state), predict, sample_batch, tmp_path / "run", _config(steps=2), trainable=ATTN1_OUT,
          progress=False)
    folder = tmp_path / "run" / "checkpoints" / "step-000002"
    (folder / ckpt.TRAINABLE).write_bytes(b"broken")
    with pytest.raises(HoldposeError, match="does not match its manifest"):
        ckpt.load_checkpoint(folder)


def test_trained_weights_load_into_a_fresh_model(base_state, tmp_path):
    trained = fresh_unet(base_state)
    train(trained, predict, sample_batch, tmp_path / "run", _config(steps=2), trainable=ATTN1_OUT, progress=False)
    fresh = fresh_unet(base_state)
    names = ckpt.load_trainable(fresh, tmp_path / "run" / ckpt.TRAINABLE)
    assert len(names) == 12
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()))
    other = torch.nn.Linear(2, 2)
    with pytest.raises(HoldposeError, match="do not fit the model"):
        ckpt.load_trainable(other, tmp_path / "run")


def test_mixed_precision_on_the_cpu_is_refused(base_state, tmp_path):
    with pytest.raises(HoldposeError, match="needs a GPU"):
        train(fresh_unet(base_state), predict, sample_batch, tmp_path, _config(mixed_precision="fp16"),
              trainable=ATTN1_OUT, progress=False)
