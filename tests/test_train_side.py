"""Side networks (SEED_MODULES S2): the encoder copy, its slots, and residual hooks."""

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import one_torch_thread  # noqa: E402,F401 - the fixture pytestmark uses
from diffusion_fixtures import (  # noqa: E402
    CROSS_ATTENTION, single_torch_thread, tiny_controlnet, tiny_svd_unet, tiny_unet)

from holdpose.train.side import SideNetwork, residual_hooks, skip_channels  # noqa: E402


@pytest.fixture(scope="module")
def models():
    with single_torch_thread():
        torch.manual_seed(0)
        unet = tiny_unet().eval()
        return unet, tiny_controlnet(unet).eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 4, 32, 32, generator=g), torch.randn(2, 77, CROSS_ATTENTION, generator=g),
            torch.rand(2, 3, 64, 64, generator=g))


def test_with_a_controlnet_state_dict_it_is_that_controlnet(models):
    unet, controlnet = models
    side = SideNetwork.from_unet(unet, condition_encoder=copy.deepcopy(controlnet.controlnet_cond_embedding)).eval()
    side.load_state_dict(controlnet.state_dict(), strict=True)  # the same parameter names
    x, context, hint = _inputs()
    with torch.no_grad():
        expected_down, expected_mid = controlnet(x, 400, context, controlnet_cond=hint, conditioning_scale=0.7,
                                                 return_dict=False)
        down, mid = side(x, 400, context, condition=hint, conditioning_scale=0.7)
    assert len(down) == len(expected_down) == 6
    assert all(torch.equal(a, b) for a, b in zip(down, expected_down)) and torch.equal(mid, expected_mid)


def test_at_initialisation_the_residuals_are_zero_and_the_unet_output_bit_identical(models):
    unet, _ = models
    side = SideNetwork.from_unet(unet).eval()
    x, context, _ = _inputs(1)
    with torch.no_grad():
        down, mid = side(x, 10, context)
        plain = unet(x, 10, context).sample
        fed = unet(x, 10, context, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    assert [r.shape[1] for r in down] == skip_channels(unet) == [32, 32, 32, 32, 64, 64]
    assert all(not r.any() for r in down) and not mid.any()
    assert torch.equal(fed, plain)


def test_block_additions_change_the_hidden_state_passed_on_not_the_block_skips(models):
    unet, _ = models
    side = SideNetwork.from_unet(unet).eval()
    with torch.no_grad():
        for conv in [*side.controlnet_down_blocks, side.controlnet_mid_block]:
            torch.nn.init.dirac_(conv.weight)  # identity 1x1 convs: the residuals show the skips
    x, context, _ = _inputs(2)
    addition = torch.full((2, 32, 16, 16), 0.5)  # after down block 0 (32 ch at 16x16 latents)
    with torch.no_grad():
        plain_down, plain_mid = side(x, 10, context)
        down, mid = side(x, 10, context, block_additions=[addition, None])
    # skips 0-3 (conv_in and down block 0 with its downsampler) come before the addition
    assert all(torch.equal(down[i], plain_down[i]) for i in range(4))
    assert not torch.equal(down[4], plain_down[4]) and not torch.equal(mid, plain_mid)


def test_a_condition_encoder_requires_a_condition(models):
    unet, controlnet = models
    side = SideNetwork.from_unet(unet, condition_encoder=copy.deepcopy(controlnet.controlnet_cond_embedding))
    x, context, _ = _inputs()
    with pytest.raises(ValueError, match="condition="):
        side(x, 10, context)


def test_hooks_equal_the_residual_arguments_bit_for_bit_and_leave_no_trace(models):
    unet, controlnet = models
    x, context, hint = _inputs(3)
    with torch.no_grad():
        down, mid = controlnet(x, 250, context, controlnet_cond=hint, return_dict=False)
        expected = unet(x, 250, context, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample
        plain = unet(x, 250, context).sample
        with residual_hooks(unet, down, mid):
            hooked = unet(x, 250, context).sample
        after = unet(x, 250, context).sample
    assert torch.equal(hooked, expected)
    assert not torch.equal(hooked, plain)
    assert torch.equal(after, plain)  # hooks removed on exit


def test_hooks_add_out_of_place(models):
    unet, controlnet = models
    x, context, hint = _inputs(4)
    seen = []  # (the tensors a down block returned, copies taken at that moment)
    handles = [block.register_forward_hook(lambda m, a, out: seen.append((out[1], [r.clone() for r in out[1]])))
               for block in unet.down_blocks]
    try:
        with torch.no_grad():
            down, mid = controlnet(x, 250, context, controlnet_cond=hint, return_dict=False)
            with residual_hooks(unet, down, mid):
                unet(x, 250, context)
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == 2 and any(r.any() for r in down)
    # an in-place addition would have changed the tensors the down blocks returned
    assert all(torch.equal(r, copy) for returned, copies in seen for r, copy in zip(returned, copies))


def test_hooks_reject_a_wrong_number_of_residuals(models):
    unet, controlnet = models
    x, context, hint = _inputs()
    with torch.no_grad():
        down, mid = controlnet(x, 250, context, controlnet_cond=hint, return_dict=False)
    with pytest.raises(ValueError, match="5 residuals"):
        with residual_hooks(unet, down[:5], mid):
            pass
    assert not any(block._forward_pre_hooks for block in unet.up_blocks)



def test_svd_side_network_computes_the_unets_own_skips_and_feeds_them_through_hooks():
    torch.manual_seed(0)
    unet = tiny_svd_unet().eval()
    side = SideNetwork.from_unet(unet).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 8, 16, 16, generator=g)  # [B, F, C, h, w]
    image = torch.randn(1, 1, 32, generator=g)
    time_ids = torch.tensor([[6.0, 127.0, 0.02]])
    skips, mids = [], []
    handles = [unet.conv_in.register_forward_hook(lambda m, a, out: skips.append(out))]
    handles += [b.register_forward_hook(lambda m, a, out: skips.extend(out[1])) for b in unet.down_blocks]
    handles.append(unet.mid_block.register_forward_hook(lambda m, a, out: mids.append(out)))
    with torch.no_grad():
        plain = unet(x, 300, image, added_time_ids=time_ids).sample
        for handle in handles:
            handle.remove()
        down, mid = side(x, 300, image, added_time_ids=time_ids)
        assert all(not r.any() for r in down) and not mid.any()
        with residual_hooks(unet, down, mid):
            assert torch.equal(unet(x, 300, image, added_time_ids=time_ids).sample, plain)  # zero convs: no-op
        for conv in [*side.controlnet_down_blocks, side.controlnet_mid_block]:
            torch.nn.init.dirac_(conv.weight)  # identity convs: the residuals are the copied encoder's skips
        down, mid = side(x, 300, image, added_time_ids=time_ids)
        with residual_hooks(unet, down, mid):
            doubled = unet(x, 300, image, added_time_ids=time_ids).sample
    assert len(down) == len(skips) == len(skip_channels(unet)) == 6
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(down, skips)) and torch.allclose(mid, mids[0], atol=1e-6)
    assert not torch.allclose(doubled, plain)
    with pytest.raises(ValueError, match="added_time_ids"):
        side(x, 300, image)
