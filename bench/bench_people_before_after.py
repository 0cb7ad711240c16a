"""Benchmark: multi-person extraction before and after a change, on the same frames in turn.

The CPU time a frame costs moves with the load other jobs put on this shared machine (the
same code measured 243 ms a frame at load 5 and 271 at load 8-16), so a saving is measured
against the code it replaces in one process, frame by frame in turn: ``MediaPipeDetector``
of ``src/holdpose/detect/mediapipe.py`` at commit ``--before`` (default: the branch's merge
base with main) beside the working tree's, both ``max_people=4, video=True``, on the first 50
frames of ``bench/out/people_four.mp4`` (4 people) and ``bench/out/people_crossing.mp4``
(2-3 people; both built by ``bench/bench_people.py``, built here if absent).

Reported per clip: CPU ms a frame of each (mean, median) with the load averages, and how
far their keypoints lie apart: mean px distance of body, face and hand points present in
both, and the count of points present in each (hands and face present where they were).

    .venv/bin/python bench/bench_people_before_after.py [--before COMMIT] [--frames 50]

Writes bench/results/people_before_after.json. Skips (exit 0) when ../shared/fixtures is absent.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, git_state, load, rel  # noqa: E402

PARTS = {"body": slice(0, 17), "face": slice(23, 91), "hands": slice(91, 133)}


def module_at(commit: str, directory: Path):
    """``holdpose.detect.mediapipe`` as it was at ``commit``, loaded under another name."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:src/holdpose/detect/mediapipe.py"],
                            capture_output=True, text=True, check=True).stdout
    path = directory / "mediapipe_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("holdpose_mediapipe_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(video: Path, detectors: dict, frames: int) -> dict:
    """CPU per frame of each detector in ``detectors`` (name -> detector, run in turn, the
    first to go alternating) and the distance between the first two's keypoints."""
    from holdpose.io.video import FrameSource

    cpu = {name: [] for name in detectors}
    found = {name: [] for name in detectors}
    for t, frame in enumerate(FrameSource(video, stop=frames)):
        for name in (list(detectors) if t % 2 else list(detectors)[::-1]):
            start = time.process_time()
            found[name].append(detectors[name](frame))
            cpu[name].append(time.process_time() - start)
    before, after = found.values()
    distances = {part: [] for part in PARTS}
    other_count = 0
    for (kp_a, sc_a), (kp_b, sc_b) in zip(before, after):
        if kp_a.shape != kp_b.shape:
            other_count += 1
            continue
        for part, points in PARTS.items():
            both = (sc_a[:, points] > 0) & (sc_b[:, points] > 0)
            distances[part] += np.linalg.norm(kp_a[:, points] - kp_b[:, points], axis=-1)[both].tolist()
    return {
        "cpu_ms_per_frame": {name: {"mean": round(1000 * float(np.mean(v)), 1), "median": round(1000 * float(np.median(v)), 1)}
                             for name, v in cpu.items()},
        "mean_px_between_them": {part: round(float(np.mean(d)), 3) if d else None for part, d in distances.items()},
        "points_present": {name: {part: int(sum((sc[:, points] > 0).sum() for _, sc in v)) for part, points in PARTS.items()}
                           for name, v in found.items()},
        "frames_with_another_number_of_people": other_count,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=None, help="commit of the code compared against (default: merge base with main)")
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args(argv)
    import bench_people

    if not bench_people.FIXTURES.is_dir():
        print(f"skipped: {bench_people.FIXTURES} is absent")
        return 0
    before = args.before or subprocess.run(["git", "-C", str(REPO), "merge-base", "HEAD", "main"],
                                           capture_output=True, text=True, check=True).stdout.strip()
    bench_people.OUT.mkdir(parents=True, exist_ok=True)
    clips = {"four": bench_people.OUT / "people_four.mp4", "crossing": bench_people.OUT / "people_crossing.mp4"}
    if not clips["four"].exists():
        bench_people.build_four(clips["four"])
    if not clips["crossing"].exists():
        bench_people.build_composite(clips["crossing"])

    from holdpose.detect.mediapipe import MediaPipeDetector

    results = {"benchmark": "people_before_after", "commit": git_state(), "before": before[:12],
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "frames": args.frames, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        old = module_at(before, Path(tmp))
        for name, video in clips.items():
            detectors = {f"before ({before[:7]})": old.MediaPipeDetector(max_people=4, video=True),
                         "after": MediaPipeDetector(max_people=4, video=True)}
            load_before = load()
            try:
                row = compare(video, detectors, args.frames)
            finally:
                for detector in detectors.values():
                    detector.close()
            results["clips"][name] = {"input": rel(video), **row, "load_before": load_before, "load_after": load()}
    path = REPO / "bench" / "results" / "people_before_after.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print("| clip | CPU ms/frame before, mean (median) | after | mean px apart: body, face, hands | load before, after |"
          "\n|---|---|---|---|---|")
    for name, r in results["clips"].items():
        (b_name, b), (_, a) = r["cpu_ms_per_frame"].items()
        d = r["mean_px_between_them"]
        print(f"| {name} | {b['mean']} ({b['median']}) | {a['mean']} ({a['median']}) | {d['body']}, {d['face']}, {d['hands']} "
              f"| {r['load_before'][0]}, {r['load_after'][0]} |")
    print(f"wrote {rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
