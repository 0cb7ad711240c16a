"""Benchmark: gap filling, smoothing and left/right swap repair on real poses.

The figures it checks:

- Jitter: after offline smoothing, the mean keypoint acceleration (magnitude of the second
  difference, px/frame^2, over present body points) is at most 40 % of the raw one, the mean
  displacement from the raw track stays under 1.5 % of the person's height (median over
  frames of the body box height), and the lag is 0 frames. One-Euro (causal) is reported
  beside it; it lags, as every causal filter does.
- Swaps: left/right swaps (arms, legs or the whole body, equally often) injected into 10 % of
  the frames are repaired in at least 95 % of cases, with no new swap introduced.
- Speed: fill_gaps + smooth_offline + fix_swaps on 10 000 frames of one person, in seconds
  (tracking and resampling are timed elsewhere).

Lag is the shift l (within +-10 frames) that best aligns the smoothed track with the raw one:
the argmax over l of the cross-correlation term sum_t smoothed(t) . raw(t - l) with energy
normalised, i.e. the minimum of the mean squared distance between smoothed(t) and raw(t - l)
over present body points; positive l means the smoothed track trails the raw one. A
parabola through the three best shifts gives the sub-frame value.

Poses: the fixture dance video extracted with holdpose's default (MediaPipe) detector,
``bench/out/dance_raw.npz`` (created on first use with ``holdpose extract ... --short-side
512``, real confidences); ``--poses FILE`` benches another pose file.

    .venv/bin/python bench/bench_refine.py [--poses FILE] [--trials 20] [--frames 10000]

Prints a markdown table and writes bench/results/refine.json. Skips (exit 0) when
../shared/fixtures is absent and no --poses is given.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
FIXTURES = REPO.parent / "shared" / "fixtures"
VIDEO = "videos/dance_musepose_dance.mp4"
DEFAULT_POSES = BENCH / "out" / "dance_raw.npz"
BODY = slice(0, 17)
MAX_LAG = 10
TARGETS = {"accel_ratio_max": 0.40, "displacement_height_max": 0.015, "lag_frames": 0,
           "repaired_min": 0.95, "new_swaps_max": 0, "seconds_max_all_steps": 2.0}


def rel(path: Path) -> str:
    path = Path(path).resolve()
    return os.path.relpath(path, REPO) if path.is_relative_to(REPO.parent) else str(path)


# --- poses -----------------------------------------------------------------------------

def extract_dance(fixtures: Path, out: Path) -> None:
    """Run ``holdpose extract`` on the fixture dance video (about half a minute on 2 CPUs)."""
    exe = Path(sys.executable).with_name("holdpose")
    cmd = [str(exe) if exe.exists() else "holdpose", "extract", str(fixtures / VIDEO), "-o", str(out),
           "--short-side", "512"]
    print("extracting poses:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def first_person(seq):
    """``seq`` with only its first person slot (the figures are for one person)."""
    return replace(seq, keypoints=seq.keypoints[:, :1], scores=seq.scores[:, :1],
                   track_ids=seq.track_ids[:, :1], interpolated=seq.interpolated[:, :1])


def body_height(seq) -> float:
    """Median over frames of slot 0's body box height (px), from present body points."""
    y = np.where(seq.present[:, 0, BODY], seq.keypoints[:, 0, BODY, 1], np.nan)
    with np.errstate(all="ignore"):
        return float(np.nanmedian(np.nanmax(y, 1) - np.nanmin(y, 1)))


# --- jitter ------------------------------------------------------------------------------

def mean_acceleration(seq) -> float:
    """Mean |x(t+1) - 2 x(t) + x(t-1)| (px/frame^2) over body points present in all three frames."""
    x = seq.keypoints[:, 0, BODY].astype(np.float64)
    p = seq.present[:, 0, BODY]
    accel = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1)
    return float(accel[p[2:] & p[1:-1] & p[:-2]].mean())


def mean_displacement(seq, raw) -> float:
    """Mean distance (px) between ``seq`` and ``raw`` over present body points."""
    d = np.linalg.norm(seq.keypoints[:, 0, BODY] - raw.keypoints[:, 0, BODY], axis=-1)
    return float(d[raw.present[:, 0, BODY]].mean())


def lag(seq, raw, max_lag: int = MAX_LAG) -> tuple[int, float, float]:
    """(integer lag, sub-frame lag, share of body coordinates whose own lag is the pooled one):
    the shift l minimising mean |seq(t) - raw(t - l)|^2; l > 0: ``seq`` trails ``raw``."""
    s = seq.keypoints[:, 0, BODY].astype(np.float64)
    r = raw.keypoints[:, 0, BODY].astype(np.float64)
    p = raw.present[:, 0, BODY]
    t_len = len(s)
    shifts = np.arange(-max_lag, max_lag + 1)
    per_point = np.empty((len(shifts), s.shape[1] * 2))
    for i, l in enumerate(shifts):
        a, b = slice(max(l, 0), t_len + min(l, 0)), slice(max(-l, 0), t_len - max(l, 0))  # s[a] vs r[b]
        both = (p[a] & p[b])[..., None]
        sq = np.where(both, (s[a] - r[b]) ** 2, 0.0).sum(0).reshape(-1)
        per_point[i] = sq / np.maximum(both.sum(0).repeat(2), 1)
    pooled = per_point.mean(1)
    best = int(np.argmin(pooled))
    frac = 0.0
    if 0 < best < len(shifts) - 1:
        y0, y1, y2 = pooled[best - 1:best + 2]
        frac = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    agree = float((per_point.argmin(0) == best).mean())
    return int(shifts[best]), float(shifts[best] + frac), agree


def jitter(raw, height: float) -> dict:
    from holdpose.refine.smooth import default_window, one_euro, smooth_offline

    raw_accel = mean_acceleration(raw)
    rows = {"raw": {"accel": raw_accel, "accel_ratio": 1.0, "displacement_px": 0.0,
                    "displacement_height": 0.0, "lag_frames": 0, "lag_subframe": 0.0}}
    window = default_window(raw.fps)
    for name, seq, params in (
        ("offline", smooth_offline(raw), {"window": window, "polyorder": 2}),
        ("one_euro", one_euro(raw), {"min_cutoff": 1.0, "beta": 0.007, "d_cutoff": 1.0}),
    ):
        disp = mean_displacement(seq, raw)
        lag_int, lag_sub, agree = lag(seq, raw)
        rows[name] = {"params": params, "accel": mean_acceleration(seq),
                      "accel_ratio": mean_acceleration(seq) / raw_accel, "displacement_px": disp,
                      "displacement_height": disp / height, "lag_frames": lag_int, "lag_subframe": lag_sub,
                      "lag_share_of_coordinates_agreeing": agree}
    return rows


# --- swaps -------------------------------------------------------------------------------

def inject(raw, rng, fraction: float = 0.1):
    """Copy of ``raw`` with arms, legs or the whole body swapped in ``fraction`` of its frames;
    returns it, the frames, their kinds (0 arms, 1 legs, 2 whole body) and bool ``[T, G]`` of
    the groups swapped."""
    from holdpose.refine.swaps import GROUP_NAMES, swap_groups

    pairs = swap_groups(raw.layout)
    t_len = raw.num_frames
    frames = rng.choice(t_len, int(round(fraction * t_len)), replace=False)
    kinds = rng.integers(0, 3, len(frames))
    injected = np.zeros((t_len, len(GROUP_NAMES)), bool)
    injected[frames[kinds == 0], GROUP_NAMES.index("arms")] = True
    injected[frames[kinds == 1], GROUP_NAMES.index("legs")] = True
    injected[frames[kinds == 2]] = True
    perm = np.tile(np.arange(raw.num_keypoints), (t_len, 1))  # [T, K]
    for g, name in enumerate(GROUP_NAMES):
        for i, j in pairs[name]:
            perm[injected[:, g], i], perm[injected[:, g], j] = j, i
    seq = raw.copy()
    seq.keypoints[:, 0] = np.take_along_axis(raw.keypoints[:, 0], perm[..., None], 1)
    seq.scores[:, 0] = np.take_along_axis(raw.scores[:, 0], perm, 1)
    seq.interpolated[:, 0] = np.take_along_axis(raw.interpolated[:, 0], perm, 1)
    return seq, frames, kinds, injected


def swaps(raw, trials: int, seed: int) -> dict:
    from holdpose.refine.swaps import fix_swaps

    _, on_raw = fix_swaps(raw)
    on_raw = on_raw[:, 0]  # what the repair changes on the un-injected track (detector swaps, if any)
    rng = np.random.default_rng(seed)
    events = repaired = new = 0
    by_kind = {k: [0, 0] for k in ("arms", "legs", "whole body")}
    for _ in range(trials):
        seq, frames, kinds, injected = inject(raw, rng)
        _, swapped = fix_swaps(seq)
        swapped = swapped[:, 0]
        expected = injected ^ on_raw
        ok = (swapped[frames] == expected[frames]).all(-1)  # every group of the frame right
        events += len(frames)
        repaired += int(ok.sum())
        new += int((swapped & ~expected)[~injected.any(-1)].sum())  # group swaps in untouched frames
        for k, name in enumerate(by_kind):
            by_kind[name][0] += int(ok[kinds == k].sum())
            by_kind[name][1] += int((kinds == k).sum())
    return {"trials": trials, "fraction": 0.1, "events": events, "repaired": repaired / events,
            "new_swaps": new, "changed_on_raw_group_frames": int(on_raw.sum()),
            "repaired_by_kind": {k: v[0] / max(v[1], 1) for k, v in by_kind.items()}}


# --- speed -------------------------------------------------------------------------------

def speed(raw, frames: int, repeat: int) -> dict:
    """Best-of-``repeat`` wall seconds of each step on ``frames`` frames (the track played
    forwards and backwards in turn, so there are no jumps)."""
    from holdpose.refine.gaps import fill_gaps
    from holdpose.refine.smooth import one_euro, smooth_offline
    from holdpose.refine.swaps import fix_swaps
    from holdpose.refine.timeline import resample
    from holdpose.detect.track import assign_track_ids, slots_by_track

    period = 2 * raw.num_frames
    i = np.arange(frames) % period
    seq = raw[np.where(i < raw.num_frames, i, period - 1 - i)]
    # every step of `holdpose refine --track --fix-swaps --fill --smooth --fps 30`, in its order
    steps = {"track": lambda s: slots_by_track(assign_track_ids(s)), "fix_swaps": lambda s: fix_swaps(s)[0],
             "fill_gaps": fill_gaps, "smooth_offline": smooth_offline, "resample to 30 fps": lambda s: resample(s, 30)}
    best = {}
    for _ in range(repeat):
        current = seq
        for name, step in steps.items():  # the order a pipeline runs them in
            start = time.perf_counter()
            current = step(current)
            best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
    start = time.perf_counter()
    one_euro(seq)
    return {"frames": frames, "keypoints": seq.num_keypoints, "repeat": repeat,
            "seconds": best, "total_seconds": sum(best.values()),
            "one_euro_seconds": time.perf_counter() - start}


# --- report ------------------------------------------------------------------------------



def table(report: dict) -> str:
    j, s, v = report["jitter"], report["swaps"], report["speed"]
    lines = ["| measure | raw | offline (Savitzky-Golay) | One-Euro (causal) | target |",
             "|---|---|---|---|---|"]
    off, euro = j["offline"], j["one_euro"]
    lines.append("| mean acceleration, px/frame² | %.2f | %.2f (%.0f %%) | %.2f (%.0f %%) | offline <= 40 %% of raw |"
                 % (j["raw"]["accel"], off["accel"], 100 * off["accel_ratio"], euro["accel"],
                    100 * euro["accel_ratio"]))
    lines.append("| mean displacement from raw, px (%% of height %.0f px) | 0 | %.2f (%.2f %%) | %.2f (%.2f %%) "
                 "| < 1.5 %% |" % (report["height_px"], off["displacement_px"], 100 * off["displacement_height"],
                                   euro["displacement_px"], 100 * euro["displacement_height"]))
    lines.append("| lag, frames (sub-frame) | 0 | %d (%.2f) | %d (%.2f) | offline 0 |" % (
        j["offline"]["lag_frames"], j["offline"]["lag_subframe"],
        j["one_euro"]["lag_frames"], j["one_euro"]["lag_subframe"]))
    lines += ["", "| swaps injected in 10 % of frames | value | target |", "|---|---|---|",
              "| events (%d trials) | %d | |" % (s["trials"], s["events"]),
              "| repaired | %.1f %% (arms %.1f, legs %.1f, whole body %.1f) | >= 95 %% |" % (
                  100 * s["repaired"], *(100 * x for x in s["repaired_by_kind"].values())),
              "| new swaps introduced | %d | 0 |" % s["new_swaps"],
              "| group-frames changed on the un-injected track | %d | |" % s["changed_on_raw_group_frames"],
              "", "| speed, %d frames x %d keypoints, 1 person | seconds |" % (v["frames"], v["keypoints"]),
              "|---|---|"]
    lines += ["| %s | %.3f |" % (k, t) for k, t in v["seconds"].items()]
    lines.append("| **total (every step)** | **%.3f** |" % v["total_seconds"])
    lines.append("| one_euro (not in the total) | %.3f |" % v["one_euro_seconds"])
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=Path, help="bench on this pose file (.npz / OpenPose .json) instead")
    parser.add_argument("--trials", type=int, default=20, help="swap injections (default 20)")
    parser.add_argument("--frames", type=int, default=10000, help="frames for the speed test (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "refine.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    from holdpose.io.posefile import load_poses

    poses = args.poses
    if poses is None:
        if not (args.fixtures / VIDEO).is_file():
            print(f"SKIP: {args.fixtures / VIDEO} not found (fixtures absent); pass --poses FILE to bench anyway")
            return 0
        poses = DEFAULT_POSES
        if not poses.is_file():
            poses.parent.mkdir(parents=True, exist_ok=True)
            extract_dance(args.fixtures, poses)
    raw = first_person(load_poses(poses))
    height = body_height(raw)

    report = {
        "benchmark": "refine",
        "figure": "Jitter: offline smoothing cuts mean keypoint acceleration to <= 40 % of raw, displacement "
                  "< 1.5 % of body height, lag 0 frames. Swaps: >= 95 % of left/right swaps injected into "
                  "10 % of frames repaired, 0 new. Speed: refining 10 000 frames of one person < 2 s in total.",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "poses": {"file": rel(poses), "frames": raw.num_frames, "people": raw.num_people, "fps": raw.fps,
                  "size": list(raw.size), "body_points_present": float(raw.present[:, 0, BODY].mean())},
        "height_px": height,
        "lag_definition": "shift l in +-10 frames minimising mean |smoothed(t) - raw(t - l)|^2 over present "
                          "body points; l > 0: smoothed trails raw",
        "jitter": jitter(raw, height),
        "swaps": swaps(raw, args.trials, args.seed),
        "speed": speed(raw, args.frames, args.repeat),
        "targets": TARGETS,
    }
    j, s = report["jitter"]["offline"], report["swaps"]
    report["meets_targets"] = {
        "accel": j["accel_ratio"] <= TARGETS["accel_ratio_max"],
        "displacement": j["displacement_height"] < TARGETS["displacement_height_max"],
        "lag": j["lag_frames"] == TARGETS["lag_frames"],
        "repaired": s["repaired"] >= TARGETS["repaired_min"],
        "new_swaps": s["new_swaps"] <= TARGETS["new_swaps_max"],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwrote {rel(args.output)}; targets met: {report['meets_targets']}")
    return 1 if args.check and not all(report["meets_targets"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
