"""``holdpose correct``: move the limbs that drifted back onto their targets, in any video.

For a generated video (holdpose's or one made elsewhere, e.g. in ComfyUI) and the pose
sequence it should follow:

1. Judge every frame (:mod:`holdpose.evaluate.verdicts`: re-detected pose against its
   target). Frames that hold are copied as they are.
2. In a frame that drifts, find the limbs that are off: a bone (upper arm, forearm and
   hand, thigh, shin and foot) found in the frame whose angle differs from the target's by
   more than ``limb_tolerance`` degrees, or whose end lies farther than 0.05 of the person's
   height from the target's. A limb corrected in a drifting frame stays corrected in the drifting
   frames beside it (one frame on either side), so a fixed limb does not pop in and out.
3. Rig the frame itself as the warp animator rigs a photo (its own re-detected pose,
   segmentation, layers, mesh skinning: :func:`holdpose.animate.warp.rig_reference`) and
   pose the puppet twice: in the frame's own pose, and with the off limbs moved to the
   target's. Where the two renderings differ, the corrected one is blended into the frame
   through a feathered mask; every other pixel is the frame's own.
4. Judge the corrected frame again, and keep it only when it holds its pose where the input
   did not, or is better on PCK@0.05 and no worse on its worst limb.

Every frame's before/after verdicts go to ``OUT.verdicts.jsonl`` (read by ``holdpose
evaluate`` for its closed-loop strip). With ``lossless=True`` the video is written with
FFV1 (``.mkv``), so untouched frames are bit-identical to the input's decode.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.evaluate.adherence import BODY, DEFAULT_MIN_SCORE, box_area_height, fit_target, person_boxes
from holdpose.evaluate.verdicts import LIMBS, FrameJudge, Thresholds, angle_between, judge_pose
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY

logger = logging.getLogger(__name__)

IDX = COCO_WHOLEBODY.index
# The points that move with each limb bone: its far joint and what hangs from it.
FOLLOWERS = {
    "left_upper_arm": [IDX("left_elbow")], "right_upper_arm": [IDX("right_elbow")],
    "left_forearm": [IDX("left_wrist"), *range(91, 112)], "right_forearm": [IDX("right_wrist"), *range(112, 133)],
    "left_thigh": [IDX("left_knee")], "right_thigh": [IDX("right_knee")],
    "left_shin": [IDX("left_ankle"), *range(17, 20)], "right_shin": [IDX("right_ankle"), *range(20, 23)],
}
CHILD = {"left_upper_arm": "left_forearm", "right_upper_arm": "right_forearm", "left_thigh": "left_shin",
         "right_thigh": "right_shin"}


@dataclass
class CorrectResult:
    """What :func:`correct_video` wrote and did."""

    video_path: Path
    verdicts_path: Path
    num_frames: int
    drifted: int
    corrected: int
    still_drifting: int


def off_limbs(detected: np.ndarray, det_present: np.ndarray, target: np.ndarray, tgt_present: np.ndarray,
              height: float, limb_tolerance: float) -> set[str]:
    """The limb bones of one person that are off their target (see the module docstring)."""
    off = set()
    for name, (a, b) in LIMBS.items():
        if not (tgt_present[a] and tgt_present[b] and det_present[a] and det_present[b]):
            continue  # a bone the frame's puppet does not have cannot be moved
        angle = angle_between(target[b] - target[a], detected[b] - detected[a])
        if angle > limb_tolerance or np.linalg.norm(detected[b] - target[b]) > 0.05 * height:
            off.add(name)
    return off


def corrected_pose(detected: np.ndarray, det_present: np.ndarray, target: np.ndarray, tgt_present: np.ndarray,
                   limbs: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """The frame's own pose with the points of ``limbs`` (and of their lower limbs) moved to the
    target's: what the puppet of the frame is posed in. ``[133, 2]``, ``[133]`` (1 = present).

    A point that hangs from a moved bone and that the target lacks (a hand when the target has
    only a body) is carried with the bone: turned as the bone turns, about its far joint, and
    moved with it. Left where it was, it would hold the hand in place while the arm moves."""
    pose = np.where(det_present[:, None], detected, target).astype(np.float64)
    present = det_present | tgt_present
    moved = set(limbs) | {CHILD[name] for name in limbs if name in CHILD}
    for name in sorted(moved, key=lambda n: n in CHILD.values()):  # upper limbs first: they move the lower's joint
        for k in FOLLOWERS[name]:
            if tgt_present[k]:
                pose[k] = target[k]
        near, far = LIMBS[name]
        if det_present[near] and det_present[far]:
            turn = _rotation(detected[far] - detected[near], pose[far] - pose[near])
            carried = [k for k in FOLLOWERS[name] if k != far and det_present[k] and not tgt_present[k]]
            pose[carried] = pose[far] + (detected[carried] - detected[far]) @ turn.T
    return pose, present.astype(np.float32)


def _rotation(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The 2x2 rotation that turns the direction ``before`` into ``after``."""
    angle = np.arctan2(after[1], after[0]) - np.arctan2(before[1], before[0])
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def correct_frame(frame: np.ndarray, detected: np.ndarray, det_scores: np.ndarray, target: np.ndarray,
                  tgt_scores: np.ndarray, limbs: set[str], *, min_score: float = DEFAULT_MIN_SCORE,
                  feather: int = 5) -> np.ndarray | None:
    """``frame`` with ``limbs`` moved to the target (one person, ``[133, 2]`` / ``[133]``), or None
    when the frame cannot be rigged (no person segmented)."""
    import cv2

    from holdpose.animate.puppet.layers import grow_mask
    from holdpose.animate.warp import rig_reference

    det_present, tgt_present = det_scores > min_score, tgt_scores > min_score
    try:
        rig = rig_reference(frame, detected.astype(np.float32), det_scores.astype(np.float32))
    except HoldposeError as err:
        logger.info("cannot rig the frame (%s); left as it is", err)
        return None
    own = rig.deform(np.where(det_present[:, None], detected, 0), det_present.astype(np.float32))
    pose, present = corrected_pose(detected, det_present, target, tgt_present, limbs)
    moved = rig.deform(pose, present)
    changed = grow_mask(np.abs(moved.astype(np.int16) - own.astype(np.int16)).max(-1) > 8, feather)
    alpha = cv2.GaussianBlur(changed.astype(np.float32), (0, 0), feather / 2)[..., None]
    alpha[changed[..., None]] = np.maximum(alpha[changed[..., None]], 0.999)
    out = frame.astype(np.float32) * (1 - alpha) + moved.astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def correct_video(video: str | os.PathLike, target: PoseSequence | str | os.PathLike, output: str | os.PathLike, *,
                  thresholds: Thresholds = Thresholds(), limb_tolerance: float = 15.0, detector="auto",
                  pose_model=None, det_model=None, lossless: bool = False, progress: bool = True) -> CorrectResult:
    """Correct the frames of ``video`` whose pose drifted from ``target``; write ``output``.

    Args:
        video: the video to correct.
        target: the poses it should follow (a pose file or a :class:`PoseSequence`), one frame
            per video frame; scaled to the video's canvas when they differ.
        output: the corrected video (``.mp4``; ``.mkv`` with ``lossless``).
        thresholds: when a frame drifts (:class:`~holdpose.evaluate.verdicts.Thresholds`).
        limb_tolerance: degrees a limb may be off before it is moved, in a drifting frame.
        detector, pose_model, det_model: the re-detection, as ``holdpose evaluate`` chooses it.
        lossless: FFV1 in ``.mkv``: untouched frames bit-identical to the input's decode.
        progress: show progress bars.
    """
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import FrameSource, VideoWriter
    from holdpose.progress import progress_bar

    # 1. Check inputs before any work
    video, output = Path(video), Path(output)
    suffix = ".mkv" if lossless else ".mp4"
    if output.suffix.lower() != suffix:
        raise HoldposeError(f"{output}: correct writes {'a lossless .mkv' if lossless else 'an .mp4'} video"
                            f"{' (--lossless)' if lossless else ''}; name the output *{suffix}")
    if output.resolve() == video.resolve():
        raise HoldposeError(f"{output}: the output would overwrite the input video; choose another name")
    source = FrameSource(video)
    poses = load_poses(target) if not isinstance(target, PoseSequence) else target
    if poses.num_frames != source.num_frames:
        raise HoldposeError(f"{video} has {source.num_frames} frames and the poses {poses.num_frames}; they must "
                            "match frame for frame (holdpose refine --fps, or trim the video)")
    poses, _ = fit_target(poses, source.size, same_shape="give poses drawn on the video's canvas (holdpose align "
                          "--reference with a frame of it)")  # the same shape at another scale: scaled
    if not (np.isfinite(limb_tolerance) and 0 < limb_tolerance < 180):
        raise HoldposeError(f"limb_tolerance (--limb-tolerance) must be in (0, 180) degrees, got {limb_tolerance}")

    # 2. Judge every frame; keep the detections (keypoints only: memory flat in the video's length)
    tgt_scores = np.where(poses.track_ids[..., None] >= 0, poses.scores, 0)
    detections, before = [], []
    with FrameJudge(thresholds, detector=detector, max_people=max(1, poses.num_people), pose_model=pose_model,
                    det_model=det_model) as judge:
        for t, frame in enumerate(progress_bar(source, total=source.num_frames, desc="judge", enabled=progress)):
            keypoints, scores = judge.detect(frame)
            detections.append((np.asarray(keypoints), np.asarray(scores)))
            before.append(judge_pose(keypoints, scores, poses.keypoints[t], tgt_scores[t], thresholds))

        # 3. Which limbs to move in each drifting frame, shared with drifting neighbours
        plans = [_plan_frame(detections[t], poses.keypoints[t], tgt_scores[t], limb_tolerance)
                 if before[t].drift else None for t in range(source.num_frames)]
        plans = _spread_limbs(plans)

        # 4. Correct, judge again, write
        records, corrected = [], 0
        writer = VideoWriter(output, fps=source.fps, size=source.size, lossless=lossless)
        try:
            for t, frame in enumerate(progress_bar(FrameSource(video), total=source.num_frames, desc="correct",
                                                   enabled=progress)):
                after, fixed = before[t], frame
                if plans[t] is not None and plans[t]["limbs"]:
                    candidate = correct_frame(frame, *plans[t]["pose"], limbs=plans[t]["limbs"])
                    if candidate is not None:
                        verdict = judge(candidate, poses.keypoints[t], tgt_scores[t])
                        if _holds_better(verdict, before[t]):
                            after, fixed = verdict, candidate
                            corrected += 1
                writer.write(fixed)
                records.append({"frame": t, "corrected": fixed is not frame, "before": before[t].to_json(),
                                "after": after.to_json(),
                                "limbs": sorted(plans[t]["limbs"]) if plans[t] is not None else []})
        except BaseException:
            writer.abort()
            raise
        writer.close()

    verdicts_path = output.with_suffix(".verdicts.jsonl")
    _write_records(verdicts_path, records)
    return CorrectResult(video_path=output, verdicts_path=verdicts_path, num_frames=source.num_frames,
                         drifted=sum(v.drift for v in before), corrected=corrected,
                         still_drifting=sum(r["after"]["drift"] for r in records))


def _plan_frame(detection, target: np.ndarray, tgt_scores: np.ndarray, limb_tolerance: float) -> dict | None:
    """The detected person matched to the (first) target person, and its off limbs."""
    keypoints, scores = detection
    tgt_present = tgt_scores > DEFAULT_MIN_SCORE
    people = np.flatnonzero(tgt_present[:, BODY].any(-1))
    if not len(keypoints) or not len(people):
        return None  # nobody to move: the frame is left as it is
    j = int(people[0])
    centre = np.nanmean(np.where(tgt_present[j, BODY, None], target[j, BODY], np.nan), 0)
    det_present_body = scores[:, BODY] > DEFAULT_MIN_SCORE
    det_centres = np.array([np.nanmean(np.where(p[:, None], k[BODY], np.nan), 0) if p.any() else (np.inf, np.inf)
                            for k, p in zip(keypoints, det_present_body)])
    i = int(np.argmin(np.linalg.norm(det_centres - centre, axis=-1)))
    height = box_area_height(person_boxes(target[j:j + 1], tgt_present[j:j + 1])[0])[1]
    limbs = off_limbs(keypoints[i], scores[i] > DEFAULT_MIN_SCORE, target[j], tgt_present[j], height,
                      limb_tolerance)
    return {"limbs": limbs, "pose": (keypoints[i], scores[i], target[j], tgt_scores[j])}


def _spread_limbs(plans: list) -> list:
    """A limb moved in a drifting frame is moved in the drifting frames on either side too."""
    spread = []
    for t, plan in enumerate(plans):
        if plan is None:
            spread.append(None)
            continue
        limbs = set(plan["limbs"])
        for u in (t - 1, t + 1):
            if 0 <= u < len(plans) and plans[u] is not None:
                limbs |= plans[u]["limbs"]
        spread.append({**plan, "limbs": limbs})
    return spread


def _holds_better(after, before) -> bool:
    """A corrected frame is kept when it holds its pose where the input did not, or when it is
    better on PCK@0.05 and no worse on the worst limb (a detector that misread the frame must
    not make a correction look good)."""
    if after.drift != before.drift:
        return not after.drift
    pck_a, pck_b = np.nan_to_num(after.pck, nan=-1), np.nan_to_num(before.pck, nan=-1)
    limb_a, limb_b = np.nan_to_num(after.limb_error, nan=0), np.nan_to_num(before.limb_error, nan=0)
    return pck_a >= pck_b and limb_a <= limb_b and (pck_a > pck_b or limb_a < limb_b)


def _write_records(path: Path, records: list[dict]) -> None:
    from holdpose.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
