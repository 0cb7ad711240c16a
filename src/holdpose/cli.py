"""The ``holdpose`` command: a thin layer over the Python API.

Each subcommand parses its arguments, calls one API function and reports where
its output went. Heavy modules are imported inside the subcommand that needs them,
so ``holdpose --help`` stays fast. Problems the user can fix (:class:`HoldposeError`)
are printed as one line on stderr with exit code 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from holdpose.errors import HoldposeError
from holdpose.progress import progress_bar

logger = logging.getLogger("holdpose")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 512x768, got {text!r}") from err
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- subcommands -----------------------------------------------------------------


def cmd_extract(args) -> None:
    from holdpose.detect.extract import extract_poses
    from holdpose.io.posefile import save_poses

    options = {}
    if args.detector == "dwpose":
        options = {"pose_model": args.pose_model, "det_model": args.det_model}
    seq = extract_poses(args.input, detector=args.detector, max_people=args.max_people, short_side=args.short_side,
                        fps=args.fps, workers=args.workers, progress=not args.quiet, **options)
    save_poses(seq, args.output, **_json_options(args))
    found = int((seq.track_ids >= 0).any(-1).sum())
    print(f"{args.output}: {seq.num_frames} frames ({found} with people), {seq.size[0]}x{seq.size[1]}, {seq.fps:g} fps")


def _json_options(args) -> dict:
    if str(args.output).lower().endswith(".npz"):
        return {}
    return {"normalized": args.normalized, "confidences": args.confidences}


def cmd_render(args) -> None:
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import open_writer
    from holdpose.render.openpose import get_style, render_pose_maps

    style = get_style(args.style)
    seq = load_poses(args.poses, size=args.canvas)
    size = args.size or seq.size
    maps = render_pose_maps(seq, style, size=size, threshold=args.threshold)
    output = Path(args.output)
    if output.suffix.lower() in (".png", ".jpg"):
        _write_single_image(maps, seq, output)
    else:
        with open_writer(output, fps=seq.fps, size=size) as writer:
            for frame in progress_bar(maps, total=seq.num_frames, desc="render", enabled=not args.quiet):
                writer.write(frame)
    print(f"{output}: {seq.num_frames} pose maps ({style.name}), {size[0]}x{size[1]}")


def _write_single_image(frames, seq, output: Path) -> None:
    from holdpose.io.video import write_image

    if seq.num_frames != 1:
        raise HoldposeError(f"{output}: one image holds one frame, the sequence has {seq.num_frames}; "
                            "give a folder (no suffix) or a video (.mp4)")
    write_image(output, next(iter(frames)))


def cmd_demo(args) -> None:
    from holdpose.demo import run_demo

    run_demo(args.output, reference=args.reference, video=args.video, progress=not args.quiet)


# --- parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holdpose", description="Make characters in AI-generated video hold a pose.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what each stage does (-vv: also the models' own messages)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("extract", help="detect poses in a video, image folder or image")
    p.add_argument("input", help="video file, folder of images, or image")
    p.add_argument("-o", "--output", required=True, help="poses.json (OpenPose), poses.npz, or a folder (one JSON per frame)")
    p.add_argument("--detector", choices=["mediapipe", "dwpose"], default="mediapipe")
    p.add_argument("--pose-model", help="dwpose: path to the DWPose/RTMPose .onnx file")
    p.add_argument("--det-model", help="dwpose: path to a YOLOX person detector .onnx file (optional)")
    p.add_argument("--max-people", type=_positive_int, default=1, help="most people per frame (default 1)")
    p.add_argument("--short-side", type=_positive_int, help="resize frames so their short side has this many pixels")
    p.add_argument("--fps", type=float, help="frame rate of an image folder (default 30)")
    p.add_argument("--workers", type=_positive_int, help="processes to use (default: one per core)")
    _add_json_options(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("render", help="draw pose maps (ControlNet OpenPose style)")
    p.add_argument("poses", help="pose file (.json, .npz or folder of .json)")
    p.add_argument("-o", "--output", required=True, help="maps.mp4 (video), maps/ (PNG per frame) or map.png (one frame)")
    p.add_argument("--style", default="openpose_full", help="openpose, openpose_hand, openpose_face, openpose_full, "
                   "openpose_full_bgr (MusePose, DisPose), mimicmotion")
    p.add_argument("--size", type=_size, help="output WxH (default: the poses' canvas)")
    p.add_argument("--canvas", type=_size, help="canvas WxH of a pose file that does not state it")
    p.add_argument("--threshold", type=float, default=0.3, help="draw points with a score above this (default 0.3)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("demo", help="run the whole job on a photo that ships with scikit-image")
    p.add_argument("-o", "--output", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--reference", help="your own reference photo instead of the bundled one")
    p.add_argument("--video", help="your own driving video")
    p.set_defaults(func=cmd_demo)
    return parser


def _add_json_options(p) -> None:
    p.add_argument("--confidences", choices=["binary", "real"], default="binary",
                   help="JSON only: 'binary' writes present points with confidence 1 as ControlNet tools "
                   "expect (default); 'real' keeps detector scores")
    p.add_argument("--normalized", action="store_true", help="JSON only: coordinates in [0, 1] instead of pixels")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level,
                        format="holdpose: %(levelname)s: %(message)s")
    try:
        args.func(args)
    except HoldposeError as err:
        print(f"holdpose: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("holdpose: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
