"""Exemplar fill: a hole takes the texture of the garment around it, not a smooth blob, and never
the colours of something elsewhere (hair, a badge); the demo's uncovered lap is the suit's fabric."""

import numpy as np

from holdpose.animate.puppet.exemplar import exemplar_fill
from holdpose.animate.puppet.fill import pushpull_fill


def stripes(h=120, w=160, period=10):
    """Diagonal two-colour stripes, ``uint8 [h, w, 3]``."""
    yy, xx = np.mgrid[0:h, 0:w]
    dark = ((xx + yy) // (period // 2)) % 2 == 0
    return np.where(dark[..., None], np.array([30, 40, 120]), np.array([230, 220, 200])).astype(np.uint8)


def test_a_striped_hole_gets_stripes_back():
    truth = stripes()
    hole = np.zeros(truth.shape[:2], bool)
    hole[40:85, 60:110] = True
    holed = truth.copy()
    holed[hole] = (255, 0, 0)  # what lay on top (an arm) must not leak in
    filled = exemplar_fill(holed, hole, ~hole)
    smooth = pushpull_fill(holed, ~hole)
    assert np.array_equal(filled[~hole], truth[~hole].astype(np.float32))
    error = np.abs(filled[hole] - truth[hole]).mean()
    assert error < 0.3 * np.abs(smooth[hole] - truth[hole]).mean()
    # the fill is two colours in stripes, not their average: most pixels are near one of them
    near = np.minimum(np.abs(filled[hole] - [30, 40, 120]).max(1), np.abs(filled[hole] - [230, 220, 200]).max(1))
    assert (near < 40).mean() > 0.8
    assert np.abs(filled[hole] - (255, 0, 0)).max(1).min() > 60


def test_the_hole_takes_the_garment_around_it_not_hair_elsewhere():
    rng = np.random.default_rng(0)
    h, w = 160, 140
    image = np.clip(rng.normal((220, 110, 40), 12, (h, w, 3)), 0, 255).astype(np.uint8)  # an orange fabric
    image[:40] = np.clip(rng.normal((120, 80, 40), 25, (40, w, 3)), 0, 255).astype(np.uint8)  # brown hair above
    hole = np.zeros((h, w), bool)
    hole[80:140, 30:90] = True
    filled = exemplar_fill(image, hole, ~hole)
    hair_like = np.abs(filled[hole] - (120, 80, 40)).max(1) < np.abs(filled[hole] - (220, 110, 40)).max(1)
    assert hair_like.mean() < 0.01
    # ... and it is fabric: its grain is the fabric's, not flattened
    assert filled[hole].std(0).mean() > 0.5 * image[80:, :][~hole[80:, :]].std(0).mean()


def test_narrow_gaps_are_filled_smoothly():
    truth = stripes()
    hole = np.zeros(truth.shape[:2], bool)
    hole[40:85, 70:74] = True  # 4 px wide
    filled = exemplar_fill(truth, hole, ~hole, min_width=10)
    assert np.allclose(filled[hole], pushpull_fill(truth, ~hole)[hole], atol=1)


def test_the_demo_lap_uncovered_by_the_wave_is_suit_fabric(astronaut):
    """The astronaut raises her right arm: the lap and chest it uncovers are the orange suit's colour
    (as the suit beside them) with the fabric's grain, not a smooth pink-purple blob."""
    import cv2
    from skimage.color import deltaE_ciede2000, rgb2lab

    from holdpose.animate.warp import rig_reference

    rig = rig_reference(astronaut)
    target = rig.points.copy()
    moving = [8, 10] + list(range(112, 133))
    target[moving] = 2 * rig.points[6] - rig.points[moving]  # point reflection: the arm straight up
    frame = rig.deform(target, rig.present.astype(np.float32))
    uncovered = rig.layer_masks[2] & rig.base_mask & (rig.coverage(target, rig.present.astype(np.float32)) > 0.99)
    assert uncovered.sum() > 5000  # the arm lay over the body's side
    suit = rig.layer_masks[0] & (np.abs(astronaut.astype(int) - (230, 90, 40)).max(-1) < 60)
    suit_lab = rgb2lab(astronaut[suit][None])[0]
    lab = rgb2lab(frame[uncovered][None])[0]
    assert deltaE_ciede2000(np.median(suit_lab, 0), np.median(lab, 0)) < 10  # main's push-pull: a pink blob
    # fabric grain: the uncovered area's fine detail (difference from its blur) is the suit's kind
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2))
    ref_grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.float32)
    ref_detail = np.abs(ref_grey - cv2.GaussianBlur(ref_grey, (0, 0), 2))
    assert detail[uncovered].mean() > 0.5 * ref_detail[suit].mean()  # 0.52 of it here; push-pull's far less
