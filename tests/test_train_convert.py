"""Checkpoint conversion (SEED_MODULES S8): renaming tables, pickles only on request, strict loads."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import single_torch_thread, tiny_controlnet, tiny_unet  # noqa: E402

from holdpose.cli import main  # noqa: E402
from holdpose.errors import HoldposeError  # noqa: E402
from holdpose.train.convert import (  # noqa: E402
    check_fits, convert_weights, ldm_encoder_table, ldm_encoder_table_for, load_state_dict, rename)


@pytest.fixture(scope="module")
def controlnet():
    with single_torch_thread():
        torch.manual_seed(0)
        return tiny_controlnet(tiny_unet()).eval()


def to_ldm(state: dict, hint_blocks: int = 2) -> dict:
    """The ControlNet's state dict in the original ldm layout, by inverting the table
    (``control_model.`` prefix, as in a ControlLDM checkpoint)."""
    table = ldm_encoder_table(levels=2, layers_per_block=2, hint_blocks=hint_blocks)
    inverse = [(new, old) for old, new in table]
    return {"control_model." + k: v for k, v in rename(state, inverse).items()}


def test_the_table_agrees_with_diffusers_own_ldm_converter():
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    # diffusers' converter assumes SD's hint encoder (6 inner convolutions, conv_out at index 14)
    torch.manual_seed(0)
    state = ControlNetModel.from_unet(tiny_unet()).state_dict()
    ldm = to_ldm(state, hint_blocks=6)
    assert any(k.startswith("control_model.input_blocks.1.0.in_layers.0.") for k in ldm)
    assert any(k.startswith("control_model.zero_convs.5.0.") for k in ldm)
    theirs = convert_controlnet_checkpoint(ldm, {"layers_per_block": 2})
    assert set(theirs) == set(state)  # diffusers maps our ldm names back to every original name
    assert all(torch.equal(theirs[k], state[k]) for k in state)


def test_the_shape_is_read_from_the_keys():
    sd15 = ldm_encoder_table()
    keys = [old + "weight" for old, _ in sd15]
    assert ldm_encoder_table_for(keys) == sd15
    assert ("input_blocks.11.1.", "down_blocks.3.attentions.1.") in sd15  # (SD 1.5's last level has none, harmless)
    assert ("zero_convs.11.0.", "controlnet_down_blocks.11.") in sd15 and len([r for r in sd15 if "zero" in r[0]]) == 12


def test_pickled_ldm_checkpoint_converts_and_loads_strictly(controlnet, tmp_path):
    from diffusers import ControlNetModel
    from safetensors.torch import load_file

    source = tmp_path / "control.ckpt"
    torch.save({"state_dict": to_ldm(controlnet.state_dict()), "epoch": 3}, source)  # a Lightning-style file
    out = tmp_path / "control.safetensors"
    expected = {k: v.shape for k, v in controlnet.state_dict().items()}
    convert_weights(source, out, format="ldm-controlnet", allow_pickle=True, expected=expected)
    model = ControlNetModel.from_config(controlnet.config)
    model.load_state_dict(load_file(str(out)), strict=True)
    x = torch.randn(1, 4, 32, 32)
    hint = torch.rand(1, 3, 64, 64)
    context = torch.randn(1, 77, 32)
    with torch.no_grad():
        a = controlnet(x, 100, context, controlnet_cond=hint, return_dict=False)
        b = model.eval()(x, 100, context, controlnet_cond=hint, return_dict=False)
    assert all(torch.equal(p, q) for p, q in zip(a[0], b[0])) and torch.equal(a[1], b[1])


def test_pickles_are_refused_without_allow_pickle(tmp_path):
    source = tmp_path / "w.pth"
    torch.save({"a": torch.ones(2)}, source)
    with pytest.raises(HoldposeError, match="--allow-pickle"):
        load_state_dict(source)


def test_wrappers_and_data_parallel_prefixes_are_unwrapped(tmp_path):
    source = tmp_path / "w.pth"
    torch.save({"model": {"module.point_adapter.w": torch.ones(2), "module.b": torch.zeros(1)}, "step": 5}, source)
    assert sorted(load_state_dict(source, allow_pickle=True)) == ["b", "point_adapter.w"]


def test_a_json_table_and_a_stripped_prefix(tmp_path):
    from safetensors.torch import load_file, save_file

    save_file({"net.encoder.0.weight": torch.ones(2), "net.head.bias": torch.zeros(1)}, str(tmp_path / "in.safetensors"))
    (tmp_path / "table.json").write_text(json.dumps([["encoder.0.", "conv_in."]]))
    convert_weights(tmp_path / "in.safetensors", tmp_path / "out.safetensors", table_file=tmp_path / "table.json",
                    strip_prefix="net.")
    assert sorted(load_file(str(tmp_path / "out.safetensors"))) == ["conv_in.weight", "head.bias"]
    convert_weights(tmp_path / "in.safetensors", tmp_path / "out.safetensors", table_file=tmp_path / "table.json",
                    strip_prefix="net.", drop_unmatched=True, overwrite=True)
    assert sorted(load_file(str(tmp_path / "out.safetensors"))) == ["conv_in.weight"]


def test_a_checkpoint_that_does_not_fit_is_reported_before_writing(tmp_path):
    with pytest.raises(HoldposeError, match="1 missing .first: b.; 1 of the wrong shape .first: a."):
        check_fits({"a": torch.ones(2)}, {"a": (3,), "b": (1,)})
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2)}, str(tmp_path / "in.safetensors"))
    with pytest.raises(HoldposeError, match="does not fit"):
        convert_weights(tmp_path / "in.safetensors", tmp_path / "out.safetensors", expected={"b": (2,)})
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_converts_verifies_against_a_model_folder_and_errors_in_one_line(controlnet, tmp_path, capsys):
    from safetensors.torch import load_file

    controlnet.save_config(tmp_path / "model")
    source = tmp_path / "control.pth"
    torch.save(to_ldm(controlnet.state_dict()), source)
    out = tmp_path / "control.safetensors"
    args = ["convert-weights", str(source), str(out), "--format", "ldm-controlnet", "--verify", str(tmp_path / "model")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("holdpose: error: ") and "--allow-pickle" in err and err.count("\n") == 1
    assert main(args + ["--allow-pickle"]) == 0
    assert "fits" in capsys.readouterr().out
    assert set(load_file(str(out))) == set(controlnet.state_dict())
    assert main(args + ["--allow-pickle"]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
