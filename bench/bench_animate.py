"""Embedded (warp) animator figures.

1. Pose adherence: each fixture reference photo driven by the fixture dance video (extracted, gaps
   filled, smoothed, aligned to the photo), animated, then measured with holdpose's own evaluation
   (holdpose.evaluate.evaluate_video, what `holdpose evaluate` runs): poses re-detected on the output
   frames with MediaPipe against the aligned target, PCK@0.05 of the person's height for visible body
   keypoints (target: >= 0.95), OKS AP, flicker, warping error, keypoint jitter. The HTML reports
   land in bench/out/animate_<reference>_report/.
2. Speed at 512x512: per frame, animating (deform) vs decoding the driving video plus encoding the
   output, measured in the same run (target: animating <= 2x decode + encode).
3. A contact sheet per reference in bench/out/ to look at.

    python bench/bench_animate.py [--frames N]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "results"


def driving_poses(frames: int | None):
    from holdpose.detect.extract import extract_poses
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.refine.pipeline import refine

    cached = OUT / "dance_clean.npz"
    if cached.exists():
        seq = load_poses(cached)
    else:
        raw = extract_poses(FIXTURES / "videos" / "dance_musepose_dance.mp4", short_side=512, progress=False)
        seq = refine(raw, fill=True, smooth="offline")
        save_poses(seq, cached)
    return seq[:frames] if frames else seq


def fit_512(image: np.ndarray) -> np.ndarray:
    """Letterbox an image into 512x512 on its own border colour."""
    import cv2

    h, w = image.shape[:2]
    scale = 512 / max(h, w)
    small = cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    out = np.empty((512, 512, 3), np.uint8)
    out[:] = image[0, 0]
    y0, x0 = (512 - small.shape[0]) // 2, (512 - small.shape[1]) // 2
    out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return out


def adherence_run(reference_path: Path, driving) -> dict:
    from holdpose.animate.output import write_animation
    from holdpose.evaluate.report import write_report
    from holdpose.evaluate.run import evaluate_video
    from holdpose.animate.warp import WarpAnimator, rig_reference
    from holdpose.io.video import read_image
    from holdpose.refine.align import align_to_reference

    image = read_image(reference_path)
    rig = rig_reference(image)
    aligned, info = align_to_reference(driving, rig.points, rig.present.astype(np.float32),
                                       reference_size=(image.shape[1], image.shape[0]))
    name = reference_path.stem
    video = OUT / f"animate_{name}.mp4"
    start = time.perf_counter()
    write_animation(WarpAnimator(rig)(image, aligned), aligned, video,
                    contact_sheet=OUT / f"animate_{name}_sheet.png", progress=False)
    seconds = time.perf_counter() - start
    evaluation = evaluate_video(video, target=aligned, detector="mediapipe", progress=False)
    write_report(evaluation, OUT / f"animate_{name}_report")
    keys = ("pck@0.05", "pck@0.1", "pck@0.2", "oks_ap", "oks_ar", "mse_p", "pce", "flicker", "warp_error",
            "keypoint_jitter", "keypoint_jitter_target")
    summary = {key: evaluation.metrics.get(key) for key in keys}
    summary.update(reference=str(reference_path.relative_to(ROOT.parent)), size=list(aligned.size),
                   frames=aligned.num_frames, body_ratio=info.body_ratio, animate_and_encode_seconds=seconds,
                   detected_frames=int(np.sum(evaluation.per_frame["num_detected"] > 0)))
    return summary


def speed_run(driving, reference_path: Path) -> dict:
    """Per-frame costs at 512x512 in one run: decode the driving video, deform, encode."""
    from holdpose.animate.warp import rig_reference
    from holdpose.io.video import FrameSource, VideoWriter, read_image
    from holdpose.refine.align import align_to_reference

    image = fit_512(read_image(reference_path))
    rig = rig_reference(image)
    aligned, _ = align_to_reference(driving, rig.points, rig.present.astype(np.float32), reference_size=(512, 512))
    n = aligned.num_frames

    start = time.perf_counter()
    decoded = 0
    for _ in FrameSource(OUT / "dance_512.mp4", stop=n):
        decoded += 1
    decode = time.perf_counter() - start

    frames = []
    start = time.perf_counter()
    for t in range(n):
        frames.append(rig.deform(aligned.keypoints[t, 0], aligned.scores[t, 0]))
    animate = time.perf_counter() - start

    start = time.perf_counter()
    with VideoWriter(OUT / "animate_speed_512.mp4", fps=aligned.fps, size=(512, 512)) as writer:
        for frame in frames:
            writer.write(frame)
    encode = time.perf_counter() - start
    return {"frames": n, "decoded": decoded, "decode_seconds": decode, "animate_seconds": animate,
            "encode_seconds": encode, "animate_fps": n / animate,
            "ratio_animate_to_decode_plus_encode": animate / (decode + encode)}


def ensure_dance_512():
    path = OUT / "dance_512.mp4"
    if not path.exists():
        from holdpose.io.video import FrameSource, VideoWriter

        source = FrameSource(FIXTURES / "videos" / "dance_musepose_dance.mp4", short_side=512)
        with VideoWriter(path, fps=source.fps, size=source.size) as writer:
            for frame in source:
                writer.write(frame)


def fixtures_ready() -> bool:
    """Make the output folders, or say SKIP (and False) when the shared fixtures are absent."""
    if not FIXTURES.exists():
        print(f"SKIP: {FIXTURES} is absent")
        return False
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, help="use only the first N frames of the dance")
    args = parser.parse_args(argv)
    if not fixtures_ready():
        return 0
    ensure_dance_512()
    driving = driving_poses(args.frames)
    references = sorted((FIXTURES / "reference").glob("*.png"))
    adherence = [adherence_run(ref, driving) for ref in references]
    speed = speed_run(driving, references[0])
    result = {
        "benchmark": "animate (warp)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=ROOT).stdout.strip(),
        "machine": {"platform": platform.platform(), "load": list(__import__("os").getloadavg())},
        "adherence": adherence,
        "speed_512": speed,
    }
    (RESULTS / "animate.json").write_text(json.dumps(result, indent=2))
    print("| reference | frames | PCK@0.05 | PCK@0.1 | OKS AP | flicker | warping error | keypoint jitter px (target's) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in adherence:
        print(f"| {Path(row['reference']).name} | {row['frames']} | {row['pck@0.05']:.3f} | {row['pck@0.1']:.3f} | "
              f"{row['oks_ap']:.3f} | {row['flicker']:.2f} | {row['warp_error']:.5f} | {row['keypoint_jitter']:.2f} ({row['keypoint_jitter_target']:.2f}) |")
    s = speed
    print(f"\nspeed at 512x512, {s['frames']} frames: animate {s['animate_fps']:.1f} frames/s "
          f"({1000 * s['animate_seconds'] / s['frames']:.1f} ms/frame); decode {1000 * s['decode_seconds'] / s['frames']:.1f} "
          f"ms/frame + encode {1000 * s['encode_seconds'] / s['frames']:.1f} ms/frame; "
          f"ratio {s['ratio_animate_to_decode_plus_encode']:.2f} (target <= 2)")
    print(f"wrote {RESULTS / 'animate.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
