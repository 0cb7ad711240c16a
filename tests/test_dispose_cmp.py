"""The CMP network (the paper's dense propagator): its parameter names and shapes are the released
checkpoint's, a checkpoint in the official layout converts and loads strictly, and the propagator
built on it returns a canvas-sized field whose scale is the decoded bins'. Random weights, CPU."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from holdpose.animate.diffusion.dispose.cmp import CMP, bins_to_flow, load_cmp  # noqa: E402
from holdpose.animate.diffusion.dispose.propagate import CMPPropagator  # noqa: E402
from holdpose.errors import HoldposeError  # noqa: E402
from holdpose.train.convert import convert_weights  # noqa: E402

# Names and shapes in ckpt_iter_42000.pth.tar's ``state_dict`` (resnet50_vip+mpii_liteflow), without the
# ``module.`` prefix CMP's FixModule/DistModule wrapper adds and convert-weights removes. The sparse encoder
# and decoder rows follow models/modules/{shallownet,decoder}.py; the image encoder's are the standard
# ResNet-50 names plus the conv5 head (its source was not available here: [check] on a real file).
OFFICIAL_KEYS = {
    # image_encoder: ResNet-50 (dilated) + conv5 2048 -> img_enc_dim 256
    "image_encoder.conv1.weight": (64, 3, 7, 7),
    "image_encoder.bn1.running_var": (64,),
    "image_encoder.layer1.0.conv1.weight": (64, 64, 1, 1),
    "image_encoder.layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "image_encoder.layer1.0.downsample.1.running_mean": (256,),
    "image_encoder.layer1.2.conv3.weight": (256, 64, 1, 1),
    "image_encoder.layer2.0.conv2.weight": (128, 128, 3, 3),
    "image_encoder.layer2.3.bn3.weight": (512,),
    "image_encoder.layer3.0.downsample.0.weight": (1024, 512, 1, 1),
    "image_encoder.layer3.5.conv2.weight": (256, 256, 3, 3),
    "image_encoder.layer4.0.conv1.weight": (512, 1024, 1, 1),
    "image_encoder.layer4.2.conv3.weight": (2048, 512, 1, 1),
    "image_encoder.layer4.2.bn3.bias": (2048,),
    "image_encoder.conv5.weight": (256, 2048, 1, 1),
    "image_encoder.conv5.bias": (256,),
    # sparse_encoder: shallownet8x(16) on 4 channels (flow, mask)
    "sparse_encoder.features.0.weight": (16, 4, 5, 5),
    "sparse_encoder.features.0.bias": (16,),
    "sparse_encoder.features.1.weight": (16,),
    "sparse_encoder.features.1.running_var": (16,),
    "sparse_encoder.features.4.weight": (16, 16, 3, 3),
    "sparse_encoder.features.5.bias": (16,),
    # flow_decoder: MotionDecoderSkipLayer(input_dim 272, output_dim 198)
    "flow_decoder.decoder1.0.weight": (128, 272, 3, 3),
    "flow_decoder.decoder1.7.running_mean": (128,),
    "flow_decoder.decoder2.1.weight": (128, 272, 3, 3),
    "flow_decoder.decoder4.5.running_var": (128,),
    "flow_decoder.decoder8.7.weight": (128, 128, 3, 3),
    "flow_decoder.decoder8.8.bias": (128,),
    "flow_decoder.fusion8.0.weight": (256, 512, 3, 3),
    "flow_decoder.fusion8.1.weight": (256,),
    "flow_decoder.skipconv4.0.weight": (128, 256, 3, 3),
    "flow_decoder.fusion4.0.weight": (128, 384, 3, 3),
    "flow_decoder.skipconv2.0.weight": (32, 64, 3, 3),
    "flow_decoder.skipconv2.1.running_mean": (32,),
    "flow_decoder.fusion2.0.weight": (64, 160, 3, 3),
    "flow_decoder.head.weight": (198, 64, 1, 1),
    "flow_decoder.head.bias": (198,),
}
TOP_LEVEL = {"image_encoder.conv1", "image_encoder.bn1", "image_encoder.layer1", "image_encoder.layer2",
             "image_encoder.layer3", "image_encoder.layer4", "image_encoder.conv5", "sparse_encoder.features",
             *(f"flow_decoder.{m}" for m in ("decoder1", "decoder2", "decoder4", "decoder8", "fusion8", "skipconv4",
                                             "fusion4", "skipconv2", "fusion2", "head"))}
BLOCKS = {"layer1": 3, "layer2": 4, "layer3": 6, "layer4": 3}  # ResNet-50


def module_of(key: str) -> str:
    return ".".join(key.split(".")[:2])


@pytest.fixture(scope="module")
def state():
    return {k: tuple(v.shape) for k, v in CMP().state_dict().items()}


def test_the_network_has_the_checkpoint_names_and_shapes(state):
    assert {module_of(k) for k in state} == TOP_LEVEL
    wrong = {k: (state.get(k), shape) for k, shape in OFFICIAL_KEYS.items() if state.get(k) != shape}
    assert not wrong
    for layer, count in BLOCKS.items():
        blocks = {int(k.split(".")[2]) for k in state if k.startswith(f"image_encoder.{layer}.")}
        assert blocks == set(range(count))
        assert f"image_encoder.{layer}.1.downsample.0.weight" not in state  # only each layer's first block projects
    # three conv-BN-ReLU units: conv (weight, bias) + BN (weight, bias, mean, var, count)
    assert sum(k.startswith("flow_decoder.decoder1.") for k in state) == 3 * 7


def official_checkpoint(path, *, with_counts: bool):
    """A ``ckpt_iter_N.pth.tar`` as CMP's trainer saves it (``step``, ``state_dict`` of the
    ``module.``-wrapped model, ``optimizer``), random weights with positive running variances; the
    head's logits are constant: u's bin 59 and v's bin 49 dominate everywhere."""
    generator = torch.Generator().manual_seed(0)
    weights = {}
    for name, tensor in CMP().state_dict().items():
        if name.endswith("num_batches_tracked"):
            if with_counts:
                weights[name] = torch.tensor(42000)
            continue
        value = torch.randn(tensor.shape, generator=generator) * 0.05
        weights[name] = value.abs() + 0.5 if name.endswith("running_var") else value
    weights["flow_decoder.head.weight"] = torch.zeros(198, 64, 1, 1)
    weights["flow_decoder.head.bias"] = torch.zeros(198)
    weights["flow_decoder.head.bias"][[59, 99 + 49]] = 40.0
    torch.save({"step": 42000, "state_dict": {"module." + k: v for k, v in weights.items()}, "optimizer": {}}, path)
    return weights


@pytest.mark.parametrize("with_counts", [True, False], ids=["bn-counts", "pre-0.4.1"])
def test_an_official_checkpoint_converts_and_loads_strictly(tmp_path, with_counts):
    weights = official_checkpoint(tmp_path / "ckpt_iter_42000.pth.tar", with_counts=with_counts)
    convert_weights(tmp_path / "ckpt_iter_42000.pth.tar", tmp_path / "cmp.safetensors", allow_pickle=True)
    model = load_cmp(tmp_path / "cmp.safetensors")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
    assert not model.training


def test_the_propagator_on_converted_weights_gives_the_decoded_scale(tmp_path):
    """Constant logits decode to bin centres −50 + (i + ½)·100/99: u's bin 59 = 10.10 px, v's bin 49 = 0 px on
    the 384 grid, so every canvas pixel of a 100x200 reference moves by (10.10·100/384, 0)."""
    official_checkpoint(tmp_path / "ckpt.pth.tar", with_counts=True)
    convert_weights(tmp_path / "ckpt.pth.tar", tmp_path / "cmp.safetensors", allow_pickle=True)
    reference = np.random.default_rng(0).integers(0, 255, (200, 100, 3), dtype=np.uint8)
    points, scores = np.zeros((133, 2)), np.zeros(133)
    points[:17] = np.random.default_rng(1).uniform(10, 90, (17, 2))
    scores[:17] = 1
    propagator = CMPPropagator(reference, points, scores, tmp_path / "cmp.safetensors")
    field = propagator(points + [5.0, -3.0], scores)
    assert field.shape == (2, 200, 100) and field.dtype == np.float32
    centre_u = -50 + 59.5 * 100 / 99
    assert np.allclose(field[0], centre_u * 100 / 384, atol=1e-3) and np.allclose(field[1], 0, atol=1e-3)


def test_the_flow_follows_the_network_on_random_weights():
    """With random BN statistics the network's flow is finite, within ±fmax, at the input's size, and
    depends on the sparse input (the propagated motion)."""
    torch.manual_seed(0)
    model = CMP().eval()
    image = torch.rand(1, 3, 64, 96)
    sparse = torch.zeros(1, 4, 64, 96)
    with torch.no_grad():
        still = model.flow(image, sparse)
        sparse[0, :2, 30, 40] = torch.tensor([8.0, -4.0])
        sparse[0, 2:, 30, 40] = 1
        moved = model.flow(image, sparse)
    assert still.shape == (1, 2, 64, 96) and torch.isfinite(moved).all()
    assert moved.abs().max() <= 50 and not torch.equal(still, moved)


def test_a_checkpoint_that_does_not_fit_is_one_line(tmp_path):
    from safetensors.torch import save_file

    weights = {k: v.clone() for k, v in CMP().state_dict().items()}
    weights["image_encoder.conv5.weight"] = torch.zeros(128, 2048, 1, 1)
    del weights["flow_decoder.head.bias"]
    save_file(weights, str(tmp_path / "other.safetensors"))
    with pytest.raises(HoldposeError, match="does not fit") as err:
        load_cmp(tmp_path / "other.safetensors")
    assert "flow_decoder.head.bias" in str(err.value) and "image_encoder.conv5.weight" in str(err.value)
    assert "\n" not in str(err.value)

    (tmp_path / "ckpt_iter_42000.pth.tar").write_bytes(b"")
    with pytest.raises(HoldposeError, match="convert-weights") as err:
        load_cmp(tmp_path / "ckpt_iter_42000.pth.tar")
    assert "\n" not in str(err.value)


def test_bins_decode_to_cmp_fuser_centres():
    logits = torch.full((1, 198, 1, 1), -1e4)
    logits[0, 0] = logits[0, 99 + 98] = 0  # u: the first bin, v: the last
    assert bins_to_flow(logits)[0, :, 0, 0].tolist() == pytest.approx([-50 + 50 / 99, 50 - 50 / 99])
    logits = torch.zeros(1, 198, 1, 1)
    logits[0, 59] = logits[0, 99 + 49] = 30  # u: bin 59; v: the middle bin, 0
    assert bins_to_flow(logits)[0, :, 0, 0].tolist() == pytest.approx([-50 + 59.5 * 100 / 99, 0], abs=1e-4)
