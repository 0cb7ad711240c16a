"""DisPose's Table 1 (TikTok) beside what your own outputs measure.

    # a GPU user: animate each test video's poses with --backend animatediff and --backend dispose, then
    PYTHONPATH=src python bench/bench_dispose_protocol.py --outputs out_dispose/ --ground-truth tiktok_test/ \\
        --label "+ DisPose, --motion-field rig" --clip-model clip-vit-base-patch32/ --dino-model dino-vitb16/ \\
        --videomae-model videomae-base/ --fid64

``--outputs`` and ``--ground-truth`` are folders of videos paired by file stem (``001.mp4`` in both). Each
pair is scored by :func:`holdpose.evaluate.video_metrics.video_metrics` (VBench subject and background
consistency with the networks given, FID with 64-d features, CD-FVD) and VBench temporal flickering
(:func:`holdpose.evaluate.temporal.temporal_flickering`), averaged over the videos, and printed as a row
under the paper's. A metric whose network is not given prints "-" and the reason; motion smoothness,
dynamic degree, imaging quality and FID-FVD/FVD need networks holdpose does not load (AMT, RAFT, MUSIQ,
I3D) and print "-" always. Writes bench/results/dispose_protocol.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from _common import git_state, load  # noqa: E402

# DisPose (ICLR 2025) Table 1, TikTok, VBench scores in percent (see docs/dispose.md)
COLUMNS = ["flicker", "subject", "background", "smooth", "dynamic", "imaging", "FID-FVD", "FVD", "CD-FVD"]
PAPER = {
    "MimicMotion (paper)": [97.56, 94.95, 95.36, 98.67, 28.42, 68.42, 10.50, 598.41, 621.90],
    "MimicMotion+DisPose (paper)": [97.73, 95.72, 95.90, 98.89, 29.51, 71.33, 10.24, 466.93, 603.27],
}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm"}


def paired_videos(outputs: Path, ground_truth: Path) -> list[tuple[Path, Path]]:
    truth = {p.stem: p for p in ground_truth.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES}
    pairs = [(p, truth[p.stem]) for p in sorted(outputs.iterdir())
             if p.suffix.lower() in VIDEO_SUFFIXES and p.stem in truth]
    if not pairs:
        raise SystemExit(f"no videos in {outputs} have a namesake in {ground_truth}")
    return pairs


def read_frames(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """All frames ``uint8 [N, H, W, 3]``, resized to ``size`` (width, height) when given."""
    import cv2

    from holdpose.io.video import FrameSource

    frames = [f if size is None else cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in FrameSource(path)]
    return np.stack(frames)


def score_pair(output: Path, truth: Path, args) -> dict:
    from holdpose.evaluate.temporal import temporal_flickering
    from holdpose.evaluate.video_metrics import video_metrics

    frames = read_frames(output)
    reference = read_frames(truth, size=(frames.shape[2], frames.shape[1]))[: len(frames)]
    metrics = video_metrics(frames, reference_frames=reference, clip_model=args.clip_model,
                            dino_model=args.dino_model, videomae_model=args.videomae_model,
                            inception64=True if args.fid64 else None)
    return {"flicker": 100 * temporal_flickering(frames).score,
            "subject": None if metrics["subject_consistency"] is None else 100 * metrics["subject_consistency"],
            "background": (None if metrics["background_consistency"] is None
                           else 100 * metrics["background_consistency"]),
            "fid64": metrics["fid64"], "CD-FVD": metrics["cd_fvd"], "skipped": metrics["skipped"]}


def mean_row(scores: list[dict]) -> list[float | None]:
    def mean(name):
        values = [s[name] for s in scores if s.get(name) is not None]
        return float(np.mean(values)) if values else None

    # FID-FVD in the paper is FID over frames with VBench's features; the 64-d FID is printed beside it
    return [mean("flicker"), mean("subject"), mean("background"), None, None, None, None, None, mean("CD-FVD")]


def print_table(rows: dict[str, list], fid64: float | None) -> None:
    print("| method | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, values in rows.items():
        cells = ["-" if v is None else f"{v:.2f}" for v in values]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if fid64 is not None:
        print(f"FID with 64-d Inception features (not the paper's FID-FVD): {fid64:.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", type=Path, required=True, help="folder of generated videos")
    parser.add_argument("--ground-truth", type=Path, required=True, help="folder of the real videos (same stems)")
    parser.add_argument("--label", default="yours", help="the row's name")
    parser.add_argument("--clip-model", help="CLIP model folder (background consistency)")
    parser.add_argument("--dino-model", help="DINO model folder (subject consistency)")
    parser.add_argument("--videomae-model", help="VideoMAE model folder (CD-FVD)")
    parser.add_argument("--fid64", action="store_true", help="FID with 64-d Inception features")
    args = parser.parse_args(argv)

    scores = []
    for output, truth in paired_videos(args.outputs, args.ground_truth):
        scores.append(score_pair(output, truth, args))
        print(f"{output.name}: flicker {scores[-1]['flicker']:.2f}", flush=True)
    fid64 = [s["fid64"] for s in scores if s["fid64"] is not None]
    rows = {**PAPER, args.label: mean_row(scores)}
    print_table(rows, float(np.mean(fid64)) if fid64 else None)
    for name, why in sorted({k: v for s in scores for k, v in s["skipped"].items()}.items()):
        print(f"- {name}: {why}")
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "dispose_protocol.json").write_text(json.dumps(
        {"benchmark": "dispose protocol", "git": git_state(), "load": load(), "columns": COLUMNS, "rows": rows,
         "fid64": float(np.mean(fid64)) if fid64 else None, "videos": len(scores)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
