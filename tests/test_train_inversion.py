"""DDIM inversion (SEED_MODULES S4): known answers with x-independent ε and a damped tiny UNet."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_fixtures import one_torch_thread  # noqa: E402,F401 - the fixture pytestmark uses
from diffusion_fixtures import CROSS_ATTENTION, sd15_scheduler, single_torch_thread, tiny_controlnet, tiny_unet  # noqa: E402

from holdpose.train.inversion import ddim_invert, ddim_sample, relative_error, unet_eps  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _latents(seed=0, size=16):
    return torch.randn(1, 4, size, size, generator=torch.Generator().manual_seed(seed))


def test_an_x_independent_epsilon_inverts_exactly():
    eps = _latents(1)
    constant = lambda x, t: eps  # noqa: E731
    z0 = _latents()
    for steps in (10, 50):
        z_t = ddim_invert(constant, z0, sd15_scheduler(), steps)
        assert relative_error(ddim_sample(constant, z_t, sd15_scheduler(), steps), z0) <= 1e-5
    assert relative_error(z_t, z0) > 0.5  # it did go somewhere


def test_a_time_dependent_but_x_independent_epsilon_inverts_exactly():
    base = _latents(2)
    moving = lambda x, t: base * (1 + float(t) / 1000)  # noqa: E731
    z0 = _latents(3)
    z_t = ddim_invert(moving, z0, sd15_scheduler(), 20)
    assert relative_error(ddim_sample(moving, z_t, sd15_scheduler(), 20), z0) <= 1e-5


@pytest.fixture(scope="module")
def damped():
    """The tiny UNet with every weight scaled by 0.1: ε varies slowly with x, as a trained model's does."""
    with single_torch_thread():
        torch.manual_seed(0)
        unet = tiny_unet().eval()
        with torch.no_grad():
            for p in unet.parameters():
                p.mul_(0.1)
        return unet, torch.randn(1, 77, CROSS_ATTENTION, generator=torch.Generator().manual_seed(9))


def test_the_damped_tiny_unet_reconstructs_and_improves_with_steps(damped):
    unet, context = damped
    predict = unet_eps(unet, context)
    z0 = _latents(4)
    errors = []
    for steps in (5, 10, 25):
        z_t = ddim_invert(predict, z0, sd15_scheduler(), steps)
        errors.append(relative_error(ddim_sample(predict, z_t, sd15_scheduler(), steps), z0))
    assert errors[-1] < 0.05
    assert errors[0] > errors[1] > errors[2]


def test_fixed_point_refinement_reduces_the_error(damped):
    unet, context = damped
    predict = unet_eps(unet, context)
    z0 = _latents(5)
    plain = ddim_invert(predict, z0, sd15_scheduler(), 5)
    refined = ddim_invert(predict, z0, sd15_scheduler(), 5, refine_iterations=3)
    error = lambda z_t: relative_error(ddim_sample(predict, z_t, sd15_scheduler(), 5), z0)  # noqa: E731
    assert error(refined) < 0.2 * error(plain)


def test_controlnet_conditioned_prediction_uses_the_control_image(damped):
    unet, context = damped
    torch.manual_seed(1)
    controlnet = tiny_controlnet(unet).eval()
    z0 = _latents(6, size=32)
    hint_a = torch.zeros(1, 3, 64, 64)
    hint_b = torch.ones(1, 3, 64, 64)
    a = ddim_invert(unet_eps(unet, context, controlnet=controlnet, control_image=hint_a), z0, sd15_scheduler(), 3)
    b = ddim_invert(unet_eps(unet, context, controlnet=controlnet, control_image=hint_b), z0, sd15_scheduler(), 3)
    off = ddim_invert(unet_eps(unet, context, controlnet=controlnet, control_image=hint_b, controlnet_scale=0.0), z0,
                      sd15_scheduler(), 3)
    assert not torch.equal(a, b)
    assert torch.equal(off, ddim_invert(unet_eps(unet, context), z0, sd15_scheduler(), 3))
