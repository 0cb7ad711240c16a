import numpy as np

from holdpose.detect.track import assign_track_ids, keypoint_similarity, slots_by_track
from holdpose.sequence import PoseSequence

from conftest import random_sequence


def walkers(num_frames=40):
    """Two people walking towards each other's side; their slot order is shuffled every frame,
    and person B is hidden for frames 15-19."""
    rng = np.random.default_rng(0)
    base = random_sequence(num_frames=1, num_people=1, size=(640, 480), missing=0.0).keypoints[0, 0]
    base = (base - base.mean(0)) * 0.15  # a 100-px-ish person
    seq = PoseSequence.empty(num_frames, 2, size=(640, 480), fps=25)
    truth = np.zeros((num_frames, 2), int)
    for t in range(num_frames):
        a = base + [100 + 4 * t, 240]
        b = base + [540 - 4 * t, 250]
        order = rng.permutation(2)
        for slot, who in enumerate(order):
            if who == 1 and 15 <= t < 20:
                continue
            seq.keypoints[t, slot] = a if who == 0 else b
            seq.scores[t, slot] = 0.9
            seq.track_ids[t, slot] = 7  # meaningless input ids
            truth[t, slot] = who
    return seq, truth


def test_ids_follow_people_through_shuffles_and_occlusion():
    seq, truth = walkers()
    tracked = assign_track_ids(seq)
    present = (seq.scores > 0).any(-1)
    ids = tracked.track_ids
    assert (ids[~present] == -1).all()
    for who in (0, 1):
        assert len(np.unique(ids[present & (truth == who)])) == 1  # one id each, also after the gap
    assert set(np.unique(ids[present])) == {0, 1}


def test_slots_by_track_puts_each_person_in_one_slot():
    seq, truth = walkers()
    ordered = slots_by_track(assign_track_ids(seq))
    assert ordered.num_people == 2
    x = np.where(ordered.scores[..., 0] > 0, ordered.keypoints[..., 0, 0], np.nan)
    moving = np.nanmean(np.diff(x, axis=0), axis=0)
    assert np.allclose(sorted(moving), [-4, 4], atol=0.01)  # one slot walks right, one left
    assert (ordered.track_ids[15:20, (moving < 0).argmax()] == -1).all()  # B's slot is empty while hidden


def test_similarity_known_answers():
    pose = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    ones = np.ones(4, np.float32)
    assert keypoint_similarity(pose, ones, pose, ones) == 1.0
    shifted = pose + [1, 0]
    # area 100, kappa 0.1: exp(-1 / (2 * 100 * 0.01))
    assert np.isclose(keypoint_similarity(pose, ones, shifted, ones), np.exp(-0.5))
    assert keypoint_similarity(pose, ones, pose, np.zeros(4, np.float32)) == 0.0
