"""Benchmark: holdpose batch extract on 12 short clips, embedded and on a local Ray cluster, and a fault run.

The figures it checks:

1. ``holdpose batch extract CLIPS/ -o OUT/`` has at least 1.5x the throughput of
   ``holdpose extract CLIP -o OUT/CLIP.json`` once per clip in a shell loop (whole
   processes, launch to exit). Measured beside it: the batch with one clip at a time and
   both cores inside each clip (``--processes 1 --cpus-per-job 2``), to show where the
   parallelism pays.
2. The same batch with ``--ray auto`` on a local Ray cluster (``ray start --head
   --num-cpus 2 --block``, started before and stopped after by this script) has at least
   0.85x the embedded batch's throughput, and writes byte-identical pose files. The
   cluster's workers run at nice 0 (``RAY_worker_niceness=0``; Ray's default is 15, which
   on a machine shared with other people's jobs hands them the CPU; ``--ray-niceness 15``
   measures that).
3. Faults: 12 inputs of which 2 are corrupt (a truncated copy and one with a garbled
   header), on the Ray cluster, with one Ray worker process killed by pid (SIGKILL) while
   it runs a job: 10 jobs done with pose files byte-identical to ``holdpose extract CLIP
   --workers 1`` (one chunk, as each batch job runs), 2 failed with a one-line error,
   0 lost (one record per job); rerunning the same command completes nothing again, and
   ``--retry-failed`` reruns only the 2 failed jobs.

Throughput runs are interleaved (loop, batch, batch one-at-a-time, Ray), ``--repeat``
rounds, best of each counted; the Ray cluster stays up (idle) through all of them.

4. Not a target, for docs/scale.md: the cost per frame of batch animate (warp): the two
   fixture reference photos along the poses of two dance clips, 4 jobs, whole process.
   With ``--overhead`` (alone): a batch's fixed cost, 2 tiny refine jobs embedded against
   ``--ray auto`` on a running cluster, into bench/results/batch_overhead.json.

Inputs (made once into bench/out/batch_clips/ from ../shared/fixtures/videos): 8 clips of
3 s from the dance video (24 fps, 72 frames) and 4 of 2.5 s from the talking head (29.97
fps, 75 frames), re-encoded at 512 px short side.

    .venv/bin/python bench/bench_batch.py [--repeat 2] [--check]

Prints a markdown table and writes bench/results/batch.json. Without the fixtures it prints
SKIP and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, holdpose_prefix, load, rel, run_process, video_ok  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from batch_clips import WorkerKiller, cut_clip, garble_copy, truncate_copy  # noqa: E402  (the tests' helpers)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
CLIPS = OUT / "batch_clips"
FIXTURES = REPO.parent / "shared" / "fixtures"
DANCE, TALK = "dance_musepose_dance.mp4", "talk_animateanyone_talkinghead_3.mp4"
CUTS = [(DANCE, 1.25 * i, 3.0) for i in range(8)] + [(TALK, 0.7 * i, 2.5) for i in range(4)]
SHORT_SIDE = 512
REFERENCES = ("ref_animateanyone_anyone-11.png", "ref_animateanyone_anyone-3.png")
TARGET_LOOP, TARGET_RAY = 1.5, 0.85


def prepare_clips(fixtures: Path) -> list[Path]:
    from holdpose.io.video import FrameSource

    CLIPS.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, (name, start, seconds) in enumerate(CUTS):
        clip = CLIPS / f"clip_{i:02d}.mp4"
        source = FrameSource(fixtures / "videos" / name, short_side=SHORT_SIDE)
        if not video_ok(clip, int(round(seconds * source.fps)), source.size):
            cut_clip(fixtures / "videos" / name, clip, start, seconds, short_side=SHORT_SIDE)
        clips.append(clip)
    return clips


# --- the Ray cluster --------------------------------------------------------------------


class LocalCluster:
    """``ray start --head --block`` in a child process; SIGTERM to it stops every Ray process it started."""

    def __init__(self, niceness: int = 0):
        self.niceness = niceness

    def __enter__(self):
        ray = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--num-cpus", str(os.cpu_count()),
               "--include-dashboard=false", "--disable-usage-stats", "--block"]
        self.log = tempfile.TemporaryFile()
        # Ray runs its workers at nice 15 by default; on this machine, shared with other people's
        # jobs at nice 0, that would measure how much CPU they leave over, not Ray.
        env = dict(os.environ, RAY_worker_niceness=str(self.niceness))
        self.proc = subprocess.Popen(ray, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.address_file = address_file = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"ray start failed:\n{self.log.read().decode()[-3000:]}")
            if address_file.is_file() and _answers(address_file.read_text().strip()):
                time.sleep(2)  # the raylet registers after the GCS answers
                return self
            time.sleep(0.5)
        raise SystemExit("ray start did not come up in 120 s")

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        # ray start leaves its address behind, and a later `ray.init()` or `--ray auto` would look for it
        self.address_file.unlink(missing_ok=True)
        return False


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except (OSError, ValueError):
        return False


# --- runs ---------------------------------------------------------------------------------


def shell_loop(clips: list[Path], out: Path) -> dict:
    fresh(out)
    exe = " ".join(holdpose_prefix())
    script = f'for f in "$@"; do {exe} -q extract "$f" -o "{out}/$(basename "$f" .mp4).json" || exit 1; done'
    return run_process(["bash", "-c", script, "loop", *map(str, clips)])


def batch(inputs: Path, out: Path, *extra: str) -> dict:
    return batch_stage("extract", [inputs], out, *extra)


def batch_stage(stage: str, inputs: list[Path], out: Path, *extra: str) -> dict:
    fresh(out)
    result = run_process([*holdpose_prefix(), "-q", "batch", stage, *map(str, inputs), "-o", str(out), *extra])
    result["records"] = manifest(out)
    return result


def fresh(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)


def manifest(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def same_files(a: Path, b: Path, names: list[str]) -> list[str]:
    """Names whose bytes differ between folders ``a`` and ``b``."""
    return [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]


def bench_throughput(clips: list[Path], repeat: int) -> dict:
    names = [c.stem + ".json" for c in clips]
    sides = {
        "loop": lambda: shell_loop(clips, OUT / "batch_loop"),
        "batch": lambda: batch(CLIPS, OUT / "batch_embedded"),
        "batch_serial": lambda: batch(CLIPS, OUT / "batch_serial", "--processes", "1", "--cpus-per-job", "2"),
        "ray": lambda: batch(CLIPS, OUT / "batch_ray", "--ray", "auto"),
    }
    runs = {name: [] for name in sides}
    cpu = {name: [] for name in sides}  # CPU seconds of the process tree (not Ray's workers, which raylet starts)
    for round_ in range(repeat):
        for name, run in sides.items():
            result = run()
            runs[name].append(round(result["seconds"], 2))
            cpu[name].append(round(result["cpu_seconds"], 2))
            print(f"  round {round_ + 1} {name}: {result['seconds']:.1f} s", flush=True)
    frames = sum(r["frames"] for r in manifest(OUT / "batch_embedded"))
    best = {name: min(v) for name, v in runs.items()}
    differ = same_files(OUT / "batch_embedded", OUT / "batch_ray", names)
    job_seconds = [r["seconds"] for r in manifest(OUT / "batch_embedded")]
    return {
        "clips": len(clips), "frames": frames, "runs_seconds": runs, "best_seconds": best,
        "frames_per_second": {name: round(frames / s, 2) for name, s in best.items()},
        "speedup_vs_loop": round(best["loop"] / best["batch"], 3),
        "serial_speedup_vs_loop": round(best["loop"] / best["batch_serial"], 3),
        "ray_vs_embedded": round(best["batch"] / best["ray"], 3),
        # the same, round by round: each pair ran back to back, under the same load
        "ray_vs_embedded_by_round": [round(e / r, 3) for e, r in zip(runs["batch"], runs["ray"])],
        "speedup_vs_loop_by_round": [round(lo / e, 3) for lo, e in zip(runs["loop"], runs["batch"])],
        "ray_outputs_identical": not differ, "ray_outputs_differing": differ,
        "cpu_seconds": cpu,
        "cpu_seconds_per_frame": round(min(cpu["batch"]) / frames, 4),
        "loop_cpu_seconds_per_frame": round(min(cpu["loop"]) / frames, 4),
        "job_seconds": {"min": min(job_seconds), "max": max(job_seconds), "sum": round(sum(job_seconds), 2)},
    }


def bench_faults(clips: list[Path]) -> dict:
    faults = OUT / "batch_fault_inputs"
    fresh(faults)
    good = clips[:10]
    for clip in good:
        shutil.copyfile(clip, faults / clip.name)
    truncate_copy(clips[10], faults / "corrupt_truncated.mp4")
    garble_copy(clips[11], faults / "corrupt_garbled.mp4")
    out = OUT / "batch_fault"
    fresh(out)
    command = [*holdpose_prefix(), "-q", "batch", "extract", str(faults), "-o", str(out), "--ray", "auto"]
    killer = WorkerKiller(after=3.0)
    killer.start()
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    killer.join()
    records = manifest(out)
    jobs = [r["job"] for r in records]
    done = sorted(r["job"] for r in records if r["status"] == "done")
    failed = {r["job"]: r["error"] for r in records if r["status"] == "failed"}

    singles = OUT / "batch_fault_single"
    fresh(singles)
    for clip in good:
        run_process([*holdpose_prefix(), "-q", "extract", str(clip), "-o", str(singles / f"{clip.stem}.json"),
                     "--workers", "1"])
    differ = same_files(out, singles, [c.stem + ".json" for c in good])

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    after_rerun = manifest(out)
    retried = subprocess.run(command + ["--retry-failed"], cwd=REPO, capture_output=True, text=True)
    after_retry = manifest(out)
    return {
        "inputs": 12, "killed_worker_pid": killer.killed, "killed_after_seconds": killer.at,
        "killed_pid_in_records": killer.killed in {r.get("pid") for r in records},
        "exit_code": first.returncode, "stderr_last_line": first.stderr.strip().splitlines()[-1:],
        "done": len(done), "failed": failed, "records": len(records), "lost": 12 - len(set(jobs)),
        "recorded_twice": len(jobs) - len(set(jobs)),
        "errors_one_line": all("\n" not in e for e in failed.values()),
        "done_identical_to_single_commands": not differ, "differing": differ,
        "rerun": {"exit_code": again.returncode, "new_records": len(after_rerun) - len(records),
                  "summary": again.stdout.strip()},
        "retry_failed": {"exit_code": retried.returncode,
                         "new_records": sorted(r["job"] for r in after_retry[len(after_rerun):]),
                         "summary": retried.stdout.strip()},
    }


def bench_animate_cost() -> dict:
    """Per-frame cost of batch animate (warp) in the same setting: 2 references x 2 motions
    (the poses batch extract found in two dance clips), whole process."""
    motions = [OUT / "batch_embedded" / name for name in ("clip_00.json", "clip_04.json")]
    references = [FIXTURES / "reference" / name for name in REFERENCES]
    out = OUT / "batch_animate"
    result = batch_stage("animate", motions, out, *[f"--reference={r}" for r in references])
    records = result["records"]
    frames = sum(r["frames"] for r in records)
    return {"jobs": len(records), "frames": frames, "seconds": round(result["seconds"], 2),
            "cpu_seconds": round(result["cpu_seconds"], 2), "done": sum(r["status"] == "done" for r in records),
            "cpu_seconds_per_frame": round(result["cpu_seconds"] / frames, 4),
            "job_seconds": [r["seconds"] for r in records]}


def bench_overhead(rounds: int = 3) -> dict:
    """Fixed cost of a batch, embedded against --ray auto on the running cluster: 2 refine
    jobs of 5 frames each (milliseconds of work), whole process, interleaved."""
    from holdpose.io.posefile import save_poses
    from conftest import random_sequence

    inputs = OUT / "batch_overhead_inputs"
    fresh(inputs)
    for i in range(2):
        save_poses(random_sequence(num_frames=5, num_people=1, seed=i), inputs / f"m{i}.json")
    seconds = {"embedded": [], "ray": []}
    for _ in range(rounds):
        seconds["embedded"].append(round(batch_stage("refine", [inputs], OUT / "batch_overhead_e")["seconds"], 2))
        seconds["ray"].append(round(batch_stage("refine", [inputs], OUT / "batch_overhead_r", "--ray",
                                                "auto")["seconds"], 2))
    return {"seconds": seconds, "load": load()}


def print_table(report: dict) -> None:
    t, f = report["throughput"], report["faults"]
    b = t["best_seconds"]
    print("\n| figure | target | measured |\n|---|---|---|")
    print(f"| batch extract vs shell loop, {t['clips']} clips ({t['frames']} frames) | >= {TARGET_LOOP}x | "
          f"{b['batch']:.1f} s vs {b['loop']:.1f} s = **{t['speedup_vs_loop']:.2f}x** (one clip at a time, 2 workers "
          f"inside: {b['batch_serial']:.1f} s = {t['serial_speedup_vs_loop']:.2f}x) |")
    rounds = ", ".join(f"{r:.2f}x" for r in t["ray_vs_embedded_by_round"])
    print(f"| --ray auto vs embedded | >= {TARGET_RAY}x, identical | {b['ray']:.1f} s vs {b['batch']:.1f} s = "
          f"**{t['ray_vs_embedded']:.2f}x** best vs best (round by round: {rounds}), outputs identical: "
          f"{t['ray_outputs_identical']} |")
    print(f"| faults: 2 corrupt of 12, a Ray worker killed (pid {f['killed_worker_pid']}) | 10 done, 2 failed, 0 lost | "
          f"**{f['done']} done** (identical to single commands: {f['done_identical_to_single_commands']}), "
          f"**{len(f['failed'])} failed**, **{f['lost']} lost**, {f['recorded_twice']} twice; rerun: "
          f"{f['rerun']['new_records']} new records; --retry-failed: {f['retry_failed']['new_records']} |")
    a = report["animate_cost"]
    print(f"\ncosts: extraction {t['cpu_seconds_per_frame'] * 1000:.0f} CPU-ms a frame (batch, {t['frames']} frames; "
          f"shell loop {t['loop_cpu_seconds_per_frame'] * 1000:.0f}); warp animation "
          f"{a['cpu_seconds_per_frame'] * 1000:.0f} CPU-ms a frame ({a['jobs']} jobs, {a['frames']} frames, rig and "
          "encoding included)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="interleaved throughput rounds; the best counts")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "batch.json")
    parser.add_argument("--ray-niceness", type=int, default=0, help="nice value of Ray's workers (Ray's default "
                        "is 15; 0 gives them the share the embedded pool's processes get on a shared machine)")
    parser.add_argument("--overhead", action="store_true", help="only measure a batch's fixed cost, embedded and "
                        "on Ray (2 tiny jobs), into bench/results/batch_overhead.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not (args.fixtures / "videos" / DANCE).is_file():
        print(f"SKIP: {args.fixtures / 'videos'} not found (video fixtures absent)")
        return 0

    if args.overhead:
        with LocalCluster(niceness=args.ray_niceness):
            overhead = bench_overhead()
        path = args.output.with_name("batch_overhead.json")
        path.write_text(json.dumps({"benchmark": "batch overhead", "git": git_state(), **overhead}, indent=2) + "\n")
        print(json.dumps(overhead))
        return 0
    load_start = load()
    clips = prepare_clips(args.fixtures)
    with LocalCluster(niceness=args.ray_niceness):
        print(f"throughput ({len(clips)} clips, {args.repeat} interleaved rounds):", flush=True)
        throughput = bench_throughput(clips, max(1, args.repeat))
        print("faults:", flush=True)
        faults = bench_faults(clips)
    print("animate cost:", flush=True)
    animate_cost = bench_animate_cost()

    from importlib import metadata

    report = {
        "benchmark": "batch",
        "figures": {
            "loop": f"holdpose batch extract at least {TARGET_LOOP}x the throughput of holdpose extract per clip in a "
                    "shell loop",
            "ray": f"--ray auto at least {TARGET_RAY}x the embedded batch's throughput, identical outputs",
            "faults": "2 corrupt inputs of 12 and a killed Ray worker: 10 done (identical to single commands), "
                      "2 failed, 0 lost; a rerun completes nothing twice",
        },
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load": {"start": load_start, "end": load()},
        "versions": {"python": platform.python_version(),
                     **{d: metadata.version(d) for d in ("holdpose", "mediapipe", "ray", "av")}},
        "ray_worker_niceness": args.ray_niceness,
        "inputs": {"clips": [rel(c) for c in clips], "cuts": CUTS, "short_side": SHORT_SIDE},
        "throughput": throughput,
        "faults": faults,
        "animate_cost": animate_cost,
    }
    met = (throughput["speedup_vs_loop"] >= TARGET_LOOP and throughput["ray_vs_embedded"] >= TARGET_RAY
           and throughput["ray_outputs_identical"] and faults["done"] == 10 and len(faults["failed"]) == 2
           and faults["lost"] == 0 and faults["recorded_twice"] == 0 and faults["rerun"]["new_records"] == 0
           and faults["done_identical_to_single_commands"] and faults["killed_worker_pid"] is not None)
    report["meets_targets"] = met
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {rel(args.output)}")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
