import numpy as np
import pytest

from holdpose.convert import mediapipe_to_wholebody, openpose_to_wholebody, wholebody_to_openpose
from holdpose.skeleton import COCO_WHOLEBODY, HAND_EDGES, OPENPOSE_BODY, get_layout


def test_wholebody_layout_groups_and_names():
    wb = COCO_WHOLEBODY
    assert wb.num_keypoints == 133
    sizes = {name: stop - start for name, (start, stop) in wb.groups.items()}
    assert sizes == {"body": 17, "feet": 6, "face": 68, "left_hand": 21, "right_hand": 21}
    assert wb.index("left_wrist") == 9 and wb.index("right_ankle") == 16
    assert wb.index("left_hand_wrist") == 91 and wb.index("right_hand_pinky_4") == 132
    with pytest.raises(KeyError, match="no keypoint named"):
        wb.index("tail")
    assert get_layout("coco_wholebody") is wb


def test_flip_permutation_is_an_involution_that_swaps_sides():
    perm = COCO_WHOLEBODY.flip_permutation()
    assert (perm[perm] == np.arange(133)).all()
    names = COCO_WHOLEBODY.keypoint_names
    for i, j in enumerate(perm):
        if names[i].startswith("left"):
            assert names[j] == names[i].replace("left", "right", 1)
    assert perm[0] == 0  # nose stays
    assert perm[23 + 36] == 23 + 45  # outer eye corners
    assert perm[23 + 8] == 23 + 8  # chin stays


def test_hand_edges_follow_openpose_order():
    assert len(HAND_EDGES) == 20
    assert HAND_EDGES[:5] == ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5))
    assert HAND_EDGES[-1] == (19, 20)


def test_wholebody_to_openpose_known_answer():
    points = np.arange(133 * 2, dtype=np.float32).reshape(133, 2)
    scores = np.ones(133, np.float32)
    parts = wholebody_to_openpose(points, scores)
    body, body_scores = parts["body"]
    assert body.shape == (18, 2)
    # OpenPose j takes WholeBody [0, neck, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3][j]
    assert (body[2] == points[6]).all() and (body[7] == points[9]).all() and (body[17] == points[3]).all()
    assert (body[1] == (points[5] + points[6]) / 2).all()
    face, face_scores = parts["face"]
    assert face.shape == (70, 2)
    assert (face[:68] == points[23:91]).all()
    assert (face[68] == points[2]).all() and (face[69] == points[1]).all()  # right pupil, left pupil
    assert (parts["left_hand"][0] == points[91:112]).all()
    assert (parts["right_hand"][0] == points[112:133]).all()


def test_neck_missing_unless_both_shoulders_present():
    points = np.ones((133, 2), np.float32)
    scores = np.ones(133, np.float32)
    scores[5] = 0
    body, body_scores = wholebody_to_openpose(points, scores)["body"]
    assert body_scores[1] == 0 and body_scores[5] == 0 and body_scores[2] == 1


def test_openpose_round_trip_is_exact_on_shared_points():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 500, (4, 133, 2)).astype(np.float32)
    scores = rng.uniform(0.1, 1, (4, 133)).astype(np.float32)
    parts = wholebody_to_openpose(points, scores)
    args = [a for name in ("body", "face", "left_hand", "right_hand") for a in parts[name]]
    back, back_scores = openpose_to_wholebody(*args)
    shared = np.r_[0:17, 23:133]  # everything but the feet, which OpenPose 18 lacks
    assert np.array_equal(back[:, shared], points[:, shared])
    assert np.array_equal(back_scores[:, shared], scores[:, shared])
    assert (back_scores[:, 17:23] == 0).all()


def test_body25_brings_feet():
    body25 = np.arange(50, dtype=np.float32).reshape(25, 2)
    points, scores = openpose_to_wholebody(body25, np.ones(25))
    assert (points[17] == body25[19]).all()  # left big toe
    assert (points[22] == body25[24]).all()  # right heel
    assert (points[11] == body25[12]).all()  # left hip (BODY_25 index 12)
    with pytest.raises(ValueError, match="18 or 25"):
        openpose_to_wholebody(np.zeros((17, 2)), np.zeros(17))


def test_mediapipe_mapping_known_indices():
    pose = np.arange(66, dtype=np.float32).reshape(33, 2)
    vis = np.linspace(0, 1, 33).astype(np.float32)
    face = np.arange(936, dtype=np.float32).reshape(468, 2)
    hand = np.full((21, 2), 7.0, np.float32)
    points, scores = mediapipe_to_wholebody(pose, vis, left_hand=hand, right_hand=None, face=face)
    assert (points[5] == pose[11]).all() and scores[5] == vis[11]  # left shoulder
    assert (points[16] == pose[28]).all()  # right ankle
    assert (points[19] == pose[29]).all() and (points[17] == pose[31]).all()  # left heel, left big toe
    assert scores[18] == 0 and scores[21] == 0  # no small toes in MediaPipe
    assert (points[23 + 8] == face[152]).all()  # chin
    assert (points[23 + 36] == face[33]).all()  # right eye outer corner
    assert (scores[91:112] == 1).all() and (scores[112:133] == 0).all()


def test_openpose_layout_limbs_match_controlnet():
    one_based = [(a + 1, b + 1) for a, b in OPENPOSE_BODY.limbs]
    assert one_based == [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
                         (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]
