"""Reliability figures: the pose-file fuzzers (JSON and NPZ) and the signal checks.

    python bench/bench_reliability.py                 # this checkout: 12 000 JSON + 3 000 NPZ cases, signals
    PYTHONPATH=/path/to/other/src python bench/bench_reliability.py --label before --no-signals

The fuzzers live in tests/posefile_fuzz.py (seeded: the same cases every run) and use only
``load_poses``, so the same cases measure any version. Results: bench/results/reliability.json,
one entry per ``--label``. The bad-input battery is tests/test_bad_inputs.py (run by pytest).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, git_state, load  # noqa: E402
from posefile_fuzz import fuzz  # noqa: E402

RESULTS = REPO / "bench" / "results" / "reliability.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after")
    parser.add_argument("--json-cases", type=int, default=12000)
    parser.add_argument("--npz-cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-signals", action="store_true", help="only the fuzzers")
    args = parser.parse_args()

    import holdpose

    entry = {"commit": git_state(), "holdpose": str(Path(holdpose.__file__).parent), "load_before": load()}
    for kind, count in (("json", args.json_cases), ("npz", args.npz_cases)):
        start = time.perf_counter()
        result = fuzz(kind, count, seed=args.seed)
        result["seconds"] = round(time.perf_counter() - start, 1)
        entry[f"fuzz_{kind}"] = result
        print(f"{kind}: {count} cases, {result['non_holdpose_exceptions']} non-holdpose exceptions "
              f"({100 * result['non_holdpose_exceptions'] / count:.2f} %), {result['invalid_accepted']} invalid "
              f"accepted, {result['hangs_over_5s']} hangs, slowest {result['slowest_case_seconds']} s, "
              f"peak RSS {result['peak_rss_mb']} MB, {result['seconds']} s")
        for name, example in result["examples"].items():
            print(f"   {name}: {example}")
    if not args.no_signals:
        from signal_checks import run_signal_checks

        entry["signals"] = run_signal_checks()
        print(json.dumps(entry["signals"], indent=1))
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[args.label] = entry
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{RESULTS}: {args.label}")


if __name__ == "__main__":
    main()
