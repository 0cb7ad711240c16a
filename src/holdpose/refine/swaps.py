"""Repair left/right swaps: frames where a detector labelled a person's left limbs as right.

The left/right partners come from the layout (``Skeleton.flip_pairs``) and are sorted into
three groups that a detector tends to flip together, by keypoint name (``SWAP_GROUPS``):
arms (shoulder, elbow, wrist, hand), legs (hip, knee, ankle, foot) and head (eyes, ears,
face). A flip of the whole body is all three at once.

Every frame of a person slot has one of ``2 ** 3`` labelling states (which groups to swap
back). The states over time are chosen by the Viterbi algorithm (Viterbi 1967; min-sum
dynamic programming over a chain), minimising the sum of:

- motion: for every point, the squared distance between its position in a frame and in
  the next, in units of the person's height and capped at ``max_step`` (so one wild
  detection cannot dominate). Keeping both frames' labels compares a point with itself;
  swapping one of them compares it with its partner. A point counts only when it and its
  partner are detected in the later frame and it is detected in the earlier one, so both
  labellings are judged on the same evidence. Dense parts weigh less per point: a whole
  hand or face counts as much as two body points.
- bone length: limbs joining two different groups (shoulder to hip) change length when
  one group is swapped and the other is not; their squared deviation from the median
  length over the sequence, in the same units.
- a prior ``swap_cost`` for every group swapped, so a labelling is changed only when
  the evidence for it is clear, and the detector's labels are trusted where the pose is
  ambiguous (left and right limbs on top of each other). Detectors flip the whole body as
  readily as one pair of limbs, so swapping all groups costs the same as swapping one; this
  lets the head (whose eyes and ears are close together, weak evidence) follow the body.

Slots are assumed to be consistent tracks (slot p is the same person in every frame).
Run this before :func:`holdpose.refine.gaps.fill_gaps` (which would interpolate between
a swapped and an unswapped frame) and before smoothing.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from holdpose.sequence import PoseSequence
from holdpose.skeleton import Skeleton

logger = logging.getLogger(__name__)

# Group name -> words of the keypoint names that belong to it; first match wins.
SWAP_GROUPS = {
    "arms": ("shoulder", "elbow", "wrist", "hand"),
    "legs": ("hip", "knee", "ankle", "toe", "heel"),
    "head": ("eye", "ear", "face"),
}
GROUP_NAMES = tuple(SWAP_GROUPS)
DENSE_PARTS = ("face", "left_hand", "right_hand")  # layout groups with many points close together
DENSE_PART_WEIGHT = 2.0  # total motion weight of a whole dense part, in body points


def swap_groups(layout: Skeleton) -> dict[str, list[tuple[int, int]]]:
    """The layout's left/right pairs ``(i, j)`` sorted into ``SWAP_GROUPS`` by the name of ``i``;
    pairs matching no group are left out (never swapped)."""
    groups: dict[str, list[tuple[int, int]]] = {name: [] for name in SWAP_GROUPS}
    for i, j in layout.flip_pairs:
        name = layout.keypoint_names[i]
        for group, words in SWAP_GROUPS.items():
            if any(word in name for word in words):
                groups[group].append((i, j))
                break
    return groups


def fix_swaps(seq: PoseSequence, *, swap_cost: float = 0.02, max_step: float = 0.5,
              bone_weight: float = 1.0) -> tuple[PoseSequence, np.ndarray]:
    """Find and undo left/right swaps of arms, legs, head or the whole body.

    Args:
        seq: poses; ``keypoints [T, P, K, 2]`` px, ``scores [T, P, K]`` (0 = missing).
        swap_cost: prior cost of swapping one group in one frame, in squared person
            heights (a point moving by ``sqrt(swap_cost)`` heights costs as much).
        max_step: cap on one point's displacement between frames, in person heights.
        bone_weight: weight of the bone-length term against the motion term.

    Returns:
        ``(fixed, swapped)``: a copy of ``seq`` with keypoints, scores and ``interpolated``
        of the swapped groups exchanged with their partners, and bool ``swapped [T, P, G]``,
        True where group ``GROUP_NAMES[g]`` was swapped back.
    """
    if swap_cost <= 0 or max_step <= 0 or bone_weight < 0:
        raise ValueError(f"swap_cost and max_step must be > 0 and bone_weight >= 0, got "
                         f"{swap_cost!r}, {max_step!r}, {bone_weight!r}")
    if seq.num_frames == 0:
        return seq.copy(), np.zeros((0, seq.num_people, len(GROUP_NAMES)), bool)
    # 1. One permutation of the K axis per labelling state (bit g set: group g swapped).
    layout = seq.layout
    groups = swap_groups(layout)
    perms, member = _state_permutations(layout, groups)  # [S, K], [G, K]
    height = _person_height(seq)  # [P]

    # 2. Costs: per frame and state [T, P, S]; per transition and pair of states [T-1, P, S, S].
    unary = bone_weight * _bone_cost(seq, perms, member, height, max_step**2)
    unary += swap_cost * _prior(len(groups))
    pairwise = _motion_cost(seq, member, height, max_step**2)

    # 3. Best state sequence per slot, then relabel.
    states = _viterbi(unary, pairwise)  # [T, P]
    fixed = _relabel(seq, perms[states])
    swapped = _bits(len(perms), len(groups))[states].astype(bool)
    logger.debug("fix_swaps: %d group swaps undone", int(swapped.sum()))
    return fixed, swapped


def _prior(num_groups: int) -> np.ndarray:
    """Prior cost ``[S]`` in units of ``swap_cost``: detectors flip the whole body as often as one
    limb pair, so flipping all groups costs 1, like one group; n of G groups cost
    ``min(n, 1 + G - n)`` (a whole-body flip with the other groups kept)."""
    n = _bits(2 ** num_groups, num_groups).sum(-1)
    return np.minimum(n, 1 + num_groups - n).astype(np.float64)


def _bits(num_states: int, num_groups: int) -> np.ndarray:
    """int ``[S, G]``: bit g of state s."""
    return (np.arange(num_states)[:, None] >> np.arange(num_groups)) & 1


def _state_permutations(layout: Skeleton, groups: dict) -> tuple[np.ndarray, np.ndarray]:
    """Permutations ``[S, K]`` of the K axis for every state, and float motion weights
    ``member [G, K]`` of the points of each group (both sides of each pair)."""
    k = layout.num_keypoints
    weight = np.ones(k)
    for part in DENSE_PARTS:
        if part in layout.groups:
            start, stop = layout.groups[part]
            weight[start:stop] = DENSE_PART_WEIGHT / (stop - start)
    member = np.zeros((len(groups), k), np.float32)
    flips = []
    for g, pairs in enumerate(groups.values()):
        perm = np.arange(k)
        for i, j in pairs:
            perm[i], perm[j] = j, i
            member[g, [i, j]] = weight[[i, j]]
        flips.append(perm)
    bits = _bits(2 ** len(groups), len(groups))
    perms = np.empty((len(bits), k), int)
    for s, row in enumerate(bits):
        perm = np.arange(k)
        for g in np.flatnonzero(row):
            perm = perm[flips[g]]
        perms[s] = perm
    return perms, member


def _person_height(seq: PoseSequence) -> np.ndarray:
    """float ``[P]``: median over frames of the slot's box height (px); 1/4 of the canvas
    height where a slot never has two points."""
    boxes = seq.boxes()
    heights = boxes[..., 3] - boxes[..., 1]
    heights[~(heights > 0)] = np.nan
    median = _nanmedian(heights, axis=0)
    return np.where(np.isfinite(median), median, seq.size[1] / 4).astype(np.float32)


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` without the warning for all-NaN slices (they give NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def _motion_cost(seq: PoseSequence, member: np.ndarray, height: np.ndarray, cap: float) -> np.ndarray:
    """Pairwise costs ``[T-1, P, S, S]``: motion between frame t (state a) and t+1 (state b)."""
    flip = seq.layout.flip_permutation()
    xy = seq.keypoints / height[None, :, None, None]
    present = seq.present
    counted = present[:-1] & present[1:] & present[1:][..., flip]  # [T-1, P, K]
    same = np.minimum(((xy[1:] - xy[:-1]) ** 2).sum(-1), cap)
    cross = np.minimum(((xy[1:][..., flip, :] - xy[:-1]) ** 2).sum(-1), cap)
    same_g = np.where(counted, same, 0.0) @ member.T  # [T-1, P, G]
    cross_g = np.where(counted, cross, 0.0) @ member.T
    bits = _bits(2 ** len(member), len(member))
    differs = (bits[:, None, :] != bits[None, :, :]).astype(np.float64)  # [S, S, G]
    return same_g.sum(-1)[..., None, None] + np.einsum("tpg,abg->tpab", cross_g - same_g, differs)


def _bone_cost(seq: PoseSequence, perms: np.ndarray, member: np.ndarray, height: np.ndarray,
               cap: float) -> np.ndarray:
    """Unary costs ``[T, P, S]`` from limbs joining two groups: squared deviation of their
    length under each state from the median length, in person heights."""
    in_group = member > 0
    limbs = np.array([(i, j) for i, j in seq.layout.limbs
                      if in_group[:, i].any() and in_group[:, j].any()
                      and not (in_group[:, i] & in_group[:, j]).any()]).reshape(-1, 2)
    t_len, p_len = seq.scores.shape[:2]
    if len(limbs) == 0:
        return np.zeros((t_len, p_len, len(perms)))
    xy = seq.keypoints / height[None, :, None, None]
    a, b = perms[:, limbs[:, 0]], perms[:, limbs[:, 1]]  # [S, L]
    length = np.linalg.norm(xy[:, :, a] - xy[:, :, b], axis=-1)  # [T, P, S, L]
    valid = seq.present[:, :, a] & seq.present[:, :, b]
    ref = _nanmedian(np.where(valid[:, :, 0], length[:, :, 0], np.nan), axis=0)  # [P, L]
    deviation = np.minimum((length - ref[None, :, None]) ** 2, cap)
    return np.where(valid & np.isfinite(deviation), deviation, 0.0).sum(-1)


def _viterbi(unary: np.ndarray, pairwise: np.ndarray) -> np.ndarray:
    """Min-sum Viterbi: states int ``[T, P]`` minimising sum_t unary[t, p, s_t] +
    sum_t pairwise[t, p, s_t, s_t+1], for ``unary [T, P, S]`` and ``pairwise [T-1, P, S, S]``."""
    t_len, p_len = unary.shape[:2]
    slots = np.arange(p_len)
    best = unary[0].copy()  # [P, S]: cost of the best path ending in each state
    back = np.zeros(pairwise.shape[:3], np.intp)  # [T-1, P, S]: best previous state
    for t in range(t_len - 1):
        total = best[:, :, None] + pairwise[t]  # [P, S_prev, S]
        back[t] = total.argmin(1)
        best = total.min(1) + unary[t + 1]
    states = np.empty((t_len, p_len), np.intp)
    if t_len:
        states[-1] = best.argmin(-1)
    for t in range(t_len - 2, -1, -1):
        states[t] = back[t, slots, states[t + 1]]
    return states


def _relabel(seq: PoseSequence, perm: np.ndarray) -> PoseSequence:
    """Copy of ``seq`` with the K axis of frame t, slot p permuted by ``perm [T, P, K]``."""
    out = seq.copy()
    out.keypoints[:] = np.take_along_axis(seq.keypoints, perm[..., None], 2)
    out.scores[:] = np.take_along_axis(seq.scores, perm, 2)
    out.interpolated[:] = np.take_along_axis(seq.interpolated, perm, 2)
    return out
