"""PoseCrafter's TikTok / TED evaluation protocol on a folder of videos, with the paper's Table beside ours.

    # a GPU user, real weights (SD 1.5 + OpenPose ControlNet), the 10 DisCo TikTok test videos in data/:
    PYTHONPATH=src python bench/bench_posecrafter_protocol.py --data data/ --protocol tiktok --frames 8 \\
        --lpips --fid-features inception --fvd-model i3d_torchscript.pt --clip-model clip-vit-base-patch32/
    # this CPU, tiny random models, the fixture dance clip (checks the pipeline, not the quality):
    PYTHONPATH=src python bench/bench_posecrafter_protocol.py --data ../shared/fixtures/videos --tiny \\
        --only dance_musepose_dance.mp4 --targets 8 --steps 40 --resolution 64

Per video (paper §5.1; SEED_MODULES §2, GPU only):

- **TikTok**: the last ``--targets`` (100) frames are the targets; ``--frames`` N training frames are
  spread over the frames before them.
- **TED**: N training frames spread over frames 0-35; ``--targets`` frames from frame 46 are the targets.

The video's poses are extracted and refined once (MediaPipe, or ``--detector dwpose``); the training
part becomes a clip that ``tune`` reads, the target frames the ground truth. The targets' own poses
drive ``animate --backend posecrafter`` (as in the paper, not re-aligned), and ``holdpose evaluate``
scores the result against the ground truth: SSIM, PSNR, LPIPS, MSE-P (normalised), FID, CLIP-I,
FVD, CLIP-T (between frames) as far as the weights given allow. Also recorded: the held-out
ε-loss before and after tuning, and the frames written.

Writes bench/results/posecrafter_protocol.json (``--tiny``: posecrafter_protocol_tiny.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))
from _common import git_state, load  # noqa: E402

# SEED_MODULES §2 "Headline numbers" (the paper's Tables 1-2, N = 8 training frames)
PAPER = {
    "tiktok": {"ssim": .765, "psnr": 17.36, "lpips": .275, "mse_p_norm": 5.76e-3, "fid": 48.09, "clip_i": .840,
               "fvd": 440.49, "clip_temporal": .921},
    "ted": {"ssim": .810, "psnr": 23.92, "lpips": .142, "mse_p_norm": 1.56e-3, "fid": 20.40, "clip_i": .906,
            "fvd": 80.01, "clip_temporal": .954},
}
METRICS = list(PAPER["tiktok"])
TED_TRAIN_STOP, TED_TARGET_START = 36, 46


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def split(protocol: str, num_frames: int, targets: int) -> tuple[range, range]:
    """``(training frames, target frames)`` of a video under the protocol."""
    if protocol == "ted":
        train, target = range(0, min(TED_TRAIN_STOP, num_frames)), range(TED_TARGET_START, TED_TARGET_START + targets)
    else:
        train, target = range(0, num_frames - targets), range(num_frames - targets, num_frames)
    if target.stop > num_frames or len(train) < 1:
        raise SystemExit(f"a video of {num_frames} frames is too short for the {protocol} protocol with "
                         f"{targets} targets")
    return train, target


def video_poses(video: Path, cache: Path, detector: str):
    from holdpose.io.posefile import load_poses, save_poses

    if cache.is_file():
        return load_poses(cache)
    from holdpose.detect.extract import extract_poses
    from holdpose.refine.pipeline import refine

    seq = refine(extract_poses(video, detector=detector, max_people=1, progress=False), fill=True, smooth="offline")
    save_poses(seq, cache)
    return seq


def write_frames(video: Path, frames: range, path: Path) -> None:
    """Frames ``frames`` of ``video`` as a video at ``path`` (same size and fps)."""
    from holdpose.io.video import FrameSource, open_writer

    source = FrameSource(video, start=frames.start, stop=frames.stop)
    with open_writer(path, fps=source.fps, size=source.size) as writer:
        for frame in source:
            writer.write(frame)


def run_video(video: Path, out: Path, args, models: dict) -> dict:
    from holdpose.animate import animate
    from holdpose.animate.diffusion.posecrafter.tuning import tune
    from holdpose.evaluate.run import evaluate_video
    from holdpose.io.posefile import save_poses
    from holdpose.io.video import FrameSource

    out.mkdir(parents=True, exist_ok=True)
    seq = video_poses(video, out / "poses.npz", args.detector)
    total = min(seq.num_frames, FrameSource(video).num_frames)
    train, target = split(args.protocol, total, args.targets)
    if not (out / "train.mp4").is_file():
        write_frames(video, train, out / "train.mp4")
        write_frames(video, target, out / "ground_truth.mp4")
        save_poses(seq[train.start:train.stop], out / "train.poses.npz")
    started = time.perf_counter()
    tuned = tune(out / "train.mp4", out / "tuned", frames=args.frames, steps=args.steps, poses=out / "train.poses.npz",
                 model=models["model"], controlnet=models["controlnet"], resolution=args.resolution,
                 device=args.device, mixed_precision=args.mixed_precision, progress=False)
    tune_seconds = time.perf_counter() - started
    size = tuple(json.loads((out / "tuned" / "posecrafter.json").read_text())["size"])
    targets = seq[target.start:target.stop].scaled_to(size)
    started = time.perf_counter()
    result = animate(out / "tuned", targets, out / "posecrafter.mp4", backend="posecrafter", align=False,
                     num_inference_steps=args.sampling_steps, device=args.device, progress=False)
    generate_seconds = time.perf_counter() - started
    evaluation = evaluate_video(result.video_path, target=result.poses_path, ground_truth=out / "ground_truth.mp4",
                                detector=None if args.detector_eval == "none" else args.detector_eval,
                                lpips=args.lpips, fid_features=args.fid_features, fvd_model=args.fvd_model,
                                clip_model=args.clip_model, progress=False)
    return {"video": video.name, "training_range": [train.start, train.stop], "targets": len(target),
            "tune_steps": tuned.steps, "trainable_parameters": tuned.trainable_parameters,
            "held_out_loss": [tuned.eval_losses[0][1], tuned.eval_losses[-1][1]] if tuned.eval_losses else None,
            "frames_written": result.num_frames, "tune_seconds": tune_seconds, "generate_seconds": generate_seconds,
            "metrics": {m: evaluation.metrics.get(m) for m in METRICS}}


def mean_of(values: list) -> float | None:
    """Mean of the values measured (None: measured for no video, e.g. without its weights)."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder of videos (.mp4)")
    parser.add_argument("--only", nargs="+", help="these file names of --data only")
    parser.add_argument("--protocol", choices=["tiktok", "ted"], default="tiktok")
    parser.add_argument("--frames", type=int, default=8, help="training frames N (8, 16, 32 in the paper)")
    parser.add_argument("--targets", type=int, default=100, help="target frames (the paper's 100)")
    parser.add_argument("--steps", type=int, help="tuning steps (default: the paper's rule, 100 for 8 frames)")
    parser.add_argument("--sampling-steps", type=int, default=50)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--model", default=None, help="SD 1.5 model (default the backend's)")
    parser.add_argument("--controlnet", default=None, help="OpenPose ControlNet (default the backend's)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models (a CPU check of the pipeline)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    parser.add_argument("--detector", default="mediapipe", help="pose detector for the videos")
    parser.add_argument("--detector-eval", default="auto", help="detector of holdpose evaluate (none: skip MSE-P)")
    parser.add_argument("--lpips", action="store_true")
    parser.add_argument("--fid-features")
    parser.add_argument("--fvd-model")
    parser.add_argument("--clip-model")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "posecrafter-protocol")
    args = parser.parse_args()

    from holdpose.animate.diffusion.loading import DEFAULT_CONTROLNET, DEFAULT_MODEL

    models = {"model": args.model or DEFAULT_MODEL, "controlnet": args.controlnet or DEFAULT_CONTROLNET}
    if args.tiny:
        from diffusion_fixtures import build_tiny_models, single_torch_thread

        tiny = build_tiny_models(args.out / "tiny-models")
        models = {k: str(tiny[k]) for k in ("model", "controlnet")}
        args.device = args.device or "cpu"
        threads = single_torch_thread()
    else:
        import contextlib

        threads = contextlib.nullcontext()
    videos = sorted(p for p in Path(args.data).glob("*.mp4") if not args.only or p.name in args.only)
    results = {"git": git_state(), "load_before": load(), "protocol": args.protocol, "frames": args.frames,
               "tiny": args.tiny, "models": models, "videos": []}
    with threads:
        for video in videos:
            log(f"{video.name}: {args.protocol} protocol")
            results["videos"].append(run_video(video, args.out / f"{args.protocol}-{video.stem}", args, models))
    results["load_after"] = load()
    ours = {m: mean_of([v["metrics"][m] for v in results["videos"]]) for m in METRICS}
    results["mean"] = ours
    name = "posecrafter_protocol_tiny.json" if args.tiny else "posecrafter_protocol.json"
    path = REPO / "bench" / "results" / name
    path.write_text(json.dumps(results, indent=1))
    print(f"{'metric':<14}{'paper (' + args.protocol + ', N=8)':>22}{'ours':>12}")
    for m in METRICS:
        print(f"{m:<14}{PAPER[args.protocol][m]:>22g}{'–' if ours[m] is None else format(ours[m], '.4g'):>12}")
    for v in results["videos"]:
        loss = v["held_out_loss"]
        print(f"{v['video']}: {v['frames_written']} frames written; held-out loss "
              f"{loss[0]:.4f} -> {loss[1]:.4f}; tune {v['tune_seconds']:.0f} s, generate {v['generate_seconds']:.0f} s"
              if loss else f"{v['video']}: {v['frames_written']} frames written")
    print(f"written {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
