"""Drift benchmark for ``holdpose correct`` (closed-loop adherence).

For each fixture reference photo:

1. the fixture dance (extracted, filled, smoothed, as bench_animate.py) aligned to the photo is
   the *target*;
2. a *drifted* copy of it: on 20 % of the frames (seeded), one or two limbs are turned at their
   joint by 20-45 degrees (upper arm or forearm about shoulder or elbow, thigh or shin about hip
   or knee, the hand and foot turning with them), or a hand is moved by one hand length;
3. the warp animator animates the photo along the drifted poses (so 20 % of its frames hold
   the wrong pose), and ``correct_video`` repairs that video against the target.

Figures (targets from the issue): PCK@0.05 against the target before and after (after >= 0.95);
the frames left alone are unchanged (PSNR >= 40 dB against the input's decode; bit-identical with
``--lossless``); VBench flicker after vs before (no more than +10 %). Writes bench/out/correct_*
(videos, reports, a contact sheet of drifted frames before/after) and bench/results/correct.json.

    .venv/bin/python bench/bench_correct.py [--frames 120] [--lossless]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import git_state, load  # noqa: E402
from bench_animate import FIXTURES, OUT, RESULTS, driving_poses  # noqa: E402

from holdpose.skeleton import COCO_WHOLEBODY  # noqa: E402

IDX = COCO_WHOLEBODY.index
CHAINS = {  # joint -> the points that turn about it
    "left_shoulder": ["left_elbow", "left_wrist", "left_hand"], "right_shoulder": ["right_elbow", "right_wrist",
                                                                                  "right_hand"],
    "left_elbow": ["left_wrist", "left_hand"], "right_elbow": ["right_wrist", "right_hand"],
    "left_hip": ["left_knee", "left_ankle", "left_foot"], "right_hip": ["right_knee", "right_ankle", "right_foot"],
    "left_knee": ["left_ankle", "left_foot"], "right_knee": ["right_ankle", "right_foot"],
}
GROUPS = {"left_hand": range(91, 112), "right_hand": range(112, 133), "left_foot": range(17, 20),
          "right_foot": range(20, 23)}


def indices(names) -> list[int]:
    out = []
    for name in names:
        out += list(GROUPS[name]) if name in GROUPS else [IDX(name)]
    return out


def drift(target, fraction: float = 0.2, seed: int = 0):
    """A copy of ``target`` with limbs turned or a hand moved on ``fraction`` of the frames."""
    rng = np.random.default_rng(seed)
    drifted = target.copy()
    frames = np.sort(rng.choice(target.num_frames, int(round(fraction * target.num_frames)), replace=False))
    for t in frames:
        kp = drifted.keypoints[t, 0]
        if rng.random() < 0.2:  # a hand moved by its own length
            side = rng.choice(["left", "right"])
            hand = indices([f"{side}_wrist", f"{side}_hand"])
            length = np.linalg.norm(kp[IDX(f"{side}_wrist")] - kp[IDX(f"{side}_elbow")]) * 0.6
            angle = rng.uniform(0, 2 * math.pi)
            kp[hand] += length * np.array([math.cos(angle), math.sin(angle)])
            continue
        for joint in rng.choice(list(CHAINS), size=rng.integers(1, 3), replace=False):
            degrees = rng.uniform(20, 45) * rng.choice([-1, 1])
            a = math.radians(degrees)
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            centre = kp[IDX(joint)].copy()
            moved = indices(CHAINS[joint])
            kp[moved] = (kp[moved] - centre) @ rot.T + centre
    return drifted, frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def run_reference(photo: Path, frames: int | None, lossless: bool, max_limb_error: float | None) -> dict:
    from holdpose.animate.character import Character
    from holdpose.animate.output import write_animation
    from holdpose.animate.warp import WarpAnimator
    from holdpose.evaluate.correct import correct_video
    from holdpose.evaluate.report import write_report
    from holdpose.evaluate.run import evaluate_video
    from holdpose.io.posefile import save_poses
    from holdpose.io.video import FrameSource, read_image, write_image

    name = photo.stem
    character = Character(read_image(photo))
    target = character.align(driving_poses(frames))
    drifted, frames_drifted = drift(target)
    save_poses(target, OUT / f"correct_{name}_target.npz")
    video = OUT / f"correct_{name}_drifted.mp4"
    write_animation(WarpAnimator(character.rig)(character.image, drifted), drifted, video, progress=False)
    fixed = OUT / f"correct_{name}_fixed{'.mkv' if lossless else '.mp4'}"
    from holdpose.evaluate.verdicts import Thresholds

    result = correct_video(video, target, fixed, lossless=lossless, detector="mediapipe", progress=False,
                           thresholds=Thresholds(min_pck=0.9, max_limb_error=max_limb_error))

    before = evaluate_video(video, target=target, detector="mediapipe", progress=False)
    after = evaluate_video(fixed, target=target, detector="mediapipe", verdicts=result.verdicts_path, progress=False)
    write_report(after, OUT / f"correct_{name}_report")

    records = [json.loads(line) for line in result.verdicts_path.read_text().splitlines()]
    untouched = [r["frame"] for r in records if not r["corrected"]]
    psnrs, sheet = [], []
    shown = set(list(frames_drifted[:: max(1, len(frames_drifted) // 6)])[:6])
    for t, (a, b) in enumerate(zip(FrameSource(video), FrameSource(fixed))):
        if t in untouched:
            psnrs.append(psnr(a, b))
        if t in shown:
            sheet.append(np.concatenate([a, b], axis=0))
    if sheet:
        write_image(OUT / f"correct_{name}_sheet.png", np.concatenate(sheet, axis=1))
    drifted_set = set(frames_drifted.tolist())
    pck_b, pck_a = before.per_frame["pck@0.05"], after.per_frame["pck@0.05"]
    row = {"reference": photo.name, "frames": target.num_frames,
           "drifted_frames": len(drifted_set), "judged_drifting": result.drifted, "corrected": result.corrected,
           "still_drifting": result.still_drifting,
           "pck@0.05_before": before.metrics["pck@0.05"], "pck@0.05_after": after.metrics["pck@0.05"],
           "pck@0.05_drifted_frames_before": float(np.nanmean(pck_b[sorted(drifted_set)])),
           "pck@0.05_drifted_frames_after": float(np.nanmean(pck_a[sorted(drifted_set)])),
           "untouched_frames": len(untouched), "untouched_psnr_min": min(psnrs) if psnrs else None,
           "untouched_psnr_mean": float(np.mean(psnrs)) if psnrs else None,
           "flicker_before": before.metrics["flicker"], "flicker_after": after.metrics["flicker"],
           "flicker_ratio": after.metrics["flicker"] / before.metrics["flicker"]}
    print(json.dumps(row, indent=1))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120, help="frames of the dance (default 120)")
    parser.add_argument("--lossless", action="store_true", help="write the corrected video with FFV1")
    parser.add_argument("--reference", action="append", help="reference photo(s) (default: the fixture ones)")
    parser.add_argument("--max-limb-error", type=float, default=20.0,
                        help="a frame drifts when a limb is off by more degrees (default 20, the smallest drift)")
    args = parser.parse_args(argv)
    if not FIXTURES.is_dir():
        print("SKIP: ../shared/fixtures is absent")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    photos = [Path(p) for p in args.reference] if args.reference else \
        sorted((FIXTURES / "reference").glob("*.png"))
    rows = [run_reference(photo, args.frames, args.lossless, args.max_limb_error) for photo in photos]
    result = {"git": git_state(), "load": load(), "lossless": args.lossless, "max_limb_error": args.max_limb_error,
              "rows": rows,
              "targets": {"pck@0.05_after": 0.95, "untouched_psnr_min": 40, "flicker_ratio": 1.10}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"correct{'_lossless' if args.lossless else ''}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
