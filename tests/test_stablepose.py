"""Stable-Pose (SEED_MODULES §1): the CPU-verifiable known answers on the real modules, the
converter, training and sampling with tiny models, and the CLI (train, generate, animate)."""

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import one_torch_thread  # noqa: E402,F401 - the fixture pytestmark uses
from diffusion_fixtures import (  # noqa: E402
    CROSS_ATTENTION, reference_image, single_torch_thread, tiny_models, tiny_unet, walking_poses)

from holdpose.animate.diffusion.stablepose.data import pose_loss_weights  # noqa: E402
from holdpose.animate.diffusion.stablepose.model import (  # noqa: E402
    PMSAConfig, PMSALayer, StablePoseAdapter, attention_allowed, masked_logits, patch_mask, vit_config_for)
from holdpose.cli import main  # noqa: E402
from holdpose.errors import HoldposeError  # noqa: E402
from holdpose.train.loop import epsilon_loss  # noqa: E402

from conftest import FIXTURES  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
IMAGES = FIXTURES / "images"
needs_fixture_images = pytest.mark.skipif(not (IMAGES / "annotations.json").exists(), reason="fixtures absent")


# --- mask -> attention, min-fill --------------------------------------------------------------


def test_one_pose_cell_allows_its_patch_row_and_column():
    masks = torch.zeros(1, 64, 64)
    r, c = 37, 10
    masks[0, r, c] = 1
    allowed = attention_allowed(patch_mask(masks, 2))[0]
    p = (r // 2) * 32 + c // 2
    assert allowed.shape == (1024, 1024)
    assert allowed[p].all() and allowed[:, p].all()
    assert int(allowed.sum()) == 2047


def test_all_ones_mask_is_exactly_unmasked_attention_and_all_zeros_is_uniform():
    torch.manual_seed(0)
    layer = PMSALayer(dim=16, heads=2, dim_head=4, mlp_dim=16, batch_min=False)
    tokens = torch.randn(2, 9, 16)
    every = torch.ones(2, 9, 9, dtype=torch.bool)
    assert torch.equal(layer.attention(tokens, every), layer.attention(tokens, None))
    logits = torch.randn(2, 2, 9, 9)
    weights = masked_logits(logits, torch.zeros(2, 9, 9, dtype=torch.bool)).softmax(-1)
    assert torch.allclose(weights, torch.full_like(weights, 1 / 9), atol=1e-7)


@pytest.mark.parametrize("batch_min", [False, True])
def test_a_non_pose_query_attends_over_pose_logits_and_the_global_minimum(batch_min):
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6, 6)
    tokens = torch.tensor([[0, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    weights = masked_logits(logits, attention_allowed(tokens), batch_min).softmax(-1)
    for b in range(2):
        floor = logits.min() if batch_min else logits[b].min()
        for h in range(3):
            query = 2  # not a pose token in either sample
            expected = torch.where(tokens[b], logits[b, h, query], floor).softmax(-1)
            assert torch.allclose(weights[b, h, query], expected, atol=1e-7)
            pose_query = int(tokens[b].nonzero()[0])  # a pose query sees everything
            assert torch.allclose(weights[b, h, pose_query], logits[b, h, pose_query].softmax(-1), atol=1e-7)


# --- the adapter ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unet():
    with single_torch_thread():
        torch.manual_seed(0)
        return tiny_unet().eval()


def tiny_adapter(unet, seed=0):
    torch.manual_seed(seed)
    return StablePoseAdapter.from_unet(unet, config=vit_config_for(unet), downsample=2).eval()


def adapter_inputs(seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(batch, 4, 32, 32, generator=g),
                encoder_hidden_states=torch.randn(batch, 77, CROSS_ATTENTION, generator=g),
                pose_image=torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1,
                masks=(torch.rand(batch, 2, 32, 32, generator=g) > 0.6).float())


def test_at_initialisation_the_unet_output_is_bit_identical_and_residuals_fit_its_skips(unet):
    adapter = tiny_adapter(unet)
    x = adapter_inputs()
    with torch.no_grad():
        down, mid = adapter(x["sample"], 500, x["encoder_hidden_states"], pose_image=x["pose_image"], masks=x["masks"])
        plain = unet(x["sample"], 500, x["encoder_hidden_states"]).sample
        fed = unet(x["sample"], 500, x["encoder_hidden_states"], down_block_additional_residuals=down,
                   mid_block_additional_residual=mid).sample
        _, skips = unet.down_blocks[0](unet.conv_in(x["sample"]), unet.time_embedding(
            unet.time_proj(torch.tensor([500.0, 500.0]))))
    assert torch.equal(fed, plain)
    assert [tuple(r.shape[1:]) for r in down[1:3]] == [tuple(s.shape[1:]) for s in skips[:2]]
    assert [r.shape[1] for r in down] == [32, 32, 32, 32, 64, 64] and mid.shape == (2, 64, 16, 16)


def test_the_pose_changes_the_residuals_once_the_zero_convolutions_are_trained(unet):
    adapter = tiny_adapter(unet)
    with torch.no_grad():
        for conv in [*adapter.controlnet_down_blocks, adapter.pose_encoder.zero_conv]:
            conv.weight.normal_(0, 0.1)
    x = adapter_inputs()
    other = dict(x, pose_image=-torch.ones_like(x["pose_image"]))
    with torch.no_grad():
        a = adapter(x["sample"], 10, x["encoder_hidden_states"], pose_image=x["pose_image"], masks=x["masks"])[0]
        b = adapter(x["sample"], 10, x["encoder_hidden_states"], pose_image=other["pose_image"], masks=x["masks"])[0]
    assert not torch.equal(a[1], b[1])  # the first skip after the AttnResBlock sees the pose
    assert torch.equal(a[0], b[0])  # conv_in's skip does not: the pose enters only through the block


def test_the_vit_runs_at_any_even_latent_grid(unet):
    adapter = tiny_adapter(unet)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        down, _ = adapter(torch.randn(1, 4, 24, 40, generator=g), 3, torch.randn(1, 77, CROSS_ATTENTION, generator=g),
                          pose_image=torch.zeros(1, 3, 48, 80), masks=torch.ones(1, 2, 24, 40))
    assert down[0].shape == (1, 32, 24, 40)


# --- loss -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.6])
def test_masked_loss_known_answer(fraction):
    masks = np.zeros((3, 8, 10), np.float32)
    masks.reshape(3, -1)[:, :int(round(80 * fraction))] = 1
    weights = torch.from_numpy(pose_loss_weights(masks))
    predicted = torch.zeros(3, 4, 8, 10)
    loss = epsilon_loss(predicted, predicted + 1, weights)
    assert weights.shape == (3, 4, 8, 10)
    assert float(loss) == pytest.approx(5 * fraction + 1 - fraction, abs=1e-6)


# --- conversion of the released checkpoint ------------------------------------------------------------


def official_names(ours: dict, table) -> dict:
    """Our state dict under the official ldm names: each key through the row whose new prefix fits it longest."""
    out = {}
    for key, value in ours.items():
        old, new = max(((o, n) for o, n in table if key.startswith(n)), key=lambda row: len(row[1]))
        out["stable_pose_adapter." + old + key[len(new):]] = value
    return out


def test_known_official_keys_map_to_ours():
    from holdpose.train.convert import ldm_stablepose_table_for, rename

    known = {
        "input_blocks.1.0.attn_layer.transformer.layers.0.0.to_qkv.weight": "down_blocks.0.resnets.0.pmsa.layers.0.to_qkv.weight",
        "input_blocks.1.0.attn_layer.transformer.layers.1.1.net.3.bias": "down_blocks.0.resnets.0.pmsa.layers.1.ff_out.bias",
        "input_blocks.1.0.attn_layer.to_patch_embedding.3.weight": "down_blocks.0.resnets.0.pmsa.patch_linear.weight",
        "input_blocks.1.0.in_layers.2.weight": "down_blocks.0.resnets.0.conv1.weight",
        "input_blocks.1.0.emb_layers.1.bias": "down_blocks.0.resnets.0.time_emb_proj.bias",
        "input_blocks.1.0.out_layers.3.weight": "down_blocks.0.resnets.0.conv2.weight",
        "input_blocks.1.0.cond_conv.weight": "down_blocks.0.resnets.0.cond_conv.weight",
        "feature_extractor.pre_extractor.8.weight": "pose_encoder.convs.4.weight",
        "feature_extractor.extractors.0.0.bias": "pose_encoder.convs.5.bias",
        "feature_extractor.zero_convs.0.weight": "pose_encoder.zero_conv.weight",
        "input_blocks.4.1.proj_in.weight": "down_blocks.1.attentions.0.proj_in.weight",
        "zero_convs.11.0.weight": "controlnet_down_blocks.11.weight",
        "middle_block_out.0.bias": "controlnet_mid_block.bias",
        "time_embed.2.weight": "time_embedding.linear_2.weight",
    }
    downsamplers = ["input_blocks.3.0.op.weight", "input_blocks.6.0.op.weight", "input_blocks.9.0.op.weight"]
    table = ldm_stablepose_table_for(downsamplers + list(known))  # built from the checkpoint's keys, as convert does
    assert rename({k: 0 for k in known}, table) == {v: 0 for v in known.values()}


def test_converted_checkpoint_loads_strictly_and_gives_identical_outputs(unet, tmp_path):
    from holdpose.animate.diffusion.stablepose.model import load_adapter, save_adapter_config
    from holdpose.train.convert import convert_weights, ldm_stablepose_table_for

    adapter = tiny_adapter(unet, seed=5)
    with torch.no_grad():  # non-zero outputs, so identical outputs mean identical weights
        for p in adapter.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    hints = ["input_blocks.3.0.op.weight"] + [f"attn_layer.transformer.layers.{i}." for i in range(2)]
    state = official_names(adapter.state_dict(), ldm_stablepose_table_for(hints))
    state["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(3)  # the frozen SD parts: left out
    state["first_stage_model.encoder.conv_in.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "final.pth")
    with pytest.raises(HoldposeError, match="--allow-pickle"):
        convert_weights(tmp_path / "final.pth", tmp_path / "sp.safetensors", format="ldm-stablepose")
    converted = convert_weights(tmp_path / "final.pth", tmp_path / "sp.safetensors", format="ldm-stablepose",
                                expected=adapter.state_dict(), allow_pickle=True)
    assert sorted(converted) == sorted(adapter.state_dict())
    save_adapter_config(tmp_path, vit_config_for(unet), 2, "official", "tiny")  # the tiny ViT, not the paper's
    loaded, settings = load_adapter(unet, tmp_path / "sp.safetensors")
    x = adapter_inputs(4)
    with torch.no_grad():
        a = adapter(x["sample"], 7, x["encoder_hidden_states"], pose_image=x["pose_image"], masks=x["masks"])
        b = loaded.eval()(x["sample"], 7, x["encoder_hidden_states"], pose_image=x["pose_image"], masks=x["masks"])
    assert all(torch.equal(u, v) for u, v in zip(a[0] + [a[1]], b[0] + [b[1]]))
    assert settings["mask_mode"] == "official"


def test_a_checkpoint_of_another_shape_is_refused_in_one_line(unet, tmp_path):
    from safetensors.torch import save_file

    from holdpose.animate.diffusion.stablepose.model import load_adapter

    save_file({"conv_in.weight": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(HoldposeError, match="does not fit the model") as err:
        load_adapter(unet, tmp_path / "x.safetensors")
    assert "\n" not in str(err.value)


# --- training and sampling with tiny models ------------------------------------------------------------


def train_tiny(output, steps, *, callback=None, components=None, lr=1e-3, checkpoint_every=10):
    from holdpose.animate.diffusion.stablepose.training import StablePoseTrainSettings, train_stablepose

    settings = StablePoseTrainSettings(model=str(tiny_models()["model"]), steps=steps, resolution=64,
                                       learning_rate=lr, held_out=1, checkpoint_every=checkpoint_every, eval_every=10)
    return train_stablepose(IMAGES, IMAGES / "annotations.json", output, settings, progress=False, callback=callback,
                            components=components)


@pytest.mark.slow
@needs_fixture_images
def test_30_steps_lower_the_held_out_loss_and_leave_the_unet_bit_identical(tmp_path):
    from holdpose.animate.diffusion.loading import load_base_components

    components = load_base_components(tiny_models()["model"], dtype=torch.float32)
    before = copy.deepcopy(components["unet"].state_dict())
    result = train_tiny(tmp_path / "run", 30, components=components)
    losses = dict(result.eval_losses)
    assert losses[30] < 0.9 * losses[0]  # on the image held out of training
    assert all(torch.equal(before[k], v) for k, v in components["unet"].state_dict().items())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["trainable_parameters"] == result.trainable_parameters == 1_602_064
    assert all(name.startswith("adapter.") for name in manifest["tensors"])
    training = json.loads((tmp_path / "run" / "training.json").read_text())
    assert training["held_out"] == ["coco_000000197388.jpg"]


@needs_fixture_images
def test_interrupted_training_resumes_to_identical_weights(tmp_path):
    from safetensors.torch import load_file

    train_tiny(tmp_path / "whole", 4, checkpoint_every=2)

    def stop(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_tiny(tmp_path / "cut", 4, callback=stop, checkpoint_every=2)
    result = train_tiny(tmp_path / "cut", 4, checkpoint_every=2)
    assert result.resumed_from == 2
    a, b = (load_file(str(tmp_path / run / "trainable.safetensors")) for run in ("whole", "cut"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny adapter run folder whose zero convolutions are not zero (so the pose matters)."""
    from safetensors.torch import load_file, save_file

    if not (IMAGES / "annotations.json").exists():
        pytest.skip("fixtures absent")
    folder = tmp_path_factory.mktemp("stablepose") / "run"
    with single_torch_thread():
        train_tiny(folder, 2)
    tensors = load_file(str(folder / "trainable.safetensors"))
    g = torch.Generator().manual_seed(0)
    for name in tensors:
        if "controlnet_" in name or "zero_conv" in name:
            tensors[name] = torch.randn(tensors[name].shape, generator=g) * 0.2
    save_file(tensors, str(folder / "trainable.safetensors"))
    return folder


def test_sampling_is_deterministic_resumable_and_follows_the_pose(trained):
    from holdpose.animate.diffusion.stablepose.animator import StablePoseAnimator

    animator = StablePoseAnimator(model=str(tiny_models()["model"]), adapter=trained)
    poses = walking_poses(3)
    options = dict(prompt="a person", resolution=64, num_inference_steps=2, batch_size=2)
    frames = list(animator(reference_image(), poses, seed=1, **options))
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    assert np.array_equal(list(animator(reference_image(), poses, seed=1, start_frame=2, **options))[0], frames[2])
    assert not np.array_equal(frames[0], frames[1])  # same noise, other pose
    unscaled = list(animator(reference_image(), poses[:1], seed=1, controlnet_scale=0.0, **options))[0]
    assert not np.array_equal(unscaled, frames[0])
    assert animator.config()["extra"]["mask_mode"] == "clean" and animator.pose_style == "humansd"


def test_an_ip_adapter_carries_the_reference_into_the_frames(trained):
    from holdpose.animate.diffusion.stablepose.animator import StablePoseAnimator

    paths = tiny_models()
    animator = StablePoseAnimator(model=str(paths["model"]), adapter=trained, ip_adapter=paths["ip_adapter"],
                                  ip_adapter_weight="models/ip-adapter.safetensors")
    options = dict(prompt="a person", resolution=64, num_inference_steps=2)
    runs = [next(iter(animator(reference_image(seed=s), walking_poses(1), seed=3, ip_adapter_scale=1.0, **options)))
            for s in (0, 1)]
    assert not np.array_equal(*runs)  # same pose, noise and prompt: only the reference differs


def test_unconditional_half_gets_all_ones_masks_and_the_same_pose_image(trained):
    from holdpose.animate.diffusion.stablepose.animator import StablePoseAnimator
    from holdpose.render.humansd import draw_humansd

    animator = StablePoseAnimator(model=str(tiny_models()["model"]), adapter=trained)
    pose = draw_humansd(walking_poses(1).keypoints[0], walking_poses(1).scores[0], (64, 64))[None]
    (image, masks), scale = animator.controlnet_inputs([pose], [0.5], do_cfg=True)
    assert scale == 0.5 and image.shape == (2, 3, 64, 64) and masks.shape == (2, 2, 32, 32)
    assert torch.equal(image[0], image[1]) and masks[0].all() and not masks[1].all() and masks[1].any()


def test_cli_trains_generates_and_animates(trained, tmp_path, capsys):
    from holdpose.io.posefile import save_poses
    from holdpose.io.video import read_image, write_image

    model = str(tiny_models()["model"])
    run = tmp_path / "run"
    assert main(["-q", "train", "stablepose", "--images", str(IMAGES), "--annotations", str(IMAGES / "annotations.json"),
                 "--model", model, "--steps", "2", "--resolution", "64", "-o", str(run)]) == 0
    assert "1,602,064 adapter parameters trained for 2 steps" in capsys.readouterr().out
    save_poses(walking_poses(2), tmp_path / "poses.json")
    common = ["--model", model, "--adapter", str(trained), "--resolution", "64", "--steps", "2"]
    assert main(["-q", "generate", str(tmp_path / "poses.json"), "--prompt", "a dancer", "--frame", "1",
                 "-o", str(tmp_path / "one.png"), *common]) == 0
    assert read_image(tmp_path / "one.png").shape == (64, 64, 3)
    write_image(tmp_path / "ref.png", reference_image())
    assert main(["-q", "generate", str(tmp_path / "poses.json"), "--prompt", "a dancer", "--reference",
                 str(tmp_path / "ref.png"), "-o", str(tmp_path / "two.png"), *common]) == 0
    assert read_image(tmp_path / "two.png").shape == (64, 64, 3)
    assert main(["-q", "animate", str(tmp_path / "ref.png"), str(tmp_path / "poses.json"), "--no-align",
                 "--backend", "stablepose", "-o", str(tmp_path / "out.mp4"), *common]) == 0
    assert len(list((tmp_path / "out.frames").rglob("*.png"))) == 2


def test_cli_errors_are_one_line(tmp_path, capsys):
    from holdpose.io.posefile import save_poses

    save_poses(walking_poses(1), tmp_path / "poses.json")
    cases = [
        (["generate", str(tmp_path / "poses.json"), "-o", str(tmp_path / "x.png")], "needs an adapter (--adapter)"),
        (["generate", str(tmp_path / "poses.json"), "-o", str(tmp_path / "x.mp4"), "--adapter", "a"], "must be .png"),
        (["generate", str(tmp_path / "poses.json"), "-o", str(tmp_path / "x.png"), "--adapter", "a",
          "--controlnet", "c"], "takes no ControlNet (--controlnet)"),
        (["generate", str(tmp_path / "poses.json"), "-o", str(tmp_path / "x.png"), "--adapter", "a", "--frame", "3"],
         "frames 0..0"),
    ]
    for argv, message in cases:
        assert main(["-q", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_sd15_adapter_has_exactly_the_counted_trainable_parameters():
    import sys
    from pathlib import Path

    accelerate = pytest.importorskip("accelerate")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_diffusion import SD15_UNET
    from diffusers import UNet2DConditionModel

    with accelerate.init_empty_weights():
        adapter = StablePoseAdapter.from_unet(UNet2DConditionModel(**SD15_UNET), config=PMSAConfig())
    # ControlNet 361,279,120 - hint encoder 1,086,480 - the two resnet norms 1,280 + PMSA 3,367,872
    # + cond_conv 553,280 + pose extractor 831,104
    assert sum(p.numel() for p in adapter.parameters()) == 364_943_616
