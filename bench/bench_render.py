"""Benchmark: holdpose's pose-map renderer against the reference drawing code.

The figure it checks: "Rendering: body + hands + face at 512x768, at least 5x the frames
per second of the reference drawing code, with at most 0.5% of pixels differing from it."

The reference is controlnet_aux 0.0.10's ``open_pose/util.py`` (draw_bodypose,
draw_handpose, draw_facepose), run in its own throwaway venv (``bench/reference_venv.sh``,
created on first use) by ``bench/_reference_draw.py``. holdpose runs here, in the project
venv, through its public API ``render_pose_maps(seq, "openpose_full")``. Both sides get the
same OpenPose keypoints (holdpose's ``wholebody_to_openpose``; points with score <= 0.3
left out) and only the drawing loop is timed, after one warm-up frame. The two sides run
--repeat passes over all frames each, interleaved (this machine's speed drifts): frames/s
is the best pass of each side, the speed-up the median over pass pairs of reference
time / holdpose time. Then every map is compared pixel by pixel (a pixel differs when any
channel does).

Poses are real. By default: every person in the COCO-WholeBody ground truth of
../shared/fixtures/images/annotations.json with a face and at least one hand, each
centred and scaled to fit the canvas, cycled over --frames frames with a small random
rotation, scale, shift and per-point jitter each frame. ``--poses FILE`` benches an
extracted sequence instead (any pose file holdpose reads), letterboxed to the canvas.

    .venv/bin/python bench/bench_render.py [--poses FILE] [--frames 300] [--repeat 3]

Prints a markdown table and writes bench/results/render.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
FIXTURES = REPO.parent / "shared" / "fixtures"
DEFAULT_REFERENCE_VENV = Path(os.environ.get("HOLDPOSE_REFERENCE_VENV", "/tmp/holdpose-reference-venv"))
STYLE = "openpose_full"
TARGET_SPEEDUP = 5.0
TARGET_DIFF = 0.005


def rel(path: Path) -> str:
    """``path`` relative to the repo root when inside it or its parent (../shared), else absolute."""
    path = Path(path).resolve()
    return os.path.relpath(path, REPO) if path.is_relative_to(REPO.parent) else str(path)


# --- poses -------------------------------------------------------------------------

def fixture_people(annotations: Path) -> list[dict]:
    """COCO-WholeBody people with a face and at least one hand: 133 points and presence."""
    data = json.loads(annotations.read_text())
    people = []
    for ann in data["annotations"]:
        fields = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
        if not all(f in ann for f in fields):
            continue
        flat = np.concatenate([np.asarray(ann[f], np.float64) for f in fields]).reshape(133, 3)
        present = flat[:, 2] > 0
        if present[23:91].any() and present[91:133].any():
            people.append({"image_id": ann["image_id"], "annotation_id": ann["id"],
                           "points": flat[:, :2], "present": present})
    return people


def fit_to_canvas(points: np.ndarray, present: np.ndarray, size: tuple[int, int], fill: float = 0.85) -> np.ndarray:
    """Scale and shift one person so its present points fill ``fill`` of the canvas, centred."""
    w, h = size
    lo, hi = points[present].min(0), points[present].max(0)
    scale = fill * min(w / max(hi[0] - lo[0], 1e-6), h / max(hi[1] - lo[1], 1e-6))
    return (points - (lo + hi) / 2) * scale + np.array([w / 2, h / 2])


def fixture_sequence(annotations: Path, size: tuple[int, int], frames: int, seed: int):
    from holdpose.sequence import PoseSequence

    people = fixture_people(annotations)
    if not people:
        raise SystemExit(f"{annotations}: no annotated person with a face and a hand")
    fitted = [fit_to_canvas(p["points"], p["present"], size) for p in people]
    rng = np.random.default_rng(seed)
    seq = PoseSequence.empty(frames, 1, size=size, fps=30.0)
    center = np.array(size, np.float64) / 2
    for t in range(frames):
        i = t % len(people)
        angle = np.radians(rng.uniform(-4, 4))
        scale = 1 + rng.uniform(-0.04, 0.04)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        shift = rng.uniform(-12, 12, 2)
        pts = (fitted[i] - center) @ rot.T + center + shift + rng.normal(0, 1.0, fitted[i].shape)
        present = people[i]["present"]
        seq.keypoints[t, 0] = np.where(present[:, None], pts, 0)
        seq.scores[t, 0] = present.astype(np.float32)
        seq.track_ids[t, 0] = 0
    info = {
        "source": rel(annotations),
        "people": [{"image_id": p["image_id"], "annotation_id": p["annotation_id"],
                    "points": {part: int(p["present"][a:b].sum()) for part, (a, b) in
                               {"body": (0, 17), "feet": (17, 23), "face": (23, 91),
                                "left_hand": (91, 112), "right_hand": (112, 133)}.items()}}
                   for p in people],
        "perturbation": "per frame: rotation U(-4,4) deg, scale U(0.96,1.04), shift U(-12,12) px, "
                        "jitter N(0,1) px",
        "seed": seed,
    }
    return seq, info


def file_sequence(path: Path, size: tuple[int, int], frames: int | None):
    """A pose file's sequence, letterboxed (uniform scale, centred) to ``size``."""
    from holdpose.io.posefile import load_poses
    from holdpose.sequence import PoseSequence

    seq = load_poses(path)
    if seq.layout.name != "coco_wholebody":
        raise SystemExit(f"{path}: layout {seq.layout.name}, need coco_wholebody (133 points)")
    if frames:
        seq = seq[:frames]
    (w0, h0), (w, h) = seq.size, size
    scale = min(w / w0, h / h0)
    offset = np.array([(w - w0 * scale) / 2, (h - h0 * scale) / 2], np.float32)
    keypoints = np.where(seq.present[..., None], seq.keypoints * np.float32(scale) + offset, 0)
    out = PoseSequence(keypoints, seq.scores.copy(), seq.track_ids.copy(), layout=seq.layout, size=size, fps=seq.fps)
    info = {"source": rel(path), "source_size": [w0, h0], "scale": scale,
            "people_per_frame": float((seq.track_ids >= 0).sum(1).mean())}
    return out, info


# --- the two sides -------------------------------------------------------------------

def opencv_spec() -> tuple[str, str]:
    """The pip spec of the OpenCV wheel matching this venv's OpenCV, and its version."""
    for dist in ("opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return f"opencv-python-headless=={version}", f"{dist} {version}"
    return "opencv-python-headless", "unknown"


def reference_python(venv: Path) -> Path:
    spec, _ = opencv_spec()
    env = dict(os.environ, OPENCV_SPEC=spec, PYTHON=os.environ.get("REFERENCE_PYTHON", "python3"))
    result = subprocess.run(["bash", str(BENCH / "reference_venv.sh"), str(venv)], env=env,
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"could not set up the reference venv in {venv} (exit {result.returncode})")
    return Path(result.stdout.strip().splitlines()[-1])


def write_reference_input(seq, path: Path, threshold: float) -> None:
    """OpenPose parts of every frame, normalised as controlnet_aux keeps them (float64 x/W, y/H)."""
    from holdpose.convert import wholebody_to_openpose

    w, h = seq.size
    parts = wholebody_to_openpose(seq.keypoints, seq.scores)
    arrays = {"size": np.array([w, h]), "person_ok": seq.track_ids >= 0}
    for name, (points, scores) in parts.items():
        arrays[name] = points.astype(np.float64) / np.array([w, h], np.float64)
        arrays[name + "_ok"] = scores > threshold
    np.savez(path, **arrays)


class Reference:
    """The reference drawing process (in its venv), running timed passes on request."""

    def __init__(self, python: Path, seq, workdir: Path, threshold: float):
        inp, self.output = workdir / "poses.npz", workdir / "reference_maps.npy"
        write_reference_input(seq, inp, threshold)
        self.proc = subprocess.Popen([str(python), str(BENCH / "_reference_draw.py"), str(inp), str(self.output),
                                      "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise SystemExit(f"reference drawing failed to start (exit {self.proc.wait()})")

    def timed_pass(self) -> float:
        self.proc.stdin.write("pass\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def finish(self) -> tuple[dict, np.ndarray]:
        """Let it save its maps; returns its report and the maps (memory-mapped)."""
        out, _ = self.proc.communicate()
        if self.proc.returncode != 0:
            raise SystemExit(f"reference drawing failed (exit {self.proc.returncode})")
        return json.loads(out.strip().splitlines()[-1]), np.load(self.output, mmap_mode="r")


class Holdpose:
    """holdpose's renderer through its public API, one timed pass per call."""

    def __init__(self, seq, threshold: float):
        from holdpose.render.openpose import render_pose_maps

        self.seq, self.threshold, self.render = seq, threshold, render_pose_maps
        next(render_pose_maps(seq[0], STYLE, threshold=threshold))  # warm-up

    def timed_pass(self) -> float:
        # Maps are dropped as they come, as on the reference side (holding hundreds of
        # 1.2 MB maps would time page faults, not drawing).
        start = time.perf_counter()
        for _map in self.render(self.seq, STYLE, threshold=self.threshold):
            pass
        return time.perf_counter() - start

    @staticmethod
    def info() -> dict:
        import cv2

        import holdpose

        return {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                "holdpose": getattr(holdpose, "__version__", "?")}


def compare(seq, ref_maps: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: fraction of pixels differing from the reference (any channel), and of
    pixels the reference drew (not black). Untimed."""
    from holdpose.render.openpose import render_pose_maps

    diff, ink = np.empty(len(ref_maps)), np.empty(len(ref_maps))
    t = -1
    for t, ours in enumerate(render_pose_maps(seq, STYLE, threshold=threshold)):
        ref = np.asarray(ref_maps[t])
        if ref.shape != ours.shape:
            raise SystemExit(f"frame {t}: reference map {ref.shape}, holdpose map {ours.shape}")
        diff[t] = (ref != ours).any(-1).mean()
        ink[t] = ref.any(-1).mean()
    if t + 1 != len(ref_maps):
        raise SystemExit(f"reference drew {len(ref_maps)} maps, holdpose {t + 1}")
    return diff, ink


# --- report --------------------------------------------------------------------------



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=Path, help="bench on this pose file (.json OpenPose / .npz) instead")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames to draw (default 300 for the fixture poses, all of --poses)")
    parser.add_argument("--size", default="512x768", help="canvas WxH (default 512x768)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="timed passes per side, interleaved (default 7); fps: best pass, "
                             "speed-up: median of the pass pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--reference-venv", type=Path, default=DEFAULT_REFERENCE_VENV)
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "render.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when the figure's targets are missed")
    args = parser.parse_args(argv)

    from holdpose.io.posefile import DEFAULT_SCORE_THRESHOLD as threshold

    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.poses is not None:
        seq, poses_info = file_sequence(args.poses, size, args.frames)
    else:
        annotations = args.fixtures / "images" / "annotations.json"
        if not annotations.is_file():
            print(f"SKIP: {annotations} not found (real-pose fixtures absent); pass --poses FILE to bench anyway")
            return 0
        seq, poses_info = fixture_sequence(annotations, size, args.frames or 300, args.seed)

    python = reference_python(args.reference_venv)
    with tempfile.TemporaryDirectory(prefix="holdpose-bench-render-") as tmp:
        # Passes alternate between the two sides (and which goes first), so each pair of
        # passes runs close in time and slow spells of the machine hit both.
        reference, ours = Reference(python, seq, Path(tmp), threshold), Holdpose(seq, threshold)
        ref_seconds, ours_seconds = [], []
        for r in range(max(1, args.repeat)):
            if r % 2 == 0:
                ref_seconds.append(reference.timed_pass())
                ours_seconds.append(ours.timed_pass())
            else:
                ours_seconds.append(ours.timed_pass())
                ref_seconds.append(reference.timed_pass())
        ref_info, ref_maps = reference.finish()
        ours_info = {"frames": seq.num_frames, "seconds": ours_seconds, **ours.info()}
        diff, ink = compare(seq, ref_maps, threshold)
        del ref_maps

    n = len(diff)
    ref_fps = n / min(ref_seconds)
    ours_fps = n / min(ours_seconds)
    pair_ratios = [r / o for r, o in zip(ref_seconds, ours_seconds)]
    speedup = float(np.median(pair_ratios))
    meets = {"speedup": speedup >= TARGET_SPEEDUP, "pixels": float(diff.max()) <= TARGET_DIFF}
    ref_cv, ours_cv = ref_info["opencv"], ours_info["opencv"]

    report = {
        "benchmark": "render",
        "figure": "Rendering: body + hands + face at 512x768, at least 5x the frames per second of the "
                  "reference drawing code, with at most 0.5% of pixels differing from it.",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "style": STYLE, "size": list(size), "frames": n, "threshold": threshold, "repeat": args.repeat,
        "poses": poses_info,
        "reference": {"code": "controlnet_aux 0.0.10 open_pose/util.py (draw_bodypose, draw_handpose, "
                              "draw_facepose)", "venv": str(args.reference_venv),
                      "fps": ref_fps, **ref_info},
        "holdpose": {"code": f"holdpose.render.openpose.render_pose_maps(seq, {STYLE!r})", "fps": ours_fps,
                     **ours_info},
        "speedup": speedup,
        "speedup_note": "median over interleaved pass pairs of reference time / holdpose time; "
                        "fps are best-of-passes",
        "speedup_per_pair": pair_ratios,
        "speedup_best_of": ours_fps / ref_fps,
        "pixels_differing": {"mean": float(diff.mean()), "max": float(diff.max()),
                             "frames_with_any": int((diff > 0).sum()), "per_frame": diff.tolist()},
        "pixels_drawn_reference": {"mean": float(ink.mean()), "min": float(ink.min())},
        "targets": {"speedup": TARGET_SPEEDUP, "pixels_differing_max": TARGET_DIFF},
        "meets_targets": meets,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    source = poses_info["source"]
    print(f"\nPose-map rendering, {STYLE} (body + hands + face), {size[0]}x{size[1]}, {n} frames of poses "
          f"from {source}; frames/s: best of {args.repeat} passes\n")
    print("| | frames/s | pixels differing from reference (mean / max over frames) |")
    print("|---|---:|---|")
    print(f"| reference: controlnet_aux 0.0.10 util.py (OpenCV {ref_cv}) | {ref_fps:,.0f} | - |")
    print(f"| holdpose render_pose_maps (OpenCV {ours_cv}) | {ours_fps:,.0f} | "
          f"{100 * diff.mean():.4f}% / {100 * diff.max():.4f}% ({int((diff > 0).sum())} of {n} frames) |")
    print(f"| **speed-up** (median of {len(pair_ratios)} interleaved pass pairs; "
          f"range {min(pair_ratios):.1f}-{max(pair_ratios):.1f}x) | **{speedup:.1f}x** | |")
    print(f"\nReference maps have {100 * ink.mean():.2f}% of pixels drawn on average.")
    if ref_cv != ours_cv:
        print(f"note: OpenCV versions differ (reference {ref_cv}, holdpose {ours_cv}); "
              f"delete {args.reference_venv} to rebuild it with the matching wheel")
    verdict = "meets" if all(meets.values()) else "MISSES"
    print(f"Target (>= {TARGET_SPEEDUP:g}x, <= {100 * TARGET_DIFF:g}% pixels differing): {verdict} "
          f"(speed {'ok' if meets['speedup'] else 'missed'}, pixels {'ok' if meets['pixels'] else 'missed'})")
    print(f"wrote {rel(args.output)}")
    return 1 if args.check and not all(meets.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
