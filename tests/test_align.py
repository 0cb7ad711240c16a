import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.refine.align import (ALL_BONES, BODY_BONES, NECK, PELVIS, align_to_reference, bone_lengths,
                                   rooted_tree, select_reference_frame, video_sim, with_virtual_joints)
from holdpose.sequence import PoseSequence

# A standing figure in a 512x512 canvas (COCO body order), with hands and face near their anchors.
STANDING = {
    0: (256, 100), 1: (266, 90), 2: (246, 90), 3: (276, 95), 4: (236, 95),
    5: (300, 150), 6: (212, 150), 7: (320, 220), 8: (192, 220), 9: (330, 290), 10: (182, 290),
    11: (285, 300), 12: (227, 300), 13: (290, 390), 14: (222, 390), 15: (292, 470), 16: (220, 470),
    17: (300, 485), 18: (290, 485), 19: (285, 478), 20: (212, 485), 21: (222, 485), 22: (227, 478),
}


def reference_pose():
    rng = np.random.default_rng(0)
    points = np.zeros((133, 2), np.float32)
    for index, xy in STANDING.items():
        points[index] = xy
    points[23:91] = points[0] + rng.normal(0, 12, (68, 2))
    points[91:112] = points[9] + rng.normal(0, 10, (21, 2))
    points[112:133] = points[10] + rng.normal(0, 10, (21, 2))
    return points, np.ones(133, np.float32)


def animate(points, num_frames=40, scale=1.0, shift=(0, 0), seed=1):
    """Rotate every bone by a smooth random angle per frame, keeping bone lengths, then scale and shift."""
    pts, sc = with_virtual_joints(points[None], np.ones((1, 133), np.float32))
    pts = pts[0].astype(np.float64)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, len(ALL_BONES))
    # the hips turn together about the pelvis and the shoulders about the neck (they are midpoints)
    for pair in (((PELVIS, 11), (PELVIS, 12)), ((NECK, 5), (NECK, 6))):
        phases[ALL_BONES.index(pair[1])] = phases[ALL_BONES.index(pair[0])]
    frames = np.zeros((num_frames, 133, 2), np.float32)
    for t in range(num_frames):
        out = np.zeros_like(pts)
        out[PELVIS] = pts[PELVIS] + [3 * t, 0]  # walks right 3 px a frame
        for parent, child, bone in rooted_tree(PELVIS):
            offset = pts[child] - pts[parent]
            angle = 0.3 * np.sin(0.2 * t + phases[bone])
            c, s = np.cos(angle), np.sin(angle)
            out[child] = out[parent] + [c * offset[0] - s * offset[1], s * offset[0] + c * offset[1]]
        frames[t] = (out[:133] - pts[PELVIS]) * scale + pts[PELVIS] + shift
    seq = PoseSequence.empty(num_frames, 1, size=(512, 512), fps=25)
    seq.keypoints[:, 0] = frames
    seq.scores[:] = 1
    seq.track_ids[:] = 0
    return seq


def lengths(points, scores):
    p, s = with_virtual_joints(points, scores, 0.3)
    return bone_lengths(p, s > 0.3)


@pytest.mark.parametrize("scale", [0.6, 1.5])
def test_aligned_bones_take_the_reference_lengths(scale):
    ref, ref_scores = reference_pose()
    driving = animate(ref, scale=scale, shift=(40, -25))
    aligned, info = align_to_reference(driving, ref, ref_scores)
    assert info.body_ratio == pytest.approx(1 / scale, rel=1e-3) and info.root == PELVIS
    got = lengths(aligned.keypoints[:, 0], aligned.scores[:, 0])
    want = lengths(ref, ref_scores)
    rel = np.abs(got / want - 1)
    assert np.nanmax(rel) < 0.01
    # placement: the first frame's pelvis sits on the reference's; motion scaled by the body ratio
    pelvis = with_virtual_joints(aligned.keypoints[:, 0], aligned.scores[:, 0])[0][:, PELVIS]
    ref_pelvis = with_virtual_joints(ref, ref_scores)[0][PELVIS]
    assert np.allclose(pelvis[0], ref_pelvis, atol=0.01)
    assert np.allclose(pelvis[10] - pelvis[0], [30, 0], atol=0.05)  # 3 px/frame * scale, scaled back


def test_orientation_only_keeps_driving_directions_and_reference_lengths():
    ref, ref_scores = reference_pose()
    driving = animate(ref, scale=0.6)
    driving.keypoints[:, 0, 9] += [0, 25]  # a wrist the reference would not have: direction changes
    aligned, _ = align_to_reference(driving, ref, ref_scores, orientation_only=True)
    a = np.array([b[0] for b in BODY_BONES])
    b = np.array([b[1] for b in BODY_BONES])
    pd, _ = with_virtual_joints(driving.keypoints[:, 0], driving.scores[:, 0])
    pa, sa = with_virtual_joints(aligned.keypoints[:, 0], aligned.scores[:, 0])
    vd, va = pd[:, b] - pd[:, a], pa[:, b] - pa[:, a]
    angle = np.degrees(np.abs(np.arctan2(np.cross(vd, va), (vd * va).sum(-1))))
    assert angle.max() < 0.01
    got = lengths(aligned.keypoints[:, 0], aligned.scores[:, 0])
    assert np.nanmax(np.abs(got / lengths(ref, ref_scores) - 1)) < 1e-4


def test_missing_joints_are_tolerated():
    ref, ref_scores = reference_pose()
    ref_scores[13:23] = 0  # a head-and-shoulders... waist-up reference: no legs
    driving = animate(ref, scale=1.5)
    driving.scores[5:8, 0, 7] = 0  # the left elbow drops out for three frames
    driving.scores[20, 0, 11:13] = 0  # hips missing in one frame
    aligned, info = align_to_reference(driving, ref, ref_scores)
    assert np.isfinite(aligned.keypoints).all()
    assert (aligned.scores[5:8, 0, 7] == 0).all() and (aligned.scores[5:8, 0, 9] > 0).all()
    # the wrist still hangs from the shoulder, at the body ratio, near where it belongs
    clean, _ = align_to_reference(animate(ref, scale=1.5), ref, ref_scores)
    assert np.abs(aligned.keypoints[5:8, 0, 9] - clean.keypoints[5:8, 0, 9]).max() < 1.0
    assert np.abs(aligned.keypoints[20, 0, 9] - clean.keypoints[20, 0, 9]).max() < 1.0
    # legs: the reference has none, so they take the body ratio
    assert info.ratios[ALL_BONES.index((11, 13))] == pytest.approx(info.body_ratio)


def test_reference_without_body_is_refused():
    ref, ref_scores = reference_pose()
    with pytest.raises(HoldposeError, match="upper body"):
        align_to_reference(animate(ref), ref, np.zeros(133, np.float32))


def test_reference_frame_selection_finds_the_matching_pose():
    ref, _ = reference_pose()
    training = animate(ref, num_frames=30, seed=3)
    target = training[17:18].copy()
    target.keypoints = target.keypoints * 0.5 + 100  # same pose, other size and place
    index, distances = select_reference_frame(training, target)
    assert index == 17 and distances[17] < 1e-5 and distances.shape == (30,)
    assert video_sim(training, target) < 1e-5
    assert video_sim(training, animate(ref, num_frames=5, seed=9)) > 0.05


def test_rooted_tree_reaches_every_joint_once():
    for root in (PELVIS, NECK):
        edges = rooted_tree(root)
        children = [c for _, c, _ in edges]
        assert len(children) == len(set(children)) == 134  # every joint but the root
