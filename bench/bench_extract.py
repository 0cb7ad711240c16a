"""Benchmark: holdpose extraction throughput and memory.

The figures it checks:

1. Throughput: ``holdpose extract`` on a 512-short-side video, timed as a whole process
   (launch to exit), at least 2.5x the frames per second of the plain loop a tutorial
   writes (bench/baseline_tutorial_extract.py: OpenCV VideoCapture, MediaPipe holistic in
   tracking mode, controlnet_aux 0.0.10's drawing code, one PNG per frame; run in its own
   venv, bench/baseline_venv.sh, created on first use).
2. Memory: the peak resident memory of ``holdpose extract`` on 600 frames within 10% of
   its peak on 150 frames. holdpose extracts in a pool of worker processes, so the peak is
   that of the SUM of VmRSS over the whole process tree (parent and every descendant),
   sampled every ~20 ms from /proc (pages shared between processes count once per
   process, as RSS counts them). The children are the pool's workers (one per core),
   multiprocessing's resource tracker, and a few short-lived gcc/ld runs (sounddevice's
   ctypes.util.find_library, when a worker imports mediapipe) of a few MiB.

Inputs (made once, into bench/out/, from ../shared/fixtures/videos/dance_musepose_dance.mp4
read with FrameSource(short_side=512)): dance_512.mp4 (all 288 frames; both sides of the
throughput test read this same file), and extract_150.mp4 / extract_600.mp4 (the fixture's
frames played forwards and backwards until long enough) for the memory test.

    .venv/bin/python bench/bench_extract.py [--quick] [--skip-baseline] [--repeat 2] [--check]

Prints markdown tables and writes bench/results/extract.json. Without the fixtures it
prints SKIP and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, holdpose_prefix, load, rel, run_process, video_ok  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
OUT = BENCH / "out"
FIXTURES = REPO.parent / "shared" / "fixtures"
VIDEO_NAME = "dance_musepose_dance.mp4"
SHORT_SIDE = 512
MEMORY_FRAMES = (150, 600)
DEFAULT_BASELINE_VENV = Path(os.environ.get("HOLDPOSE_BASELINE_VENV", "/tmp/holdpose-baseline-venv"))
TARGET_SPEEDUP = 2.5
TARGET_MEMORY_RATIO = 1.10
SAMPLE_SECONDS = 0.02


# --- inputs --------------------------------------------------------------------------

def prepare_inputs(fixture: Path) -> dict:
    """Write bench/out/dance_512.mp4 and the memory-test videos, unless already there."""
    from holdpose.io.video import FrameSource, VideoWriter

    source = FrameSource(fixture, short_side=SHORT_SIDE)
    n, size, fps = source.num_frames, source.size, source.fps
    wanted = {"dance_512": (OUT / "dance_512.mp4", n)}
    for count in MEMORY_FRAMES:
        wanted[f"frames_{count}"] = (OUT / f"extract_{count}.mp4", count)
    missing = {key: value for key, value in wanted.items() if not video_ok(value[0], value[1], size)}
    if missing:
        OUT.mkdir(parents=True, exist_ok=True)
        print(f"writing {', '.join(rel(p) for p, _ in missing.values())} from {rel(fixture)} "
              f"at {SHORT_SIDE} short side ...", flush=True)
        frames = list(source)  # 288 frames at 512x910: ~400 MB, only in this process
        n = len(frames)
        period = max(1, 2 * n - 2)  # ping-pong: 0 .. n-1, n-2 .. 1, 0 ..
        for path, count in missing.values():
            with VideoWriter(path, fps=fps, size=size) as writer:
                for t in range(count):
                    k = t % period
                    writer.write(frames[k if k < n else period - k])
        del frames
    return {"size": list(size), "fps": fps, "frames": n,
            "videos": {key: rel(path) for key, (path, _) in wanted.items()}}


# --- running and measuring a process --------------------------------------------------

def _tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc/<pid>/task/*/children."""
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return pids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie (no VmRSS line)


class TreeSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree every SAMPLE_SECONDS until :meth:`finish`."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop_event = threading.Event()
        self.peak_total = self.peak_parent = self.peak_children = 0  # KiB
        self.max_processes = 0
        self.samples = 0
        self.start()

    def run(self) -> None:
        while not self.stop_event.is_set():
            pids = _tree(self.pid)
            rss = [_rss_kib(p) for p in pids]
            self.peak_total = max(self.peak_total, sum(rss))
            self.peak_parent = max(self.peak_parent, rss[0])
            self.peak_children = max(self.peak_children, sum(rss[1:]))
            self.max_processes = max(self.max_processes, sum(1 for r in rss if r))
            self.samples += 1
            self.stop_event.wait(SAMPLE_SECONDS)

    def finish(self) -> dict:
        """Stop sampling; the peaks in MiB."""
        self.stop_event.set()
        self.join()
        mib = 1 / 1024
        return {"peak_rss_mib": self.peak_total * mib, "peak_parent_mib": self.peak_parent * mib,
                "peak_children_mib": self.peak_children * mib, "most_processes_at_once": self.max_processes,
                "samples": self.samples}


def holdpose_cmd(video: Path, poses: Path) -> list[str]:
    # -q (no progress bar) is an option of holdpose itself, so it goes before the command.
    return holdpose_prefix() + ["-q", "extract", rel(video), "-o", rel(poses)]


def baseline_python(venv: Path) -> Path:
    env = dict(os.environ, PYTHON=os.environ.get("BASELINE_PYTHON", "python3"))
    result = subprocess.run(["bash", str(BENCH / "baseline_venv.sh"), str(venv)], env=env,
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"could not set up the baseline venv in {venv} (exit {result.returncode})")
    return Path(result.stdout.strip().splitlines()[-1])


# --- the two figures -------------------------------------------------------------------

def bench_throughput(video: Path, frames: int, repeat: int, baseline_venv: Path | None) -> dict:
    poses = OUT / "dance_poses.json"
    pngs = OUT / "baseline_pose_maps"
    sides = {"holdpose": holdpose_cmd(video, poses)}
    if baseline_venv is not None:
        python = baseline_python(baseline_venv)
        sides["baseline"] = [str(python), rel(BENCH / "baseline_tutorial_extract.py"), rel(video), rel(pngs)]
    runs = {name: [] for name in sides}
    cpu = {name: [] for name in sides}
    loads = {name: [] for name in sides}
    splits = []
    for i in range(repeat):  # interleaved, so both sides see the same drift in machine load
        for name, cmd in sides.items():
            if name == "baseline":
                shutil.rmtree(pngs, ignore_errors=True)  # every run writes fresh files
            print(f"  run {i + 1}/{repeat}: {name} ...", end="", flush=True)
            result = run_process(cmd)
            loads[name].append(load()[0])
            print(f" {result['seconds']:.2f} s (load {loads[name][-1]})", flush=True)
            runs[name].append(result["seconds"])
            cpu[name].append(result["cpu_seconds"])
            if name == "baseline":
                split = json.loads(result["stdout"].strip().splitlines()[-1])
                split["process_seconds"] = result["seconds"]
                splits.append(split)
                if split["frames"] != frames:
                    raise SystemExit(f"baseline read {split['frames']} frames, expected {frames}")
    report = {"frames": frames, "repeat": repeat}
    for name, seconds in runs.items():
        best = seconds.index(min(seconds))
        report[name] = {"command": " ".join(sides[name]), "seconds": seconds, "best": seconds[best],
                        "fps": frames / seconds[best], "cpu_seconds": cpu[name],
                        "cores_busy_in_best": cpu[name][best] / seconds[best], "load_after": loads[name]}
    report["holdpose"]["output"] = rel(poses)
    if "baseline" in runs:
        best = min(splits, key=lambda s: s["process_seconds"])
        report["baseline"].update(output=rel(pngs), split_of_best=best, venv=str(baseline_venv))
        report["speedup"] = report["holdpose"]["fps"] / report["baseline"]["fps"]
        report["meets_target"] = report["speedup"] >= TARGET_SPEEDUP
    return report


def bench_memory(videos: dict[int, Path]) -> dict:
    report = {"sample_seconds": SAMPLE_SECONDS, "runs": {}}
    for count, video in videos.items():
        print(f"  holdpose extract, {count} frames ...", end="", flush=True)
        result = run_process(holdpose_cmd(video, OUT / f"extract_{count}_poses.json"), monitor=TreeSampler)
        result.pop("stdout")
        result["load_after"] = load()[0]
        print(f" peak {result['peak_rss_mib']:.0f} MiB in {result['seconds']:.1f} s (load {result['load_after']})",
              flush=True)
        report["runs"][str(count)] = {"video": rel(video), **result}
    lo, hi = (report["runs"][str(c)]["peak_rss_mib"] for c in MEMORY_FRAMES)
    report["ratio"] = hi / lo
    report["meets_target"] = report["ratio"] <= TARGET_MEMORY_RATIO
    return report


# --- report ----------------------------------------------------------------------------

def print_tables(report: dict) -> None:
    inputs, tp, mem = report["inputs"], report["throughput"], report["memory"]
    w, h = inputs["size"]
    n = tp["frames"]
    print(f"\nExtraction throughput: {n} frames of {VIDEO_NAME} at {w}x{h} ({rel(OUT / 'dance_512.mp4')}), "
          f"whole process from launch to exit, best of {tp['repeat']}\n")
    print("| | seconds | frames/s | CPU s (cores busy) |")
    print("|---|---:|---:|---:|")
    if "baseline" in tp:
        b = tp["baseline"]
        print(f"| baseline: tutorial loop (OpenCV read, MediaPipe holistic tracking, controlnet_aux drawing, "
              f"PNG per frame), 1 process | {b['best']:.2f} | {b['fps']:.1f} | "
              f"{b['cores_busy_in_best'] * b['best']:.1f} ({b['cores_busy_in_best']:.2f}) |")
    hp = tp["holdpose"]
    print(f"| holdpose -q extract (JSON out, {os.cpu_count()} cores) | {hp['best']:.2f} | {hp['fps']:.1f} | "
          f"{hp['cores_busy_in_best'] * hp['best']:.1f} ({hp['cores_busy_in_best']:.2f}) |")
    if "baseline" in tp:
        verdict = "meets" if tp["meets_target"] else "MISSES"
        print(f"| **holdpose / baseline** | | **{tp['speedup']:.2f}x** (target >= {TARGET_SPEEDUP:g}x: {verdict}) | |")
        s = tp["baseline"]["split_of_best"]
        other = tp["baseline"]["best"] - s["imports"] - s["setup"] - s["loop"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in s["loop_split"].items())
        print(f"\nBaseline time split (its best run, seconds): imports {s['imports']:.2f} "
              f"(of which torch {s['imports_torch']:.2f}), Holistic setup {s['setup']:.2f}, "
              f"frame loop {s['loop']:.2f} ({parts}), interpreter start-up and exit {other:.2f}.")
    print(f"\nMemory: holdpose extract, peak of the summed VmRSS over its process tree "
          f"(parent + workers + helpers, sampled every {1000 * SAMPLE_SECONDS:.0f} ms)\n")
    print("| frames | seconds | peak RSS, tree (MiB) | parent peak (MiB) | children peak (MiB) |")
    print("|---:|---:|---:|---:|---:|")
    for count, r in mem["runs"].items():
        print(f"| {count} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {r['peak_parent_mib']:.0f} | "
              f"{r['peak_children_mib']:.0f} |")
    verdict = "meets" if mem["meets_target"] else "MISSES"
    lo, hi = MEMORY_FRAMES
    print(f"| **{hi} / {lo}** | | **{mem['ratio']:.3f}** (target <= {TARGET_MEMORY_RATIO:.2f}: {verdict}) | | |")
    print(f"\nLoad average (1, 5, 15 min) at start {report['load']['start']}, at end {report['load']['end']}.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one throughput run per side (same as --repeat 1)")
    parser.add_argument("--repeat", type=int, default=2, help="throughput runs per side; the best counts")
    parser.add_argument("--skip-baseline", action="store_true", help="time holdpose only (no baseline venv)")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--baseline-venv", type=Path, default=DEFAULT_BASELINE_VENV)
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "extract.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)

    fixture = args.fixtures / "videos" / VIDEO_NAME
    if not fixture.is_file():
        print(f"SKIP: {fixture} not found (video fixtures absent)")
        return 0

    load_start = load()
    inputs = prepare_inputs(fixture)
    print(f"throughput ({inputs['frames']} frames, best of {repeat}):", flush=True)
    throughput = bench_throughput(OUT / "dance_512.mp4", inputs["frames"], repeat,
                                  None if args.skip_baseline else args.baseline_venv)
    print("memory:", flush=True)
    memory = bench_memory({c: OUT / f"extract_{c}.mp4" for c in MEMORY_FRAMES})

    import numpy as np

    report = {
        "benchmark": "extract",
        "figures": {
            "throughput": f"holdpose extract at least {TARGET_SPEEDUP:g}x the frames per second of a tutorial's "
                          "extraction loop, whole process, 512 short side",
            "memory": f"peak RSS (process tree) on {MEMORY_FRAMES[1]} frames within "
                      f"{100 * (TARGET_MEMORY_RATIO - 1):.0f}% of that on {MEMORY_FRAMES[0]} frames",
        },
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "load": {"start": load_start, "end": load()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     **{d: _version(d) for d in ("holdpose", "mediapipe", "opencv-contrib-python", "av")}},
        "fixture": rel(fixture),
        "inputs": inputs,
        "throughput": throughput,
        "memory": memory,
        "targets": {"speedup": TARGET_SPEEDUP, "memory_ratio": TARGET_MEMORY_RATIO},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    print(f"wrote {rel(args.output)}")
    missed = not memory["meets_target"] or not throughput.get("meets_target", True)
    return 1 if args.check and missed else 0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


if __name__ == "__main__":
    sys.exit(main())
