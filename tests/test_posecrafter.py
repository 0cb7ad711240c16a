"""PoseCrafter (SEED_MODULES §2): the CPU-verifiable known answers, on the real modules.

Selection (Eq. 5), the part affine fits, the latent warp and edit, key-frame attention,
replication (inverting once is exact), zero-initialised temporal attention, inversion of a
replicated clip, exact parameter counts of SD 1.5, and the step schedule.
"""

import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.refine.align import paper_pose_distances, select_reference_frame
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY

from holdpose.animate.diffusion.posecrafter.editing import edit_latent, part_affine, warp_latent
from holdpose.animate.diffusion.posecrafter.tuning import default_steps, heldout_indices, spread_indices


def _random_poses(num_frames: int, seed: int, missing: float = 0.2) -> PoseSequence:
    rng = np.random.default_rng(seed)
    seq = PoseSequence.empty(num_frames, 1, size=(256, 256))
    seq.keypoints[:] = rng.uniform(20, 236, seq.keypoints.shape)
    seq.scores[:] = (rng.random(seq.scores.shape) > missing).astype(np.float32)
    seq.track_ids[:] = 0
    return seq


# --- reference-frame selection (Eq. 5) ---------------------------------------------------------------


def test_selection_finds_the_training_frame_the_targets_were_made_from():
    training = _random_poses(10, seed=0, missing=0.0)
    rng = np.random.default_rng(1)
    target = training[[5, 5, 5]].copy()
    target.keypoints += rng.normal(0, 0.5, target.keypoints.shape).astype(np.float32)
    for metric in ("paper", "normalized"):
        index, scores = select_reference_frame(training, target, metric=metric)
        assert index == 5 and scores.shape == (10,)


def test_the_paper_metric_is_the_brute_force_sum_of_whole_vector_distances():
    training, target = _random_poses(6, seed=2), _random_poses(4, seed=3)
    brute = np.zeros(6)
    for i in range(6):
        for j in range(4):
            shared = (training.scores[i, 0] > 0) & (target.scores[j, 0] > 0)
            diff = training.keypoints[i, 0, shared].astype(np.float64) - target.keypoints[j, 0, shared]
            brute[i] += np.sqrt((diff ** 2).sum())
    index, scores = select_reference_frame(training, target, metric="paper")
    np.testing.assert_allclose(scores, brute, rtol=1e-9)
    assert index == int(np.argmin(brute))
    np.testing.assert_allclose(paper_pose_distances(training, target).sum(1), brute, rtol=1e-9)


def test_selection_ties_go_to_the_lowest_index_and_unknown_metrics_are_refused():
    frame = _random_poses(1, seed=4)
    training = frame[[0, 0, 0]]
    assert select_reference_frame(training, frame, metric="paper")[0] == 0
    with pytest.raises(HoldposeError, match="unknown"):
        select_reference_frame(training, frame, metric="cosine")


# --- affine fit, latent warp and edit (Eq. 18-19) -------------------------------------------------


def _face_pair(seed=5):
    rng = np.random.default_rng(seed)
    face = COCO_WHOLEBODY.group("face")
    reference = np.zeros((133, 2))
    reference[face] = rng.uniform(60, 120, (68, 2))
    a_true = np.array([[0.9, -0.2, 14.0], [0.15, 1.1, -6.0]])
    target = reference @ a_true[:, :2].T + a_true[:, 2]
    present = np.zeros(133, bool)
    present[face] = True
    return reference, target, present, a_true


def test_the_face_affine_is_recovered_from_its_68_landmarks():
    reference, target, present, a_true = _face_pair()
    np.testing.assert_allclose(part_affine(reference, present, target, present, "face"), a_true, atol=1e-6)
    # the hands have no landmarks: no map
    assert part_affine(reference, present, target, present, "left_hand") is None
    two = present.copy()
    two[COCO_WHOLEBODY.group("face").start + 2:] = False
    assert part_affine(reference, two, target, two, "face") is None
    collinear = reference.copy()
    collinear[COCO_WHOLEBODY.group("face"), 1] = 50.0
    assert part_affine(collinear, present, target, present, "face") is None


def test_the_identity_warp_leaves_the_latent_unchanged():
    z = np.random.default_rng(0).normal(size=(4, 12, 10)).astype(np.float32)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    for mode in ("bilinear", "nearest"):
        np.testing.assert_array_equal(warp_latent(z, identity, mode), z)


def test_a_16_pixel_shift_is_a_two_cell_roll_away_from_the_borders():
    z = np.random.default_rng(1).normal(size=(4, 16, 16)).astype(np.float32)
    shift = np.array([[1.0, 0, 16.0], [0, 1.0, 0]])  # pixels, 8 per cell
    from holdpose.render.geometry import affine_to_cells

    warped = warp_latent(z, affine_to_cells(shift, 8))
    np.testing.assert_allclose(warped[:, :, 2:], np.roll(z, 2, axis=2)[:, :, 2:], atol=1e-6)
    np.testing.assert_allclose(warped[:, :, :2], np.repeat(z[:, :, :1], 2, axis=2), atol=1e-6)  # nearest edge


def test_the_edit_changes_only_the_box_around_the_target_part():
    reference, target, present, a_true = _face_pair()
    z = np.random.default_rng(2).normal(size=(4, 32, 32)).astype(np.float32)
    edited, parts = edit_latent(z, reference, present, target, present, cell=8)
    assert parts == ["face"]
    face = target[COCO_WHOLEBODY.group("face")]
    c0, r0 = np.floor(face.min(0) / 8).astype(int)
    c1, r1 = np.ceil(face.max(0) / 8).astype(int)
    outside = np.ones((32, 32), bool)
    outside[r0:r1, c0:c1] = False
    np.testing.assert_array_equal(edited[:, outside], z[:, outside])  # bit for bit
    from holdpose.render.geometry import affine_to_cells

    warped = warp_latent(z, affine_to_cells(a_true, 8))
    np.testing.assert_array_equal(edited[:, r0:r1, c0:c1], warped[:, r0:r1, c0:c1])
    assert not np.array_equal(edited[:, r0:r1, c0:c1], z[:, r0:r1, c0:c1])


def test_nearest_warping_keeps_the_noise_values():
    z = np.random.default_rng(3).normal(size=(4, 20, 20)).astype(np.float32)
    rotation = np.array([[np.cos(0.3), -np.sin(0.3), 2.0], [np.sin(0.3), np.cos(0.3), -1.0]])
    nearest, bilinear = warp_latent(z, rotation, "nearest"), warp_latent(z, rotation, "bilinear")
    assert np.isin(nearest, z).all()
    assert bilinear.std() < nearest.std()  # averaging shrinks the noise (why "nearest" is offered)


# --- schedule and frame choice ----------------------------------------------------------------------


def test_the_step_schedule_follows_the_paper():
    assert default_steps(8) == 100 and default_steps(100) == 2000
    assert default_steps(32) == 596 and default_steps(4) == 100
    assert spread_indices(141, 8) == [0, 20, 40, 60, 80, 100, 120, 140]
    assert heldout_indices(141, [0, 20, 40]) == [10, 30]
    with pytest.raises(HoldposeError, match="frames"):
        spread_indices(5, 8)


# --- the model: key-frame attention, zero-init, replication, counts --------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import CROSS_ATTENTION, one_torch_thread, sd15_scheduler, tiny_controlnet, tiny_unet  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _attention(seed=0):
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(seed)
    return Attention(query_dim=32, heads=4, dim_head=8).eval()


def test_key_frame_attention_of_one_frame_is_standard_self_attention():
    from diffusers.models.attention_processor import AttnProcessor2_0

    from holdpose.animate.diffusion.posecrafter.model import FrameLayout, key_frame_attention

    attn = _attention()
    h = torch.randn(2, 10, 32)  # two one-frame videos
    with torch.no_grad():
        expected = AttnProcessor2_0()(attn, h)
        got = key_frame_attention(attn, h, FrameLayout(num_frames=1))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_every_frame_attends_to_the_key_frame():
    from diffusers.models.attention_processor import AttnProcessor2_0

    from holdpose.animate.diffusion.posecrafter.model import FrameLayout, key_frame_attention

    attn = _attention(1)
    h = torch.randn(2 * 3, 10, 32)  # two videos of three frames
    with torch.no_grad():
        got = key_frame_attention(attn, h, FrameLayout(num_frames=3, key_frame=1)).view(2, 3, 10, 32)
        for video in range(2):
            key = h[video * 3 + 1: video * 3 + 2]
            for j in range(3):
                cross = AttnProcessor2_0()(attn, h[video * 3 + j: video * 3 + j + 1], encoder_hidden_states=key)
                torch.testing.assert_close(got[video, j], cross[0], atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def tiny_pair():
    """A tiny UNet and ControlNet, the 2-D originals and inflated copies of them."""
    import copy

    from holdpose.animate.diffusion.posecrafter.model import PoseCrafterModel

    with torch.no_grad():
        torch.manual_seed(0)
        unet = tiny_unet().eval()
        controlnet = tiny_controlnet(unet).eval()
        model = PoseCrafterModel(copy.deepcopy(unet), copy.deepcopy(controlnet)).eval()
    return unet, controlnet, model


def _video_inputs(frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(frames, 4, 16, 16, generator=g)
    control = torch.rand(frames, 3, 32, 32, generator=g)
    text = torch.randn(1, 77, CROSS_ATTENTION, generator=g)
    return latents, control, text


def _two_d(unet, controlnet, latents, t, text, control):
    text = text.expand(latents.shape[0], -1, -1)
    down, mid = controlnet(latents, t, encoder_hidden_states=text, controlnet_cond=control, return_dict=False)
    return unet(latents, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                mid_block_additional_residual=mid).sample


def test_at_initialisation_the_key_frame_output_is_the_2d_models(tiny_pair):
    unet, controlnet, model = tiny_pair
    latents, control, text = _video_inputs(3)
    t = torch.tensor(500)
    with torch.no_grad():
        video = model(latents, t, text, control, num_frames=3, key_frame=0)
        alone = _two_d(unet, controlnet, latents[:1], t, text, control[:1])
    torch.testing.assert_close(video[:1], alone, atol=1e-5, rtol=0)
    assert (video[1:] - _two_d(unet, controlnet, latents[1:], t, text, control[1:])).abs().max() > 1e-3


def test_identical_frames_give_the_one_frame_output_so_inverting_once_is_exact(tiny_pair):
    import copy

    _, _, model = tiny_pair
    model = copy.deepcopy(model)
    with torch.no_grad():  # a trained state: the temporal branch is not zero any more
        g = torch.Generator().manual_seed(3)
        for name, p in model.named_parameters():
            if "conv_temp" in name or "attn_temp" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    latents, control, text = _video_inputs(1, seed=1)
    t = torch.tensor(300)
    with torch.no_grad():
        one = model(latents, t, text, control, num_frames=1)
        four = model(latents.expand(4, -1, -1, -1), t, text, control.expand(4, -1, -1, -1), num_frames=4)
    for j in range(4):
        torch.testing.assert_close(four[j:j + 1], one, atol=1e-5, rtol=0)


def test_a_replicated_inverted_frame_samples_back_to_that_frame(tiny_pair):
    """Invert one frame (guidance 1, its control) and sample the replicated noise as a 3-frame clip
    of that same control: every frame reconstructs it (damped model, smooth like a trained one)."""
    import copy

    from holdpose.train.inversion import ddim_invert, ddim_sample, relative_error

    _, _, model = tiny_pair
    model = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.1)
    latents, control, text = _video_inputs(1, seed=2)
    one = lambda x, t: model(x, t, text, control, num_frames=1)  # noqa: E731
    clip = lambda x, t: model(x, t, text, control.expand(3, -1, -1, -1), num_frames=3)  # noqa: E731
    z_t = ddim_invert(one, latents, sd15_scheduler(), 25)
    sampled = ddim_sample(clip, z_t.expand(3, -1, -1, -1), sd15_scheduler(), 25)
    for j in range(3):
        assert relative_error(sampled[j:j + 1], latents) < 0.05


def test_the_trainable_set_counts_match_sd15_exactly():
    """Meta-device SD 1.5 UNet and ControlNet (nothing allocated, nothing downloaded)."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from diffusion_fixtures import SD15_UNET
    from holdpose.animate.diffusion.posecrafter.model import PoseCrafterModel, trainable_counts

    controlnet_config = {k: v for k, v in SD15_UNET.items()
                         if k not in ("sample_size", "out_channels", "up_block_types", "center_input_sample")}
    with torch.device("meta"):
        model = PoseCrafterModel(UNet2DConditionModel(**SD15_UNET), ControlNetModel(**controlnet_config))
    counts = trainable_counts(model)
    assert counts == {"attn_temp": 49_574_080, "conv_temp": 12_402_880, "unet_to_out": 12_402_880,
                      "controlnet_to_out": 5_944_960, "total": 80_324_800}
    assert trainable_counts(model, "temporal")["total"] == 61_976_960
    assert trainable_counts(model, "temporal+controlnet")["total"] == 67_921_920  # the paper says 68.79 M
