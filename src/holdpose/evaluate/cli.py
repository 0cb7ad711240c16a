"""The ``evaluate``, ``correct``, ``compare`` and ``evaluate-detector`` subcommands.

``holdpose.cli`` adds them with ``add_subcommands(sub, parents)`` on its subparsers object. Each
handler takes the parsed arguments (the main parser's ``--quiet`` included, when there),
calls one API function, prints where its output went and a short summary, and raises
:class:`holdpose.errors.HoldposeError` for problems the user can fix.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from holdpose.argtypes import fraction, nonnegative_int, positive_int
from holdpose.errors import HoldposeError
from holdpose.io.outputs import check_output
from holdpose.people import add_person_option

logger = logging.getLogger(__name__)

SUMMARY = ["oks_ap", "cap", "pck@0.1", "pce", "mse_p", "ssim", "psnr", "l1", "flicker", "flicker_score", "warp_error",
           "keypoint_jitter", "lpips", "fid", "kid", "fvd", "clip_i", "clip_t"]
# PoseCrafter's Table 1 (ECCV 2024): metric -> what it needs when missing. CLIP-T there is the CLIP
# similarity between consecutive frames (holdpose's clip_temporal), MSE-P on normalised coordinates.
POSECRAFTER_SET = {"ssim": "--ground-truth", "psnr": "--ground-truth", "lpips": "--lpips", "mse_p_norm": "--target and a detector",
                   "fid": "--fid-features", "clip_i": "--clip-model and --reference", "fvd": "--fvd-model",
                   "clip_temporal": "--clip-model"}


def _detector_options(p: argparse.ArgumentParser, *, choices=("auto", "mediapipe", "dwpose", "none"),
                      default="auto", purpose: str = "that re-detects the poses in the video") -> None:
    p.add_argument("--detector", choices=choices, default=default,
                   help=f"pose detector {purpose} (default {default}" + (
                       "; auto picks DWPose when --pose-model is given, else MediaPipe, which probably made the target "
                       "and so flatters adherence; none skips re-detection)" if "auto" in choices else ")"))
    p.add_argument("--pose-model", help="dwpose: path to the DWPose/RTMPose .onnx file")
    p.add_argument("--det-model", help="dwpose: path to a YOLOX person detector .onnx file (optional)")


def add_subcommands(subparsers, parents: list[argparse.ArgumentParser] = ()) -> None:
    """Add ``evaluate``, ``correct``, ``compare`` and ``evaluate-detector`` to ``subparsers``
    (the object ``ArgumentParser.add_subparsers`` returns), each with ``parents``."""
    parents = list(parents)
    p = subparsers.add_parser("evaluate", parents=parents, help="does a generated video hold the pose? metrics and an HTML report",
                              description="Re-detect the poses in OUTPUT and score them against the target; measure "
                              "flicker, warping error and keypoint jitter; compare with a ground-truth video. Writes "
                              "metrics.json and index.html (with plots) into the report folder.")
    p.add_argument("video", metavar="VIDEO", help="the generated video (or image folder)")
    p.add_argument("--verdicts", help="per-frame verdicts of `holdpose animate --verify` or `holdpose correct`: "
                   "the report shows which frames were made again or corrected (default: VIDEO.verdicts.jsonl "
                   "beside the video, when there is one)")
    p.add_argument("--target", help="target poses (.json, .npz or folder of .json): adherence metrics (default: "
                   "VIDEO's .poses.json, which holdpose animate writes, when there is one)")
    add_person_option(p, "score in the target")
    p.add_argument("--ground-truth", help="ground-truth video: SSIM, PSNR, L1 (and LPIPS, FID, KID, FVD)")
    p.add_argument("--reference", help="reference image of the character: CLIP-I with --clip-model")
    p.add_argument("-o", "--output", required=True, help="report folder (metrics.json, index.html, plots)")
    _detector_options(p)
    p.add_argument("--max-people", type=positive_int, help="most people per frame (default: the target's most)")
    p.add_argument("--min-score", type=fraction, default=0.3, help="keypoint score counted as present (default 0.3)")
    p.add_argument("--flow", choices=["dis", "farneback"], default="dis",
                   help="OpenCV optical flow for the warping error (default dis)")
    p.add_argument("--workers", type=positive_int, help="processes to use (default: one per core)")
    p.add_argument("--worst-frames", type=nonnegative_int, default=4, help="worst frames shown in the report (default 4)")
    p.add_argument("--metric-set", choices=["default", "posecrafter"], default="default",
                   help="metrics of the summary line: holdpose's, or PoseCrafter's (SSIM, PSNR, LPIPS, MSE-P "
                   "normalised, FID, CLIP-I, FVD, CLIP-T between frames; needs --ground-truth)")
    learned = p.add_argument_group("learned metrics (need torch and weights you have locally; nothing is downloaded)")
    learned.add_argument("--lpips", action="store_true", help="LPIPS (pip install lpips; AlexNet weights in torch's "
                         "hub cache)")
    learned.add_argument("--fid-features", help="FID and KID features: 'inception' (pip install pytorch-fid; its "
                         "weights in torch's hub cache), or an .onnx / TorchScript .pt image model")
    learned.add_argument("--fvd-model", help="FVD: path of StyleGAN-V's i3d_torchscript.pt")
    learned.add_argument("--clip-model", help="CLIP-I / CLIP-T: a local CLIP model folder (save_pretrained)")
    learned.add_argument("--prompt", help="the text prompt, for CLIP-T")
    learned.add_argument("--dino-model", help="VBench subject consistency: a local DINO ViT folder (save_pretrained); "
                         "--clip-model also gives background consistency and CLIP similarity between frames")
    learned.add_argument("--videomae-model", help="CD-FVD against --ground-truth: a local VideoMAE folder")
    learned.add_argument("--fid64", action="store_true", help="FID on 64-d Inception features against --ground-truth "
                         "(as Stable-Pose reports it; pytorch-fid's weights in torch's hub cache)")
    learned.add_argument("--allow-pickle", action="store_true", help="allow TorchScript .pt models for "
                         "--fid-features / --fvd-model: they run code from the file, so only for files you trust")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser(
        "correct", parents=parents, help="move the limbs that drifted back onto their target poses, in any video",
        description="Judge every frame of VIDEO against its target pose; in the frames that drift, rig the frame "
        "itself as the warp animator rigs a photo and move the limbs that are off onto the target, blending only "
        "the changed region in. Frames that hold are copied as they are. Writes the corrected video and "
        "OUT.verdicts.jsonl (before/after per frame; holdpose evaluate shows them).")
    p.add_argument("video", metavar="VIDEO", help="the video to correct (holdpose's, or one made elsewhere)")
    p.add_argument("--target", required=True, help="the poses it should follow, one frame per video frame")
    p.add_argument("-o", "--output", required=True, help="corrected video (.mp4; .mkv with --lossless)")
    p.add_argument("--report", help="also evaluate the corrected video into this report folder")
    p.add_argument("--lossless", action="store_true", help="FFV1 in .mkv: untouched frames exactly as decoded")
    p.add_argument("--min-pck", type=fraction, default=0.9, help="a frame drifts below this PCK@0.05 (default 0.9)")
    p.add_argument("--max-limb-error", type=float, help="a frame also drifts when a limb is off by more degrees")
    p.add_argument("--limb-tolerance", type=float, default=15.0,
                   help="in a drifting frame, move the limbs off by more degrees than this (default 15)")
    _detector_options(p, choices=("auto", "mediapipe", "dwpose"))
    p.set_defaults(func=cmd_correct)

    p = subparsers.add_parser("compare", parents=parents, help="several generated videos side by side with one table of metrics",
                              description="Evaluate each video against the same target poses; write compare.mp4 "
                              "(target pose map and each video with its re-detected pose), metrics.json and index.html.")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="generated videos")
    p.add_argument("--target", required=True, help="target poses (.json, .npz or folder of .json)")
    p.add_argument("--ground-truth", help="ground-truth video for SSIM, PSNR, L1")
    p.add_argument("--labels", nargs="+", help="one name per video (default: file names)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    _detector_options(p)
    p.add_argument("--max-people", type=positive_int, help="most people per frame (default: the target's most)")
    p.add_argument("--tile-height", type=positive_int, help="height of each tile of compare.mp4 (default: smallest "
                   "video height, at most 512)")
    p.add_argument("--workers", type=positive_int, help="processes to use (default: one per core)")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("evaluate-detector", parents=parents, help="accuracy of a pose detector on COCO-annotated images",
                              description="OKS AP/AR, mean OKS and PCK of the 17 COCO body keypoints, top-down (with "
                              "the ground-truth boxes) and bottom-up. Writes metrics.json and index.html.")
    p.add_argument("images", metavar="IMAGES", help="folder of the annotated images")
    p.add_argument("annotations", metavar="ANNOTATIONS", help="COCO keypoint annotation JSON")
    p.add_argument("-o", "--output", required=True, help="report folder")
    _detector_options(p, choices=("mediapipe", "dwpose"), default="mediapipe", purpose="to evaluate")
    p.add_argument("--max-people", type=positive_int, default=8, help="most people per image bottom-up (default 8)")
    p.add_argument("--pck-alpha", type=fraction, default=0.2, help="PCK threshold, fraction of the bbox's longer "
                   "side (default 0.2)")
    p.add_argument("--mode", nargs="+", choices=["top-down", "bottom-up"], default=["top-down", "bottom-up"],
                   help="top-down: the detector is given the ground-truth boxes; bottom-up: it finds the people "
                   "itself (default: both)")
    p.set_defaults(func=cmd_evaluate_detector)


def _progress(args) -> bool:
    return not getattr(args, "quiet", False)


def _summary(metrics: dict, metric_set: str = "default") -> str:
    from holdpose.evaluate.report import format_value

    if metric_set == "posecrafter":
        return "  ".join(f"{n} {format_value(metrics.get(n))}" + ("" if metrics.get(n) is not None else
                                                                   f" (needs {need})")
                         for n, need in POSECRAFTER_SET.items())
    names = [n for n in SUMMARY if n in metrics]
    return "  ".join(f"{n} {format_value(metrics[n])}" for n in names)


def cmd_evaluate(args) -> None:
    from holdpose.evaluate.report import write_report
    from holdpose.evaluate.run import evaluate_video

    check_output(args.output, inputs=[args.video, args.target, args.ground_truth, args.reference], folder=True,
                 what="report folder")
    if args.metric_set == "posecrafter" and not args.ground_truth:  # (evaluate_video checks the learned metrics)
        raise HoldposeError("--metric-set posecrafter compares the video with a ground truth; pass --ground-truth VIDEO")
    for path in (args.target, args.ground_truth, args.reference):
        if path is not None and not Path(path).exists():
            raise HoldposeError(f"{path}: no such file or folder")
    target = args.target
    beside = Path(args.video).with_suffix(".poses.json")
    if target is None and beside.is_file():  # what `holdpose animate` writes next to its video (documented default)
        target = str(beside)
        logger.info("scoring against %s, the poses holdpose animate followed (--target to choose others)", beside)
    if target is not None and args.person not in (None, "all"):
        from holdpose.io.posefile import load_poses
        from holdpose.people import choose_people

        target = choose_people(load_poses(target), args.person, what=target)
    verdicts = args.verdicts
    beside_verdicts = Path(args.video).with_suffix(".verdicts.jsonl")
    if verdicts is None and beside_verdicts.is_file():  # what `holdpose animate --verify` / `holdpose correct` write
        verdicts = str(beside_verdicts)
    evaluation = evaluate_video(
        args.video, target=target, verdicts=verdicts, ground_truth=args.ground_truth, reference=args.reference,
        detector=None if args.detector == "none" else args.detector, pose_model=args.pose_model,
        det_model=args.det_model, max_people=args.max_people, min_score=args.min_score, flow=args.flow,
        workers=args.workers, worst_frames=args.worst_frames, lpips=args.lpips, fid_features=args.fid_features,
        fvd_model=args.fvd_model, clip_model=args.clip_model, prompt=args.prompt, dino_model=args.dino_model,
        videomae_model=args.videomae_model, fid64=args.fid64, progress=_progress(args),
        allow_pickle=args.allow_pickle)
    files = write_report(evaluation, args.output)
    _hint_at_the_aligned_target(evaluation.metrics, args.target, beside)
    against = f" against {target}" if target else " (no target poses: no adherence metrics)"
    print(f"{files['html']}: {evaluation.frames.get('output')} frames evaluated{against}")
    print(_summary(evaluation.metrics, args.metric_set))


def cmd_correct(args) -> None:
    from holdpose.evaluate.correct import correct_video
    from holdpose.evaluate.verdicts import Thresholds

    if args.report and Path(args.report).exists() and not Path(args.report).is_dir():
        raise HoldposeError(f"{args.report}: exists and is not a folder; the report is a folder")
    result = correct_video(args.video, args.target, args.output,
                           thresholds=Thresholds(min_pck=args.min_pck, max_limb_error=args.max_limb_error),
                           limb_tolerance=args.limb_tolerance, detector=args.detector, pose_model=args.pose_model,
                           det_model=args.det_model, lossless=args.lossless, progress=_progress(args))
    print(f"{result.video_path}: {result.num_frames} frames, {result.drifted} drifted, {result.corrected} corrected, "
          f"{result.still_drifting} still drift; verdicts: {result.verdicts_path}")
    if args.report:
        from holdpose.evaluate.report import write_report
        from holdpose.evaluate.run import evaluate_video

        evaluation = evaluate_video(result.video_path, target=args.target, verdicts=result.verdicts_path,
                                    detector=args.detector, pose_model=args.pose_model, det_model=args.det_model,
                                    progress=_progress(args))
        files = write_report(evaluation, args.report)
        print(f"{files['html']}: {_summary(evaluation.metrics)}")


def _hint_at_the_aligned_target(metrics: dict, target: str | None, beside: Path) -> None:
    """A low score against a given target while the poses the animation followed sit beside
    the video: most likely the unaligned driving poses were given."""
    ap = metrics.get("oks_ap")
    if target is None or ap is None or not beside.is_file() or ap >= 0.5:
        return
    if Path(target).resolve() != beside.resolve():
        logger.warning("OKS AP %.2f against %s; %s beside the video holds the poses the animation followed "
                       "(aligned to the character): try --target %s", ap, target, beside, beside)


def cmd_compare(args) -> None:
    from holdpose.evaluate.compare import compare

    check_output(args.output, inputs=[*args.videos, args.target, args.ground_truth], folder=True, what="output folder")
    if args.labels and len(args.labels) != len(args.videos):
        raise HoldposeError(f"{len(args.labels)} labels for {len(args.videos)} videos; give one --labels name per video")
    files = compare(args.videos, args.target, args.output, labels=args.labels, ground_truth=args.ground_truth,
                    detector=None if args.detector == "none" else args.detector, pose_model=args.pose_model,
                    det_model=args.det_model, max_people=args.max_people, workers=args.workers,
                    tile_height=args.tile_height, progress=_progress(args))
    print(f"{files['video']}, {files['html']}: {len(args.videos)} videos compared")


def cmd_evaluate_detector(args) -> None:
    from holdpose.evaluate.detector import evaluate_detector, write_detector_report

    check_output(args.output, inputs=[args.images, args.annotations], folder=True, what="report folder")
    result = evaluate_detector(args.images, args.annotations, detector=args.detector, pose_model=args.pose_model,
                               det_model=args.det_model, max_people=args.max_people, pck_alpha=args.pck_alpha,
                               modes=tuple(args.mode))
    files = write_detector_report(result, args.output)
    print(f"{files['html']}: {len(result.images)} images")
    for mode, values in result.overall.items():
        print(f"{mode}: AP {values['ap']:.3f}  AR {values['ar']:.3f}  mean OKS {values['mean_oks']:.3f}  "
              f"PCK@{result.pck_alpha:g} {values['mean_pck']:.3f}")


__all__ = ["add_subcommands", "cmd_compare", "cmd_evaluate", "cmd_evaluate_detector"]
