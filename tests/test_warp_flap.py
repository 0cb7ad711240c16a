"""What of the torso lies over an arm in the photo stays with the torso when the arm rises.

anyone-3's right arm hangs beside her body under her long hair, the grey ruffled top and the shade
between arm and torso overlapping the upper arm; raised, the arm must not carry them up as a dark flap."""

import numpy as np
import pytest

from conftest import fixture_path

RIGHT_ARM = [8, 10] + list(range(112, 133))  # elbow, wrist, hand landmarks


@pytest.fixture(scope="module")
def anyone3():
    from holdpose.animate.warp import rig_reference
    from holdpose.io.video import read_image

    image = read_image(fixture_path("reference", "ref_animateanyone_anyone-3.png"))
    return image, rig_reference(image)


def arm_out_sideways(rig) -> np.ndarray:
    """The rig's pose ``[133, 2]`` with the right arm (image left) turned about its shoulder to point
    straight out, away from the body."""
    target = rig.points.copy()
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])  # hanging down (0, 1) -> outwards (-1, 0)
    target[RIGHT_ARM] = (rig.points[RIGHT_ARM] - rig.points[6]) @ turn.T + rig.points[6]
    return target


def test_raised_arm_carries_none_of_the_top_that_lay_over_it(anyone3):
    """Around the raised upper arm the puppet draws the arm's own colour (its forearm's skin), not the
    top's grey or the shade beside it: under 5 % of the drawn pixels are nearer the torso garment's
    colours than the skin (76 % before: a dark flap hung under the arm; 3 % now)."""
    import cv2
    from skimage.color import deltaE_ciede2000, rgb2lab

    from holdpose.animate.puppet.layers import segment_distance

    image, rig = anyone3
    target = arm_out_sideways(rig)
    frame = rig.deform(target, rig.present.astype(np.float32))
    lab, ref_lab = rgb2lab(frame), rgb2lab(image)
    distance, t = segment_distance(rig.mask.shape, rig.points[8], rig.points[10])
    skin = np.median(ref_lab[rig.mask & (distance < 0.04 * rig.scale) & (t > 0.3) & (t < 0.7)], axis=0)
    torso = np.zeros(rig.mask.shape, np.uint8)
    cv2.fillConvexPoly(torso, np.round(rig.points[[5, 6, 12, 11]]).astype(np.int32), 1)
    garment = ref_lab[(torso > 0) & rig.mask & ~rig.layer_masks[2]].astype(np.float32)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(garment, 3, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5), 3,
                               cv2.KMEANS_PP_CENTERS)
    centres = centres[deltaE_ciede2000(centres.astype(np.float64), skin[None]) > 15]
    assert len(centres), "the fixture's top differs from her skin"
    distance, t = segment_distance(rig.mask.shape, target[6], target[8])
    drawn = (distance < 1.5 * 0.17 * rig.scale) & (t > 0.2) & (rig.coverage(target, rig.present) > 0.5)
    pixels = lab[drawn]
    to_skin = deltaE_ciede2000(pixels, skin[None])
    to_garment = np.min([deltaE_ciede2000(pixels, c[None]) for c in centres], axis=0)
    share = (to_garment < to_skin).mean()
    assert share < 0.05, share


def test_arm_cut_keeps_a_sleeve_the_torso_shares():
    """anyone-11's red sleeves are the arm: the torso's red jacket is the same material, so nothing of
    the sleeves leaves the arm layers (the cut only takes pieces of a garment unlike the arm's own)."""
    import cv2

    from holdpose.animate.puppet import layers as cut
    from holdpose.animate.warp import rig_reference
    from holdpose.io.video import read_image

    image = read_image(fixture_path("reference", "ref_animateanyone_anyone-11.png"))
    rig = rig_reference(image)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    arms = rig.layer_masks[1] | rig.layer_masks[2]
    garment = cut.torso_garment_colours(lab, rig.mask, arms, rig.hair_mask, rig.points, rig.present, rig.scale)
    for layer, side in ((1, "left"), (2, "right")):
        arm = rig.layer_masks[layer]
        kept = cut.without_torso_garment(lab, arm, rig.hair_mask, garment, rig.mask, rig.points, rig.present,
                                         rig.scale, side)
        assert (arm & ~kept).sum() < 0.01 * arm.sum()


def test_same_material_tells_shade_from_another_garment():
    """A red sleeve in shade and the red jacket in the light are one material; a grey top beside skin
    and blue denim beside skin are not (OpenCV 8-bit Lab)."""
    from holdpose.animate.puppet.layers import same_material

    sleeve_shade, jacket_lit = np.array([[62, 169, 156]]), np.array([[132, 187, 167]])
    skin, grey_top, denim = np.array([[150, 142, 152]]), np.array([[110, 133, 128]]), np.array([[82, 132, 105]])
    assert same_material(jacket_lit, sleeve_shade).all()
    assert not same_material(grey_top, skin).any()
    assert not same_material(denim, skin).any()


def test_arm_cut_drops_the_frill_lying_over_the_upper_arm(anyone3):
    """Cut as if nothing of it were hidden, anyone-3's right arm layer takes the top's frill beside her
    upper arm; the garment cut gives it back to the torso: the pixels it drops (mostly the shade under
    the frill) are nearer the top's grey than her skin, no lighter than the top, and lie along the upper arm."""
    import cv2

    from holdpose.animate.puppet import layers as cut

    image, rig = anyone3
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    body = cut.body_region(rig.mask.shape, rig.points, rig.present, rig.scale, rig.mask)
    arm = cut.arm_mask(image, rig.mask, rig.mask, body, rig.points, rig.present, rig.scale, "right")
    hair = cut.hair_over_arms(image, rig.mask, arm, rig.points, rig.present)
    arm = cut.without_what_hair_hid(image, arm, hair, rig.mask, rig.points, rig.present, rig.scale)
    garment = cut.torso_garment_colours(lab, rig.mask, arm, hair, rig.points, rig.present, rig.scale)
    dropped = arm & ~cut.without_torso_garment(lab, arm, hair, garment, rig.mask, rig.points, rig.present,
                                               rig.scale, "right")
    assert dropped.sum() > 200
    distance, t = cut.segment_distance(rig.mask.shape, rig.points[6], rig.points[8])
    assert (dropped & (t > 0) & (t < 1.1)).sum() > 0.9 * dropped.sum()
    across, along = cut.segment_distance(rig.mask.shape, rig.points[8], rig.points[10])
    skin = np.median(lab[rig.mask & (across < 0.04 * rig.scale) & (along > 0.3) & (along < 0.7)], axis=0)
    top = np.median(lab[rig.mask & ~rig.layer_masks[1] & (distance > 0.5 * rig.scale) & (t > 0.3) & (t < 0.6)
                        & cut.below_shoulders(rig.mask.shape, rig.points, rig.present)], axis=0)
    shown = np.median(lab[dropped], axis=0)
    assert np.linalg.norm(shown - top) < np.linalg.norm(shown - skin) and shown[0] <= top[0]  # the frill's shade
