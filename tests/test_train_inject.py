"""Injection (SEED_MODULES S1): processors by name pattern, blocks by path, state-dict round trips."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import one_torch_thread  # noqa: E402,F401 - the fixture pytestmark uses
from diffusion_fixtures import CROSS_ATTENTION, tiny_unet  # noqa: E402

from holdpose.train.inject import AdditiveProcessor, ZeroLinear, inject_processors, replace_module  # noqa: E402

ATTN1 = r"\.attn1\.processor$"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 32, 32, generator=g), torch.randn(2, 77, CROSS_ATTENTION, generator=g)


def _run(unet, x, context):
    with torch.no_grad():
        return unet(x, 500, context).sample


def _zero_addition(name, attn):
    return AdditiveProcessor(ZeroLinear(attn.query_dim))


def test_zero_initialised_processors_leave_the_output_bit_identical():
    torch.manual_seed(0)
    unet = tiny_unet().eval()
    x, context = _inputs()
    before = _run(unet, x, context)
    names = inject_processors(unet, ATTN1, _zero_addition)
    # the tiny UNet has transformer blocks in down 1 (2), up 0 (3) and the mid block (1)
    assert len(names) == 6 and all(n.endswith("attn1.processor") for n in names)
    assert torch.equal(_run(unet, x, context), before)


def test_only_matching_processors_change_and_others_keep_their_class():
    torch.manual_seed(0)
    unet = tiny_unet()
    others = {n: type(p) for n, p in unet.attn_processors.items() if "attn2" in n}
    inject_processors(unet, ATTN1, _zero_addition)
    after = unet.attn_processors
    assert {n: type(after[n]) for n in others} == others
    assert all(isinstance(p, AdditiveProcessor) for n, p in after.items() if "attn1" in n)


def test_processor_parameters_are_in_the_state_dict_and_round_trip_strictly(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    unet = tiny_unet().eval()
    inject_processors(unet, ATTN1, _zero_addition)
    keys = [k for k in unet.state_dict() if ".processor." in k]
    assert len(keys) == 12 and all(k.endswith(("processor.addition.weight", "processor.addition.bias")) for k in keys)
    with torch.no_grad():  # train them a little: make them non-zero
        for k in keys:
            unet.get_parameter(k).normal_()
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(tmp_path / "m.safetensors"))

    torch.manual_seed(1)  # different random base weights
    fresh = tiny_unet().eval()
    inject_processors(fresh, ATTN1, _zero_addition)
    fresh.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    x, context = _inputs(3)
    assert torch.equal(_run(fresh, x, context), _run(unet, x, context))


def test_a_non_zero_addition_changes_the_output_by_exactly_that_term():
    torch.manual_seed(0)
    unet = tiny_unet().eval()
    name = "mid_block.attentions.0.transformer_blocks.0.attn1.processor"
    attn = unet.get_submodule(name.removesuffix(".processor"))
    captured = {}
    attn.register_forward_hook(lambda m, args, kwargs, out: captured.setdefault("out", out), with_kwargs=True)
    x, context = _inputs()
    _run(unet, x, context)
    base_out = captured.pop("out")
    inject_processors(unet, r"^mid_block.*attn1", _zero_addition)
    processor = unet.attn_processors[name]
    with torch.no_grad():
        processor.addition.bias.fill_(0.25)
    _run(unet, x, context)
    assert torch.allclose(captured["out"], base_out + 0.25, atol=1e-6)


def test_a_pattern_that_matches_nothing_is_an_error_naming_it():
    unet = tiny_unet()
    with pytest.raises(ValueError, match="attn9"):
        inject_processors(unet, "attn9", _zero_addition)


def test_replace_module_by_path_returns_the_old_block_and_its_keys_follow():
    torch.manual_seed(0)
    unet = tiny_unet().eval()

    class Shifted(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.shift = torch.nn.Parameter(torch.zeros(()))

        def forward(self, hidden_states, temb, *args, **kwargs):
            return self.inner(hidden_states, temb, *args, **kwargs) + self.shift

    x, context = _inputs()
    before = _run(unet, x, context)
    original = unet.get_submodule("down_blocks.0.resnets.0")
    old = replace_module(unet, "down_blocks.0.resnets.0", Shifted(original))
    assert old is original
    assert type(old).__name__ == "ResnetBlock2D"
    assert "down_blocks.0.resnets.0.shift" in unet.state_dict()
    assert "down_blocks.0.resnets.0.inner.conv1.weight" in unet.state_dict()
    assert torch.equal(_run(unet, x, context), before)
    with pytest.raises(AttributeError):
        replace_module(unet, "down_blocks.0.resnets.7", old)
