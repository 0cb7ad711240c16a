"""Keypoint layouts as data: names, limbs, groups, left/right partners.

The canonical layout is COCO-WholeBody 133 (17 body, 6 feet, 68 face, 21 left
hand, 21 right hand). Every detector maps into it and every renderer maps out
of it, so the rest of holdpose never branches on where keypoints came from.

"Left" and "right" are always the subject's own, as in COCO and MediaPipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout.

    Attributes:
        name: identifier stored in files (``"coco_wholebody"``).
        keypoint_names: one name per keypoint, length K.
        limbs: pairs of keypoint indices ``(parent, child)``, parent nearer the torso.
        groups: part name -> ``(start, stop)`` index range (body, feet, face, left_hand, right_hand).
        flip_pairs: pairs ``(i, j)`` that exchange under a left/right mirror.
    """

    name: str
    keypoint_names: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    flip_pairs: tuple[tuple[int, int], ...] = ()

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def index(self, name: str) -> int:
        try:
            return self.keypoint_names.index(name)
        except ValueError as err:
            raise KeyError(f"{self.name} has no keypoint named {name!r}") from err

    def group(self, name: str) -> slice:
        start, stop = self.groups[name]
        return slice(start, stop)

    def flip_permutation(self) -> np.ndarray:
        """Index array ``perm`` such that ``keypoints[..., perm, :]`` is the mirrored labelling."""
        perm = np.arange(self.num_keypoints)
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return perm

    def __repr__(self) -> str:  # the tuples are long; keep reprs readable
        return f"Skeleton({self.name!r}, {self.num_keypoints} keypoints)"


# --- COCO-WholeBody 133 -------------------------------------------------------

COCO_BODY_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
FEET_NAMES = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
FACE_NAMES = tuple(f"face_{i}" for i in range(68))  # iBUG 68 order
HAND_POINT_NAMES = (
    "wrist",
    "thumb_1", "thumb_2", "thumb_3", "thumb_4",
    "index_1", "index_2", "index_3", "index_4",
    "middle_1", "middle_2", "middle_3", "middle_4",
    "ring_1", "ring_2", "ring_3", "ring_4",
    "pinky_1", "pinky_2", "pinky_3", "pinky_4",
)

# Hand edges shared by OpenPose, MediaPipe and COCO-WholeBody (same point order):
# wrist to each finger base, then along each finger.
HAND_EDGES = tuple(
    edge
    for base in (1, 5, 9, 13, 17)
    for edge in ((0, base), (base, base + 1), (base + 1, base + 2), (base + 2, base + 3))
)

COCO_BODY_LIMBS = (
    (5, 7), (7, 9), (6, 8), (8, 10),  # arms
    (11, 13), (13, 15), (12, 14), (14, 16),  # legs
    (5, 6), (11, 12), (5, 11), (6, 12),  # torso
    (0, 1), (0, 2), (1, 3), (2, 4),  # head
)
FEET_LIMBS = ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))


def _face_flip_pairs(offset: int) -> list[tuple[int, int]]:
    """Left/right partners of the iBUG 68-point face (jaw, brows, nose base, eyes, mouth)."""
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]  # mouth
    return [(offset + a, offset + b) for a, b in pairs]


def _build_wholebody() -> Skeleton:
    names = (
        COCO_BODY_NAMES
        + FEET_NAMES
        + FACE_NAMES
        + tuple(f"left_hand_{n}" for n in HAND_POINT_NAMES)
        + tuple(f"right_hand_{n}" for n in HAND_POINT_NAMES)
    )
    limbs = list(COCO_BODY_LIMBS) + list(FEET_LIMBS)
    limbs += [(9, 91)] + [(91 + a, 91 + b) for a, b in HAND_EDGES]  # body wrist -> hand wrist
    limbs += [(10, 112)] + [(112 + a, 112 + b) for a, b in HAND_EDGES]
    flips = [(1 + 2 * i, 2 + 2 * i) for i in range(8)]  # body: eyes .. ankles
    flips += [(17, 20), (18, 21), (19, 22)]
    flips += _face_flip_pairs(23)
    flips += [(91 + i, 112 + i) for i in range(21)]
    return Skeleton(
        name="coco_wholebody",
        keypoint_names=names,
        limbs=tuple(limbs),
        groups={"body": (0, 17), "feet": (17, 23), "face": (23, 91), "left_hand": (91, 112), "right_hand": (112, 133)},
        flip_pairs=tuple(flips),
    )


COCO_WHOLEBODY = _build_wholebody()

# --- OpenPose 18 (+ face 70, hands 2 x 21) --------------------------------------

OPENPOSE_BODY_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)
# 0-based version of the 17 ControlNet limbs; limb i takes colour i.
OPENPOSE_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
OPENPOSE_BODY = Skeleton(
    name="openpose_18",
    keypoint_names=OPENPOSE_BODY_NAMES,
    limbs=OPENPOSE_LIMBS,
    groups={"body": (0, 18)},
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
)

# OpenPose index j takes COCO-WholeBody index WHOLEBODY_FOR_OPENPOSE[j]; -1 is the neck,
# which WholeBody lacks and which is the mean of the shoulders.
WHOLEBODY_FOR_OPENPOSE = np.array([0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])
NECK = 1

# OpenPose BODY_25 (CMU OpenPose's default): adds mid-hip (8) and six foot points (19-24).
WHOLEBODY_FOR_BODY25 = np.array(
    [0, -1, 6, 8, 10, 5, 7, 9, -2, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 17, 18, 19, 20, 21, 22]
)  # -1 neck, -2 mid-hip: both derived, dropped when reading


# --- MediaPipe holistic (33 pose + 21 + 21 hands + 468 face mesh) ---------------

# MediaPipe pose landmark index for each COCO body point (same subject-side convention).
MEDIAPIPE_POSE_FOR_COCO_BODY = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
# Feet are approximate: MediaPipe has heel and "foot index" (tip of the foot, nearest the
# big toe) but no small toe. WholeBody feet index -> MediaPipe pose index (-1: none).
MEDIAPIPE_POSE_FOR_FEET = np.array([31, -1, 29, 32, -1, 30])
# A 68-point iBUG subset of the 468-point face mesh, chosen by landmark position
# (jaw 17, brows 5+5, nose 4+5, eyes 6+6, outer lips 12, inner lips 8). The mesh has
# no landmarks exactly on the iBUG jaw line, so the jaw points are the nearest mesh
# points on the face oval; expect a few pixels of difference from an iBUG annotator.
MEDIAPIPE_FACE_FOR_IBUG68 = np.array([
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
])

LAYOUTS = {s.name: s for s in (COCO_WHOLEBODY, OPENPOSE_BODY)}


def get_layout(name: str) -> Skeleton:
    try:
        return LAYOUTS[name]
    except KeyError as err:
        raise KeyError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from err
