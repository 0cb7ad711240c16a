"""The embedded puppet animator on a synthetic figure (known answers) and on a real photo."""

import numpy as np
import pytest

from holdpose.animate.warp import PARTS, PuppetRig, WarpAnimator, bone_transform, similarity_fit, triangle_maps
from holdpose.sequence import PoseSequence

W, H = 320, 320
BLUE, RED, GREEN = (30, 60, 200), (210, 40, 30), (40, 180, 60)


def figure():
    """A front-facing stick figure: blue torso, red right arm held out to the image left,
    green left arm out to the right, on a grey gradient background."""
    image = np.zeros((H, W, 3), np.uint8)
    image[:] = np.linspace(90, 160, W, dtype=np.uint8)[None, :, None]
    mask = np.zeros((H, W), bool)
    mask[105:260, 130:190] = True  # torso
    mask[60:105, 145:175] = True  # head and neck
    mask[105:125, 50:130] = True  # right arm (subject's right = image left)
    mask[105:125, 190:270] = True  # left arm
    image[mask] = BLUE
    image[105:125, 50:130] = RED
    image[105:125, 190:270] = GREEN
    image[60:100, 145:175] = (230, 190, 160)
    points = np.zeros((133, 2))
    scores = np.zeros(133)
    named = {0: (160, 80), 1: (166, 75), 2: (154, 75), 5: (180, 115), 6: (140, 115), 7: (225, 115), 8: (95, 115),
             9: (265, 115), 10: (55, 115), 11: (175, 250), 12: (145, 250)}
    for k, xy in named.items():
        points[k] = xy
        scores[k] = 1
    return image, mask, points, scores


def rotate(points, center, degrees):
    a = np.radians(degrees)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points - center) @ rot.T + center


@pytest.fixture(scope="module")
def rig():
    image, mask, points, scores = figure()
    return PuppetRig(image, points, scores, mask, grid_step=6)


def test_every_mask_pixel_is_rigged_and_weighted(rig):
    for layer in rig.layers:
        assert np.allclose(layer.weights.sum(1), 1) and (layer.weights >= 0).all()
    covered = np.zeros((H, W), bool)
    for m in (rig.base_mask, rig.layer_masks[1], rig.layer_masks[2]):
        covered |= m
    # all but slivers along the arms' edges (which go with the background) is in a layer
    import cv2

    left_out = rig.mask & ~covered
    near_arms = cv2.dilate((rig.layer_masks[1] | rig.layer_masks[2]).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert left_out.sum() < 0.005 * rig.mask.sum() and near_arms[left_out].all()
    # the arms got their own layers, with their own colours
    assert rig.layer_masks[2][115, 60] and rig.layer_masks[1][115, 260] and not rig.layer_masks[1][200, 160]


def test_reference_pose_reproduces_the_reference(rig):
    image, mask, points, scores = figure()
    out = rig.deform(points, scores)
    inside = mask.copy()
    inside[[0, -1]] = False
    diff = np.abs(out.astype(int) - image.astype(int)).max(-1)
    assert np.mean(diff[mask] <= 8) > 0.97


def test_rotating_the_forearm_moves_only_forearm_and_hand(rig):
    image, mask, points, scores = figure()
    target = points.copy()
    target[10] = rotate(points[10], points[8], 90)  # right wrist swings up about the elbow (y points down)
    out = rig.deform(target, scores)
    still = rig.deform(points, scores)
    changed = np.abs(out.astype(int) - still.astype(int)).max(-1) > 30
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 200
    # around the elbow (x = 95) the joint blends; the torso (x >= 130), head and left arm are untouched
    assert xs.max() < 120
    # the forearm now points up from the elbow: red above it, where there was background
    assert tuple(out[75, 95]) == pytest.approx(RED, abs=25)
    assert not (np.abs(out[115, 60].astype(int) - RED) < 25).all()  # and no longer where it was


def test_arms_are_drawn_in_front_of_the_body(rig):
    image, mask, points, scores = figure()
    target = points.copy()
    target[[8, 10]] = rotate(points[[8, 10]], points[6], 180)  # right arm swung across the torso
    out = rig.deform(target, scores)
    assert tuple(out[115, 170]) == pytest.approx(RED, abs=25)  # red over the blue torso


def test_limb_joints_land_on_the_target_joints():
    p0, p1 = np.array([10.0, 10.0]), np.array([30.0, 10.0])
    q0, q1 = np.array([50.0, 50.0]), np.array([50.0, 60.0])
    m = bone_transform(p0, p1, q0, q1)
    assert np.allclose(m[:2, :2] @ p0 + m[:2, 2], q0) and np.allclose(m[:2, :2] @ p1 + m[:2, 2], q1)
    width = m[:2, :2] @ np.array([0.0, 1.0])
    assert np.linalg.norm(width) == pytest.approx(1.0)  # width kept while the bone halves
    src = np.random.default_rng(0).normal(size=(6, 2))
    tgt = 2 * rotate(src, np.zeros(2), 30) + [5, -3]
    s = similarity_fit(src, tgt)
    assert np.allclose(src @ s[:2, :2].T + s[:2, 2], tgt)


def test_triangle_maps_invert_the_mesh():
    target = np.array([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]])
    source = np.array([[[5.0, 5.0], [5.0, 25.0], [-15.0, 5.0]]])
    m = triangle_maps(target, source)[0]
    for t, s in zip(target[0], source[0]):
        assert np.allclose([m[0] * t[0] + m[1] * t[1] + m[2], m[3] * t[0] + m[4] * t[1] + m[5]], s)


def test_animator_streams_one_frame_per_pose(rig):
    image, mask, points, scores = figure()
    seq = PoseSequence.empty(4, 1, size=(W, H), fps=10)
    for t in range(4):
        seq.keypoints[t, 0] = points
        seq.keypoints[t, 0, 10] = rotate(points[10], points[8], -20 * t)
    seq.scores[:, 0] = scores
    seq.track_ids[:] = 0
    seen = []
    frames = WarpAnimator(rig)(image, seq, callback=lambda t, f: seen.append(t))
    first = next(frames)
    assert first.shape == (H, W, 3) and seen == [0]
    assert len(list(frames)) == 3 and seen == [0, 1, 2, 3]


def test_real_photo_rig_reproduces_it(astronaut):
    from holdpose.animate.warp import rig_reference

    rig = rig_reference(astronaut)
    out = rig.deform(rig.points, rig.present.astype(np.float32))
    error = ((out.astype(float) - astronaut.astype(float)) ** 2).mean(-1)
    # the person comes back as photographed (seams between layers aside) ...
    assert 10 * np.log10(255 ** 2 / error[rig.mask].mean()) > 30
    # ... and away from the person the background is the photo's, untouched
    changed = np.abs(rig.background.astype(int) - astronaut).max(-1) > 0
    assert not changed[:, -40:].any() and changed.mean() < 0.6  # the person and their halo: 52 %
    assert {p.name for p in PARTS} >= {"torso", "head", "left_forearm", "right_hand"}
