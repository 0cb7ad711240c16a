"""Alignment figures on real poses.

The character is each fixture reference photo (its pose detected by MediaPipe). A driving performer
with the character's exact body is made by giving the fixture dance's motion (bone directions, root
motion) the character's bone lengths; that performer is then scaled to 0.6x and 1.5x and shifted.
Aligning it back must give every bone the character's length (target: within 5 % in every frame),
and with --orientation-only keep the driving bone directions (target: within 2 degrees).

    python bench/bench_align.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "results"


def bones_of(points, scores):
    from holdpose.refine.align import ALL_BONES, bone_lengths, with_virtual_joints

    p, s = with_virtual_joints(points, scores, 0.3)
    present = s > 0.3
    a = np.array([b[0] for b in ALL_BONES])
    b = np.array([b[1] for b in ALL_BONES])
    vectors = p[..., b, :] - p[..., a, :]
    ok = present[..., a] & present[..., b]
    return bone_lengths(p, present), np.where(ok[..., None], vectors, np.nan)


def main() -> int:
    if not FIXTURES.exists():
        print(f"SKIP: {FIXTURES} is absent")
        return 0
    from holdpose.detect.extract import extract_poses
    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.io.video import read_image
    from holdpose.refine.align import PELVIS, align_to_reference, with_virtual_joints
    from holdpose.refine.pipeline import refine

    OUT.mkdir(parents=True, exist_ok=True)
    cached = OUT / "dance_clean.npz"
    if not cached.exists():
        raw = extract_poses(FIXTURES / "videos" / "dance_musepose_dance.mp4", short_side=512, progress=False)
        save_poses(refine(raw, fill=True, smooth="offline"), cached)
    dance = load_poses(cached)

    rows = []
    for reference_path in sorted((FIXTURES / "reference").glob("*.png")):
        image = read_image(reference_path)
        with MediaPipeDetector() as detector:
            kp, sc = detector(image)
        ref_kp, ref_sc = kp[0], sc[0]
        ref_len, _ = bones_of(ref_kp, ref_sc)
        # a performer with the character's body, moving like the dancer
        performer, _ = align_to_reference(dance, ref_kp, ref_sc, orientation_only=True,
                                          reference_size=(image.shape[1], image.shape[0]))
        pelvis = with_virtual_joints(performer.keypoints[:, 0], performer.scores[:, 0])[0][:, PELVIS]
        for scale in (0.6, 1.5):
            driving = performer.copy()
            center = pelvis[0]
            driving.keypoints = ((performer.keypoints - center) * scale + center + [37, -21]).astype(np.float32)
            start = time.perf_counter()
            aligned, info = align_to_reference(driving, ref_kp, ref_sc,
                                               reference_size=(image.shape[1], image.shape[0]))
            seconds = time.perf_counter() - start
            oriented, _ = align_to_reference(driving, ref_kp, ref_sc, orientation_only=True,
                                             reference_size=(image.shape[1], image.shape[0]))
            got_len, _ = bones_of(aligned.keypoints[:, 0], aligned.scores[:, 0])
            length_error = np.abs(got_len / ref_len - 1)
            _, v_drv = bones_of(driving.keypoints[:, 0], driving.scores[:, 0])
            _, v_ori = bones_of(oriented.keypoints[:, 0], oriented.scores[:, 0])
            cross = v_drv[..., 0] * v_ori[..., 1] - v_drv[..., 1] * v_ori[..., 0]
            dot = (v_drv * v_ori).sum(-1)
            angle = np.degrees(np.abs(np.arctan2(cross, dot)))
            rows.append({
                "reference": reference_path.name, "scale": scale, "frames": aligned.num_frames,
                "body_ratio": info.body_ratio, "bones_measured": int(np.isfinite(length_error).sum()),
                "max_bone_length_error": float(np.nanmax(length_error)),
                "mean_bone_length_error": float(np.nanmean(length_error)),
                "max_direction_error_deg": float(np.nanmax(angle)),
                "seconds": seconds,
            })
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "align.json").write_text(json.dumps({"benchmark": "align", "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                    "rows": rows}, indent=2))
    print("| reference | driver scale | body ratio found | max bone length error | max direction error "
          "(orientation-only) | bone-frames | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['reference']} | {r['scale']} | {r['body_ratio']:.3f} | {100 * r['max_bone_length_error']:.2f} % | "
              f"{r['max_direction_error_deg']:.3f}° | {r['bones_measured']} | {r['seconds']:.3f} |")
    ok = all(r["max_bone_length_error"] < 0.05 and r["max_direction_error_deg"] < 2 for r in rows)
    print(f"targets (< 5 %, < 2°) met: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
