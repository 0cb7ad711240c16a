"""Identities through crossings and occlusions: appearance + motion + pose, re-identification, tracklet merging."""

import numpy as np

from holdpose.detect.track import (HUE_BINS, SAT_BINS, appearance_descriptors, appearance_similarity,
                                   assign_track_ids, merge_tracklets, track_people, without_flickers)
from holdpose.sequence import PoseSequence

from conftest import random_sequence

D = HUE_BINS * SAT_BINS


def look(bin_index):
    h = np.full(D, 0.02 / (D - 1), np.float32)
    h[bin_index] = 0.98
    return h


def scene(paths, hidden=(), num_frames=60, seed=0):
    """People with the same pose at the given centre paths ``[T, 2]``; slots shuffled each frame;
    ``hidden``: (who, frames) pairs. Returns the sequence, the truth [T, P] and the looks [T, P, D]."""
    rng = np.random.default_rng(seed)
    base = random_sequence(num_frames=1, num_people=1, size=(640, 480), missing=0.0).keypoints[0, 0]
    base = (base - base.mean(0)) * 0.2  # about 120 px tall
    people = len(paths)
    seq = PoseSequence.empty(num_frames, people, size=(640, 480), fps=25)
    truth = np.full((num_frames, people), -1)
    looks = np.zeros((num_frames, people, D), np.float32)
    for t in range(num_frames):
        for slot, who in enumerate(rng.permutation(people)):
            if any(who == w and t in frames for w, frames in hidden):
                continue
            seq.keypoints[t, slot] = base + paths[who][t]
            seq.scores[t, slot] = 0.9
            seq.track_ids[t, slot] = 0
            truth[t, slot] = who
            looks[t, slot] = look(5 + 20 * who)
    return seq, truth, looks


def ids_per_person(tracked, truth):
    return [len(np.unique(tracked.track_ids[truth == who])) for who in range(truth.max() + 1)]


def test_people_who_meet_and_turn_back_keep_their_ids_by_appearance():
    """A and B walk to the middle, overlap exactly for 5 frames, and go back where they came from:
    motion alone predicts they swap sides; their clothes say they did not."""
    t = np.arange(60)
    x = np.minimum(t, 25) * 8.0 - np.maximum(t - 30, 0) * 8.0  # 0 -> 200, hold, -> back
    a = np.stack([120 + x, np.full(60, 240.0)], -1)
    b = np.stack([520 - x, np.full(60, 240.0)], -1)
    seq, truth, looks = scene([a, b])
    with_looks = track_people(seq, appearance=looks)
    assert ids_per_person(with_looks, truth) == [1, 1]
    assert len(np.unique(with_looks.track_ids[truth >= 0])) == 2
    assert ids_per_person(track_people(seq), truth) != [1, 1]  # pose and motion alone cannot tell them apart


def test_a_person_lost_for_a_second_and_a_half_gets_their_id_back():
    t = np.arange(90)
    a = np.stack([100 + 3.0 * t, np.full(90, 240.0)], -1)
    b = np.stack([540 - 1.0 * t, np.full(90, 200.0)], -1)
    hidden = [(1, range(30, 67))]  # 37 frames = 1.5 s at 25 fps, behind something
    seq, truth, looks = scene([a, b], hidden, num_frames=90)
    assert ids_per_person(track_people(seq, appearance=looks, reid_seconds=2.0), truth) == [1, 1]
    assert ids_per_person(track_people(seq, appearance=looks, reid_seconds=0.5), truth) == [1, 2]
    assert ids_per_person(track_people(seq, reid_seconds=2.0), truth) == [1, 1]  # motion and place alone


def test_merge_joins_fragments_of_one_person_but_never_people_seen_together():
    t = np.arange(40)
    a = np.stack([100 + 4.0 * t, np.full(40, 240.0)], -1)
    b = np.stack([100 + 4.0 * t, np.full(40, 300.0)], -1)  # walks beside A, 60 px lower
    seq, truth, _ = scene([a, b], hidden=[(0, range(18, 22))], num_frames=40)
    # fragments as a weak tracker leaves them: A is 0 then 2, B is 1
    seq.track_ids[:] = np.where(truth == 0, np.where(np.arange(40)[:, None] < 18, 0, 2), np.where(truth == 1, 1, -1))
    merged = merge_tracklets(seq, max_gap=10)
    assert ids_per_person(merged, truth) == [1, 1]
    assert set(np.unique(merged.track_ids[truth >= 0])) == {0, 1}
    # a gap longer than max_gap is not bridged
    assert ids_per_person(merge_tracklets(seq, max_gap=3), truth) == [2, 1]


def test_a_skeleton_on_someone_for_two_frames_is_dropped_but_a_brief_passer_by_is_kept():
    """A walks across; for frames 20-21 a second skeleton lies on A (shifted 15 px: the landmark
    model's mix of A and someone behind); C is seen for two frames alone in a corner."""
    t = np.arange(40)
    a = np.stack([100 + 4.0 * t, np.full(40, 240.0)], -1)
    flicker = a + [15, 5]
    corner = np.stack([np.full(40, 560.0), np.full(40, 90.0)], -1)
    brief = [(1, [f for f in range(40) if f not in (20, 21)]), (2, [f for f in range(40) if f not in (30, 31)])]
    seq, truth, looks = scene([a, flicker, corner], hidden=brief, num_frames=40)
    tracked = track_people(seq, appearance=looks)
    assert ids_per_person(tracked, truth) == [1, 1, 1]
    assert (tracked.scores[truth == 1] == 0).all() and (tracked.track_ids[truth == 1] == -1).all()  # gone
    assert (tracked.scores[truth == 2] > 0).all()  # the passer-by stays
    assert len(np.unique(tracked.track_ids[tracked.track_ids >= 0])) == 2  # ids 0, 1: renumbered
    # Before confirmation the flicker is a third person, on A's box for two frames.
    unconfirmed = merge_tracklets(assign_track_ids(seq, max_age=50, appearance=looks), max_gap=50, appearance=looks)
    assert len(np.unique(unconfirmed.track_ids[unconfirmed.track_ids >= 0])) == 3


def test_nobody_is_dropped_where_nobody_lasts():
    seq, truth, _ = scene([np.array([[200.0, 240.0]]), np.array([[215.0, 245.0]])], num_frames=1)
    assert (without_flickers(seq).track_ids[truth >= 0] >= 0).all()  # one photo: two people overlapping stay


def test_appearance_descriptors_tell_red_from_blue_clothes():
    image = np.zeros((200, 200, 3), np.uint8)
    image[:, :100] = (200, 30, 30)
    image[:, 100:] = (30, 30, 200)
    keypoints = np.zeros((2, 133, 2), np.float32)
    scores = np.zeros((2, 133), np.float32)
    for p, cx in enumerate((50, 150)):
        keypoints[p, 5:17] = [[cx - 20, 40], [cx + 20, 40]] * 6
        keypoints[p, 11:17, 1] = np.linspace(100, 180, 6)
        scores[p, 5:17] = 1
    red, blue = appearance_descriptors(image, keypoints, scores)
    assert np.isclose(red.sum(), 1) and np.isclose(blue.sum(), 1)
    assert appearance_similarity(red, red) > 0.99 and appearance_similarity(red, blue) < 0.1
