"""DisPose's modules on tiny random models (SEED_MODULES §3): point scatter means, encoder shapes
and initial values, out-of-place additions with a bit-identical UNet at initialisation, DIFT
determinism and ensemble mean, and the checkpoint key layout on a tiny SVD config."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import one_torch_thread  # noqa: E402,F401 - the fixture pytestmark uses
from diffusion_fixtures import CROSS_ATTENTION, tiny_svd_unet, tiny_unet, tiny_vae  # noqa: E402

from holdpose.animate.diffusion.dispose.dift import dift_features, sample_at_points, up_block_features  # noqa: E402
from holdpose.animate.diffusion.dispose.model import (  # noqa: E402
    HybridControlNet, MotionEncoder, PointEncoder, PoseNet, down_block_sizes, scatter_points)
from holdpose.train.side import residual_hooks  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SD15_CHANNELS = (320, 640, 1280, 1280)


def test_points_sharing_a_cell_are_averaged_and_the_mask_marks_occupied_cells():
    embeddings = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 5.0]])
    cells = torch.tensor([[[1, 2], [1, 2], [0, 0]]])  # two points in cell (1, 2)
    maps, mask = scatter_points(embeddings, cells, torch.tensor([[True, True, False]]), (4, 4))
    assert maps.shape == (1, 2, 4, 4) and mask.shape == (1, 1, 4, 4)
    assert torch.equal(maps[0, :, 1, 2], torch.tensor([2.0, 4.0]))
    assert mask.sum() == 1 and mask[0, 0, 1, 2] == 1 and not maps[0, :, 0, 0].any()


def test_point_encoder_levels_have_sd15_shapes_and_are_zero_off_the_mask():
    torch.manual_seed(0)
    encoder = PointEncoder(1280, SD15_CHANNELS)
    maps = torch.randn(2, 1280, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 10:14, 5:9] = 1
    sizes = [(32, 32), (16, 16), (8, 8), (8, 8)]  # H/16, H/32, H/64, H/64 at 512x512
    out = encoder(maps * mask, mask, sizes)
    assert [tuple(o.shape[1:]) for o in out] == [(c, *s) for c, s in zip(SD15_CHANNELS, sizes)]
    assert not out[0][:, :, :10].any() and not out[0][:, :, :, 9:].any() and out[0][:, :, 10:14, 5:9].abs().sum() > 0


def test_sd15_down_block_sizes():
    class Config:
        down_block_types = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)

    assert down_block_sizes(Config, (64, 64)) == [(32, 32), (16, 16), (8, 8), (8, 8)]


def test_motion_encoder_shapes_and_its_initial_output_is_the_fusion_bias():
    torch.manual_seed(0)
    encoder = MotionEncoder(320)
    flows = torch.randn(3, 4, 64, 48) * 10
    out = encoder(flows)
    assert out.shape == (3, 320, 8, 6)  # 8x down, as SD 1.5's VAE
    assert torch.allclose(out, encoder.conv_final.bias.view(1, -1, 1, 1).expand_as(out))
    keys = {k.split(".")[0] for k in encoder.state_dict()}
    assert keys == {"conv_in_flow", "blocks_flow", "conv_out_flow", "conv_in_traj", "blocks_traj", "conv_out_traj",
                    "conv_final"}
    assert {k.split(".")[1] for k in encoder.state_dict() if k.startswith("blocks_flow")} == set("012345")


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return tiny_unet().eval()


def hybrid_for(unet, seed=1):
    torch.manual_seed(seed)
    return HybridControlNet.from_base(unet, feature_dim=32, motion_channels=(16, 32)).eval()


def inputs(seed=0, frames=2):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(frames, 4, 32, 32, generator=g)
    text = torch.randn(frames, 77, CROSS_ATTENTION, generator=g)
    flows = torch.randn(frames, 4, 64, 64, generator=g) * 5
    point_maps = torch.randn(frames, 32, 16, 16, generator=g)
    point_mask = (torch.rand(frames, 1, 16, 16, generator=g) > 0.8).float()
    return sample, text, flows, point_maps * point_mask, point_mask


def test_at_initialisation_the_hybrid_controlnet_leaves_the_unet_output_bit_identical(unet):
    net = hybrid_for(unet)
    sample, text, flows, maps, mask = inputs()
    with torch.no_grad():
        down, mid = net(sample, 500, text, flows=flows, point_maps=maps, point_mask=mask)
        plain = unet(sample, 500, encoder_hidden_states=text).sample
        guided = unet(sample, 500, encoder_hidden_states=text, down_block_additional_residuals=down,
                      mid_block_additional_residual=mid).sample
    assert len(down) == 6 and all(not d.any() for d in down) and not mid.any()
    assert torch.equal(plain, guided)


def test_point_features_enter_after_each_down_block_out_of_place(unet):
    net = hybrid_for(unet)
    sample, text, flows, maps, mask = inputs()
    for conv in [*net.controlnet_down_blocks, net.controlnet_mid_block]:  # make the outputs visible
        torch.nn.init.normal_(conv.weight, std=0.1)
    caught = []
    handle = net.down_blocks[0].register_forward_hook(lambda m, a, out: caught.append(out))
    with torch.no_grad():
        with_points = net(sample, 500, text, flows=flows, point_maps=maps, point_mask=mask)
        without = net(sample, 500, text, flows=flows)
    handle.remove()
    hidden, skips = caught[0]
    hidden_again, skips_again = caught[1]
    assert torch.equal(hidden, hidden_again) and all(torch.equal(a, b) for a, b in zip(skips, skips_again))
    # block 0's own skips are unchanged; what comes after it sees the points
    assert all(torch.equal(a, b) for a, b in zip(with_points[0][:4], without[0][:4]))
    assert not torch.equal(with_points[0][4], without[0][4]) and not torch.equal(with_points[1], without[1])


def test_the_motion_fields_change_the_residuals_once_trained(unet):
    net = hybrid_for(unet)
    torch.nn.init.normal_(net.controlnet_cond_embedding.conv_out_flow.weight, std=0.1)
    for conv in net.controlnet_down_blocks:
        torch.nn.init.normal_(conv.weight, std=0.1)
    sample, text, flows, _, _ = inputs()
    with torch.no_grad():
        a, _ = net(sample, 500, text, flows=flows)
        b, _ = net(sample, 500, text, flows=flows * 0)
    assert not torch.equal(a[0], b[0])


def test_dift_is_deterministic_and_the_ensemble_mean_is_the_mean_of_single_passes(unet):
    from diffusers import DDIMScheduler

    torch.manual_seed(0)
    vae = tiny_vae().eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    text = torch.randn(1, 77, CROSS_ATTENTION)
    a = dift_features(unet, vae, scheduler, image, text, seed=3, ensemble=4, up_block=1)
    b = dift_features(unet, vae, scheduler, image, text, seed=3, ensemble=4, up_block=1)
    assert torch.equal(a, b) and a.shape == (1, 32, 32, 32)  # the tiny UNet's up_blocks[1]: 32 channels
    noise = torch.randn(4, 4, 32, 32)
    together = dift_features(unet, vae, scheduler, image, text, seed=3, noise=noise)
    singles = [dift_features(unet, vae, scheduler, image, text, seed=3, noise=n[None]) for n in noise]
    assert torch.allclose(together, torch.stack(singles).mean(0), atol=1e-5)


def test_features_sampled_at_points_bilinearly_with_zeros_for_missing_ones():
    features = torch.arange(16.0).view(1, 1, 4, 4)  # value = 4 row + col at cell centres
    # cell (1, 2)'s centre on a 64x64 canvas (16 px cells) is pixel (40, 24)
    out = sample_at_points(features, np.array([[40.0, 24.0], [8, 8]]), np.array([True, False]), (64, 64))
    assert out.shape == (2, 1) and out[0, 0] == pytest.approx(6.0) and out[1, 0] == 0


def test_up_block_hook_leaves_no_trace(unet):
    x = torch.randn(1, 4, 32, 32)
    text = torch.randn(1, 77, CROSS_ATTENTION)
    up_block_features(unet, x, torch.tensor([261]), text)
    assert not unet.up_blocks[1]._forward_hooks



RELEASED_PREFIXES = {"conv_in", "time_embedding", "add_embedding", "down_blocks", "mid_block",
                     "controlnet_cond_embedding", "point_adapter", "controlnet_down_blocks", "controlnet_mid_block"}


def test_svd_checkpoint_layout_strict_round_trip_and_hooks(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    unet = tiny_svd_unet().eval()
    net = HybridControlNet.from_base(unet, feature_dim=32, motion_channels=(16, 32, 96, 256)).eval()
    state = net.state_dict()
    assert {k.split(".")[0] for k in state} == RELEASED_PREFIXES
    assert {k.rsplit(".", 1)[0] for k in state if k.startswith("point_adapter")} == {
        f"point_adapter.model_list.{i}.mlp.{j}" for i in range(2) for j in (0, 2)}
    pose_net = PoseNet(32)
    assert {k.split(".")[0] for k in pose_net.state_dict()} == {"conv_layers", "final_proj", "scale"}
    assert {k.split(".")[1] for k in pose_net.state_dict() if k.startswith("conv_layers")} == {
        str(i) for i in range(0, 16, 2)}
    assert pose_net.scale.item() == 2.0 and not pose_net(torch.randn(1, 3, 64, 64)).any()

    # random weights, saved and loaded strictly into a fresh build
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.02)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "dispose.safetensors"))
    fresh = HybridControlNet.from_base(unet, feature_dim=32, motion_channels=(16, 32, 96, 256)).eval()
    fresh.load_state_dict(load_file(str(tmp_path / "dispose.safetensors")), strict=True)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 8, 16, 16, generator=g)  # [B, F, C, h, w]
    image = torch.randn(1, 1, 32, generator=g)
    time_ids = torch.tensor([[6.0, 127.0, 0.02]])
    flows = torch.randn(3, 4, 128, 128, generator=g)
    with torch.no_grad():
        a = net(x, 10, image, flows=flows, added_time_ids=time_ids)
        b = fresh(x, 10, image, flows=flows, added_time_ids=time_ids)
        assert all(torch.equal(p, q) for p, q in zip(a[0], b[0]))
        plain = unet(x, 10, image, added_time_ids=time_ids).sample
        with residual_hooks(unet, *a):
            guided = unet(x, 10, image, added_time_ids=time_ids).sample
    assert not torch.equal(plain, guided)


def test_a_released_layout_checkpoint_converts_and_loads_strictly(tmp_path):
    """A pickled checkpoint in the released layout (wrapped, DataParallel ``module.`` prefixes,
    hybrid ControlNet and MimicMotion PoseNet tensors) -> ``convert-weights`` plain -> strict load."""
    from holdpose.animate.diffusion.dispose.model import load_released
    from holdpose.train.convert import convert_weights

    torch.manual_seed(0)
    unet = tiny_svd_unet().eval()
    hybrid = HybridControlNet.from_base(unet, feature_dim=32, motion_channels=(16, 32, 96, 256))
    pose_net = PoseNet(32)
    generator = torch.Generator().manual_seed(1)
    released = {f"module.{k}": torch.randn(v.shape, generator=generator) for k, v in hybrid.state_dict().items()}
    released.update({f"module.pose_net.{k}": torch.randn(v.shape, generator=generator)
                     for k, v in pose_net.state_dict().items()})
    torch.save({"state_dict": released}, tmp_path / "DisPose.pth")
    expected = {**{k: tuple(v.shape) for k, v in hybrid.state_dict().items()},
                **{f"pose_net.{k}": tuple(v.shape) for k, v in pose_net.state_dict().items()}}
    tensors = convert_weights(tmp_path / "DisPose.pth", tmp_path / "dispose.safetensors", allow_pickle=True,
                              expected=expected)
    load_released(hybrid, tensors, pose_net)
    assert torch.equal(hybrid.controlnet_mid_block.weight, released["module.controlnet_mid_block.weight"])
    assert torch.equal(pose_net.scale, released["module.pose_net.scale"])
