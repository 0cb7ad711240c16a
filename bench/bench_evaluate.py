"""Benchmark: holdpose evaluate, its agreement with independent implementations and its cost.

The figures it checks:

1. Agreement, to 1e-4, on the fixtures:
   - SSIM and PSNR (``holdpose.evaluate.fidelity``) against scikit-image's
     ``structural_similarity(channel_axis=-1, data_range=255)`` and
     ``peak_signal_noise_ratio(data_range=255)``: on pairs of real frames from the three
     fixture videos (consecutive frames, and a frame against a degraded copy), and on the
     per-frame SSIM and PSNR that ``holdpose evaluate`` itself wrote for the benchmark
     video below (its first frames, recomputed with scikit-image from the decoded videos).
   - COCO OKS AP and AR (``holdpose.evaluate.keypoints.coco_keypoint_ap``) against
     pycocotools' ``COCOeval(iouType="keypoints")`` (stats[0] and stats[5]): the detector
     evaluation of the COCO fixture images (top-down and bottom-up predictions of
     ``evaluate_detector``), and the pose-adherence AP of the benchmark video (poses
     extracted from the output video, and a perturbed copy of them with noise, dropped
     points and false people, scored against the target, both as ``score_adherence``
     builds them: body box areas, points with score <= 0.3 missing).
2. Cost: ``holdpose evaluate OUTPUT --target poses.json -o report/`` (re-detection,
   adherence, flicker, warping error, jitter, the HTML report) on a 300-frame 512x512
   video takes at most 1.3x the time of ``holdpose extract OUTPUT`` (whole processes,
   launch to exit, best of ``--repeat`` interleaved runs). Measured too, and reported
   beside it: the same with ``--ground-truth gt.mp4``, which adds decoding a second video
   and SSIM/PSNR/L1 on every frame.

Inputs (made once into bench/out/ from ../shared/fixtures/videos/dance_musepose_dance.mp4):
``evaluate_gt_512.mp4``, the fixture at 512 px height centred on a 512x512 black canvas,
its 288 frames played forwards then backwards up to 300; ``evaluate_out_512.mp4``, the
same frames slightly blurred (Gaussian, sigma 1) with every other frame 6 grey levels
brighter (a stand-in for a generated video); ``evaluate_target.json``, the poses
``holdpose extract`` finds in the ground truth.

    .venv/bin/python bench/bench_evaluate.py [--repeat 2] [--check]

Prints markdown tables and writes bench/results/evaluate.json. Without the fixtures it
prints SKIP and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, holdpose_prefix, load, rel, run_process, video_ok  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from coco_reference import pycocotools_stats  # noqa: E402  (the tests' pycocotools wrapper)

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
OUT = BENCH / "out"
FIXTURES = REPO.parent / "shared" / "fixtures"
VIDEO_NAME = "dance_musepose_dance.mp4"
SIDE = 512
FRAMES = 300
TOLERANCE = 1e-4
TARGET_RATIO = 1.30
SSIM_CHECK_FRAMES = 12


# --- inputs --------------------------------------------------------------------------------


def _square(frame: np.ndarray) -> np.ndarray:
    """The frame scaled to 512 px height, centred on a 512x512 black canvas."""
    import cv2

    h, w = frame.shape[:2]
    width = max(2, int(round(w * SIDE / h / 2)) * 2)
    scaled = cv2.resize(frame, (width, SIDE), interpolation=cv2.INTER_AREA)
    if width >= SIDE:  # wider than square: keep the middle
        x0 = (width - SIDE) // 2
        return np.ascontiguousarray(scaled[:, x0:x0 + SIDE])
    canvas = np.zeros((SIDE, SIDE, 3), np.uint8)
    x0 = (SIDE - width) // 2
    canvas[:, x0:x0 + width] = scaled
    return canvas


def degrade(frame: np.ndarray, t: int) -> np.ndarray:
    import cv2

    out = cv2.GaussianBlur(frame, (0, 0), 1.0)
    if t % 2:
        out = cv2.add(out, np.full_like(out, 6))
    return out


def prepare_inputs(fixture: Path) -> dict:
    from holdpose.io.video import FrameSource, VideoWriter

    gt, out = OUT / "evaluate_gt_512.mp4", OUT / "evaluate_out_512.mp4"
    source = FrameSource(fixture)
    if not (video_ok(gt, FRAMES, (SIDE, SIDE)) and video_ok(out, FRAMES, (SIDE, SIDE))):
        OUT.mkdir(parents=True, exist_ok=True)
        print(f"writing {rel(gt)} and {rel(out)} from {rel(fixture)} ...", flush=True)
        frames = [_square(f) for f in source]  # 288 x 512 x 512 x 3: 226 MB, only here
        n = len(frames)
        period = max(1, 2 * n - 2)
        with VideoWriter(gt, fps=source.fps, size=(SIDE, SIDE)) as wg, \
                VideoWriter(out, fps=source.fps, size=(SIDE, SIDE)) as wo:
            for t in range(FRAMES):
                k = t % period
                frame = frames[k if k < n else period - k]
                wg.write(frame)
                wo.write(degrade(frame, t))
        del frames
    target = OUT / "evaluate_target.json"
    if not target.is_file():
        print(f"extracting the target poses {rel(target)} ...", flush=True)
        run_process(holdpose_prefix() + ["-q", "extract", rel(gt), "-o", rel(target)])
    return {"ground_truth": gt, "output": out, "target": target, "fps": source.fps}


# --- processes -------------------------------------------------------------------------------


# --- figure 1: agreement ------------------------------------------------------------------------


def frame_pairs(fixtures: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from holdpose.io.video import FrameSource

    pairs = []
    for name in ("videos/dance_musepose_dance.mp4", "videos/talk_animateanyone_talkinghead_3.mp4",
                 "motions/posevid_animateanyone_anyone-video-1_kps.mp4"):
        path = fixtures / name
        if not path.is_file():
            continue
        frames = list(FrameSource(path, short_side=SIDE, stop=12))
        short = Path(name).name
        pairs.append((f"{short} frames 0/1", frames[0], frames[1]))
        pairs.append((f"{short} frames 5/11", frames[5], frames[11]))
        pairs.append((f"{short} frame 3 vs degraded", frames[3], degrade(frames[3], 1)))
    return pairs


def agreement_ssim_psnr(fixtures: Path, report_dir: Path, inputs: dict) -> dict:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from holdpose.evaluate.fidelity import psnr, ssim
    from holdpose.io.video import FrameSource

    rows = []
    for name, a, b in frame_pairs(fixtures):
        rows.append({"pair": name, "ssim": ssim(a, b),
                     "ssim_skimage": structural_similarity(a, b, channel_axis=-1, data_range=255),
                     "psnr": psnr(a, b), "psnr_skimage": peak_signal_noise_ratio(a, b, data_range=255)})
    # What `holdpose evaluate` wrote, recomputed from the decoded videos.
    doc = json.loads((report_dir / "metrics.json").read_text())
    outs = FrameSource(inputs["output"], stop=SSIM_CHECK_FRAMES)
    gts = FrameSource(inputs["ground_truth"], stop=SSIM_CHECK_FRAMES)
    for t, (a, b) in enumerate(zip(outs, gts)):
        rows.append({"pair": f"evaluate report, frame {t}", "ssim": doc["per_frame"]["ssim"][t],
                     "ssim_skimage": structural_similarity(a, b, channel_axis=-1, data_range=255),
                     "psnr": doc["per_frame"]["psnr"][t],
                     "psnr_skimage": peak_signal_noise_ratio(a, b, data_range=255)})
    for r in rows:
        r["ssim_diff"] = abs(r["ssim"] - r["ssim_skimage"])
        r["psnr_diff"] = abs(r["psnr"] - r["psnr_skimage"])
    return {"pairs": rows, "max_ssim_diff": max(r["ssim_diff"] for r in rows),
            "max_psnr_diff": max(r["psnr_diff"] for r in rows)}


def agreement_detector(fixtures: Path) -> list[dict]:
    from holdpose.evaluate.detector import ap_predictions, evaluate_detector
    from holdpose.evaluate.keypoints import coco_keypoint_ap

    annotations = fixtures / "images" / "annotations.json"
    if not annotations.is_file():
        return []
    result = evaluate_detector(annotations.parent, annotations)
    data = json.loads(annotations.read_text())
    keep = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox", "iscrowd")
    gt = {"images": [{"id": i["id"]} for i in data["images"]],
          "annotations": [{k: a[k] for k in keep if k in a} for a in data["annotations"]],
          "categories": [{"id": 1, "name": "person"}]}
    rows = []
    for mode in result.overall:
        preds = ap_predictions(result.images, result.predictions[mode])
        ours = coco_keypoint_ap(preds, gt)
        stats = pycocotools_stats(gt, preds)
        rows.append({"case": f"COCO fixtures, {mode}", "people": len(preds), "ap": ours.ap, "ap_pycocotools": stats[0],
                     "ar": ours.ar, "ar_pycocotools": stats[5]})
    return rows


def adherence_coco(detected, target, min_score: float = 0.3) -> tuple[dict, list[dict]]:
    """The body ground truth and predictions exactly as score_adherence builds them."""
    from holdpose.evaluate.adherence import box_area_height, fit_target, person_boxes

    target, _ = fit_target(target, detected.size)
    n = min(detected.num_frames, target.num_frames)
    tgt_present = (target.scores > min_score) & (target.track_ids >= 0)[..., None]
    det_present = (detected.scores > min_score) & (detected.track_ids >= 0)[..., None]
    images, annotations, predictions = [], [], []
    for t in range(n):
        images.append({"id": t})
        slots = np.flatnonzero(tgt_present[t].any(-1))
        boxes = person_boxes(target.keypoints[t, slots], tgt_present[t, slots])
        for j, s in enumerate(slots):
            x0, y0, x1, y1 = boxes[j]
            flat = np.concatenate([target.keypoints[t, s, :17], 2.0 * tgt_present[t, s, :17, None]], -1)
            annotations.append({"id": len(annotations) + 1, "image_id": t, "category_id": 1, "iscrowd": 0,
                                "area": box_area_height(boxes[j])[0], "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "keypoints": flat.ravel().tolist(), "num_keypoints": int(tgt_present[t, s, :17].sum())})
        for s in np.flatnonzero(det_present[t].any(-1)):
            kp = np.where(det_present[t, s, :17, None], detected.keypoints[t, s, :17], np.nan).astype(np.float64)
            predictions.append({"image_id": t, "keypoints": kp, "score": float(detected.scores[t, s, :17].mean())})
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}, predictions


def perturbed(seq, seed: int = 0):
    """A harder copy of a one-person sequence: body points moved by Gaussian noise of 5 % of
    the person's height, 10 % of them dropped, and a false person every tenth frame."""
    from holdpose.sequence import PoseSequence

    rng = np.random.default_rng(seed)
    out = PoseSequence.empty(seq.num_frames, 2, size=seq.size, fps=seq.fps)
    out.keypoints[:, :1], out.scores[:, :1], out.track_ids[:, :1] = seq.keypoints[:, :1], seq.scores[:, :1], \
        seq.track_ids[:, :1]
    present = seq.scores[:, 0, :17] > 0.3
    ys = np.where(present, seq.keypoints[:, 0, :17, 1], np.nan)
    height = np.nan_to_num(np.nanmax(ys, 1) - np.nanmin(ys, 1), nan=100.0)
    out.keypoints[:, 0, :17] += (rng.normal(0, 1, (seq.num_frames, 17, 2)) * 0.05 * height[:, None, None])
    out.scores[:, 0, :17] = np.where(rng.random((seq.num_frames, 17)) < 0.1, 0, out.scores[:, 0, :17])
    fake = np.arange(seq.num_frames) % 10 == 0
    out.keypoints[fake, 1] = seq.keypoints[fake, 0] + np.array([60.0, 10.0], np.float32)
    out.scores[fake, 1] = rng.uniform(0.3, 0.9, (fake.sum(), seq.num_keypoints))
    out.track_ids[fake, 1] = 1
    return out


def agreement_adherence(detected_path: Path, target_path: Path) -> list[dict]:
    from holdpose.evaluate.adherence import score_adherence
    from holdpose.io.posefile import load_poses

    target = load_poses(target_path)
    detected = load_poses(detected_path)
    rows = []
    for label, det in (("re-extracted poses", detected), ("perturbed poses", perturbed(detected))):
        gt, preds = adherence_coco(det, target)
        ours = score_adherence(det, target).metrics
        stats = pycocotools_stats(gt, preds)
        rows.append({"case": f"adherence, {label} vs target ({len(gt['images'])} frames)", "people": len(preds),
                     "ap": ours["oks_ap"], "ap_pycocotools": stats[0], "ar": ours["oks_ar"],
                     "ar_pycocotools": stats[5]})
    return rows


# --- figure 2: cost --------------------------------------------------------------------------------


def bench_cost(inputs: dict, repeat: int) -> dict:
    extract_cmd = holdpose_prefix() + ["-q", "extract", rel(inputs["output"]), "-o", rel(OUT / "evaluate_out_poses.json")]
    evaluate_cmd = holdpose_prefix() + ["-q", "evaluate", rel(inputs["output"]), "--target", rel(inputs["target"])]
    sides = {"extract": extract_cmd,
             "evaluate": evaluate_cmd + ["-o", rel(OUT / "evaluate_report_no_gt")],
             "evaluate_gt": evaluate_cmd + ["--ground-truth", rel(inputs["ground_truth"]),
                                            "-o", rel(OUT / "evaluate_report")]}
    runs = {name: [] for name in sides}
    for i in range(repeat):  # interleaved, so all see the same drift in machine load
        for name, cmd in sides.items():
            print(f"  run {i + 1}/{repeat}: {name} ...", end="", flush=True)
            result = run_process(cmd)
            print(f" {result['seconds']:.2f} s, {result['cpu_seconds']:.1f} CPU s (load {load()[0]})", flush=True)
            runs[name].append(result)
    report = {"frames": FRAMES, "repeat": repeat}
    for name, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        report[name] = {"command": " ".join(sides[name]), "seconds": [r["seconds"] for r in results],
                        "cpu_seconds": [r["cpu_seconds"] for r in results], "best": best["seconds"],
                        "cpu_of_best": best["cpu_seconds"]}
    report["ratio"] = report["evaluate"]["best"] / report["extract"]["best"]
    report["ratio_with_ground_truth"] = report["evaluate_gt"]["best"] / report["extract"]["best"]
    report["meets_target"] = report["ratio"] <= TARGET_RATIO
    stages = json.loads((OUT / "evaluate_report" / "metrics.json").read_text())["seconds"]
    report["evaluate_gt_stages_last_run"] = stages
    return report


# --- report ----------------------------------------------------------------------------------------


def print_tables(report: dict) -> None:
    ag = report["agreement"]
    print(f"\nSSIM and PSNR against scikit-image ({len(ag['ssim_psnr']['pairs'])} frame pairs; tolerance "
          f"{TOLERANCE:g})\n")
    print("| pair | SSIM holdpose | SSIM scikit-image | abs diff | PSNR holdpose | PSNR scikit-image | abs diff |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in ag["ssim_psnr"]["pairs"]:
        print(f"| {r['pair']} | {r['ssim']:.6f} | {r['ssim_skimage']:.6f} | {r['ssim_diff']:.1e} | {r['psnr']:.4f} | "
              f"{r['psnr_skimage']:.4f} | {r['psnr_diff']:.1e} |")
    print(f"\nOKS AP / AR against pycocotools (tolerance {TOLERANCE:g})\n")
    print("| case | predictions | AP holdpose | AP pycocotools | AR holdpose | AR pycocotools |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in ag["oks_ap"]:
        print(f"| {r['case']} | {r['people']} | {r['ap']:.6f} | {r['ap_pycocotools']:.6f} | {r['ar']:.6f} | "
              f"{r['ar_pycocotools']:.6f} |")
    verdict = "meets" if ag["meets_target"] else "MISSES"
    print(f"\nlargest difference: SSIM {ag['ssim_psnr']['max_ssim_diff']:.1e}, PSNR {ag['ssim_psnr']['max_psnr_diff']:.1e} "
          f"dB, AP/AR {ag['max_ap_diff']:.1e} (target <= {TOLERANCE:g}: {verdict})")
    c = report["cost"]
    print(f"\nCost on {FRAMES} frames at {SIDE}x{SIDE} ({rel(OUT / 'evaluate_out_512.mp4')}), whole processes, best of "
          f"{c['repeat']}, {os.cpu_count()} cores\n")
    print("| command | seconds (runs) | best | CPU s of best |")
    print("|---|---|---:|---:|")
    labels = {"extract": "holdpose -q extract OUTPUT", "evaluate": "holdpose -q evaluate OUTPUT --target -o report",
              "evaluate_gt": "holdpose -q evaluate OUTPUT --target --ground-truth -o report"}
    for name, label in labels.items():
        r = c[name]
        print(f"| {label} | {', '.join(f'{s:.2f}' for s in r['seconds'])} | {r['best']:.2f} | {r['cpu_of_best']:.1f} |")
    verdict = "meets" if c["meets_target"] else "MISSES"
    print(f"| **evaluate / extract** | | **{c['ratio']:.2f}x** (target <= {TARGET_RATIO:.2f}x: {verdict}) | |")
    print(f"| evaluate with ground truth / extract | | {c['ratio_with_ground_truth']:.2f}x | |")
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in c["evaluate_gt_stages_last_run"].items())
    print(f"\nevaluate --ground-truth's own stages (last run): {stages}")
    print(f"\nLoad average (1, 5, 15 min) at start {report['load']['start']}, at end {report['load']['end']}.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per command; the best counts")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "evaluate.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    fixture = args.fixtures / "videos" / VIDEO_NAME
    if not fixture.is_file():
        print(f"SKIP: {fixture} not found (real-video fixtures absent)")
        return 0
    load_start = load()

    # 1. Inputs, then the timed runs (they also write the report the agreement checks read).
    inputs = prepare_inputs(fixture)
    print("timing holdpose extract and holdpose evaluate ...", flush=True)
    cost = bench_cost(inputs, max(1, args.repeat))

    # 2. Agreement.
    print("checking agreement with scikit-image and pycocotools ...", flush=True)
    ssim_psnr = agreement_ssim_psnr(args.fixtures, OUT / "evaluate_report", inputs)
    oks_rows = agreement_detector(args.fixtures)
    oks_rows += agreement_adherence(OUT / "evaluate_out_poses.json", inputs["target"])
    max_ap = max(max(abs(r["ap"] - r["ap_pycocotools"]), abs(r["ar"] - r["ar_pycocotools"])) for r in oks_rows)
    agreement = {"ssim_psnr": ssim_psnr, "oks_ap": oks_rows, "max_ap_diff": max_ap, "tolerance": TOLERANCE,
                 "meets_target": max(ssim_psnr["max_ssim_diff"], ssim_psnr["max_psnr_diff"], max_ap) <= TOLERANCE}

    import mediapipe
    import skimage

    try:
        import pycocotools
        pycocotools_version = getattr(pycocotools, "__version__", "installed")
    except ImportError:
        pycocotools_version = None
    report = {
        "benchmark": "evaluate",
        "figures": {"agreement": f"SSIM, PSNR equal scikit-image's and OKS AP/AR pycocotools' within {TOLERANCE:g} on "
                                 "the fixtures",
                    "cost": f"holdpose evaluate (--target, --ground-truth) of a {FRAMES}-frame {SIDE}x{SIDE} video "
                            f"at most {TARGET_RATIO:.2f}x holdpose extract of it"},
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "load": {"start": load_start, "end": load()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "mediapipe": mediapipe.__version__,
                     "scikit-image": skimage.__version__, "pycocotools": pycocotools_version},
        "inputs": {"fixture": rel(fixture), "output": rel(inputs["output"]), "ground_truth": rel(inputs["ground_truth"]),
                   "target": rel(inputs["target"]), "frames": FRAMES, "size": [SIDE, SIDE], "fps": inputs["fps"]},
        "agreement": agreement,
        "cost": {k: v for k, v in cost.items()},
    }
    for name in ("extract", "evaluate"):
        report["cost"][name] = dict(report["cost"][name])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print_tables(report)
    print(f"wrote {rel(args.output)}")
    return 1 if args.check and not (agreement["meets_target"] and cost["meets_target"]) else 0


if __name__ == "__main__":
    sys.exit(main())
