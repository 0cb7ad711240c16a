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
import os
import sys
from pathlib import Path

import holdpose
from holdpose import argtypes, limits
from holdpose.errors import HoldposeError
from holdpose.io.outputs import POSE_SUFFIXES, check_output, describe_os_error
from holdpose.io.video import WRITABLE_VIDEO_SUFFIXES
from holdpose.people import add_person_option
from holdpose.progress import progress_bar

logger = logging.getLogger("holdpose")

RENDER_SUFFIXES = WRITABLE_VIDEO_SUFFIXES + (".png", ".jpg", "")  # a video, an image, or a folder


# --- subcommands -----------------------------------------------------------------


def cmd_extract(args) -> None:
    from holdpose.detect.extract import extract_poses
    from holdpose.io.posefile import save_poses

    if args.coco:
        check_output(args.output, inputs=[args.input], suffixes=(".json",), what="COCO keypoint file (--coco)")
        if not Path(args.input).is_dir():
            raise HoldposeError(f"{args.input}: --coco exports an image folder's annotations; give a folder of images")
    else:
        check_output(args.output, inputs=[args.input], suffixes=POSE_SUFFIXES, what="pose file")
    options = {"keep_offscreen": args.keep_offscreen}
    if args.body_only:
        if args.detector != "mediapipe" or args.max_people < 2:
            raise HoldposeError("--body-only is for several people with the mediapipe detector (--max-people 2 or more)")
        options["hands_and_face"] = False
    if args.detector == "dwpose":
        options.update(pose_model=args.pose_model, det_model=args.det_model)
    seq = extract_poses(args.input, detector=args.detector, max_people=args.max_people, short_side=args.short_side,
                        fps=args.fps, workers=args.workers, progress=not args.quiet, **options)
    if args.coco:
        from holdpose.io.coco import export_image_folder

        export_image_folder(seq, args.input, args.output, threshold=args.threshold)
    else:
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

    from holdpose.people import choose_people

    output = check_output(args.output, inputs=[args.poses], suffixes=RENDER_SUFFIXES, what="pose-map output")
    style = get_style(args.style)
    seq = choose_people(load_poses(args.poses, size=args.canvas), args.person, what=args.poses)
    size = args.size or seq.size
    if output.suffix.lower() in (".png", ".jpg") and seq.num_frames != 1:
        raise HoldposeError(f"{output}: one image holds one frame, the sequence has {seq.num_frames}; "
                            "give a folder (no suffix) or a video (.mp4)")
    maps = render_pose_maps(seq, style, size=size, threshold=args.threshold)
    if output.suffix.lower() in (".png", ".jpg"):
        from holdpose.io.video import write_image

        write_image(output, next(iter(maps)))
    else:
        with open_writer(output, fps=seq.fps, size=size) as writer:
            for frame in progress_bar(maps, total=seq.num_frames, desc="render", enabled=not args.quiet):
                writer.write(frame)
    print(f"{output}: {seq.num_frames} pose maps ({style.name}), {size[0]}x{size[1]}")


def cmd_refine(args) -> None:
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.refine import pipeline

    check_output(args.output, inputs=[args.poses], suffixes=POSE_SUFFIXES, what="pose file")
    if args.plot:
        check_output(args.plot, inputs=[args.poses, args.output], suffixes=(".png",), what="plot")
    if args.max_gap is not None and not args.fill:
        raise HoldposeError("--max-gap only applies with --fill (it is the longest gap --fill interpolates)")
    raw = load_poses(args.poses)
    clean = pipeline.refine(raw, track=args.track, fill=args.fill, max_gap=args.max_gap or 5, fix_swaps=args.fix_swaps,
                            smooth=args.smooth, smooth_window=args.smooth_window, fps=args.fps, video=args.video,
                            reid_seconds=args.reid_seconds)
    if args.plot:  # before the poses: a plot that fails leaves no output behind
        from holdpose.refine.plot import plot_tracks

        plot_tracks(raw, clean, args.plot, keypoint=args.plot_keypoint)
    save_poses(clean, args.output, **_json_options(args))
    if args.plot:
        print(f"{args.plot}: raw vs refined {args.plot_keypoint}")
    ids = ""
    if args.track:
        from holdpose.people import list_tracks

        ids = f"; person ids {len(list_tracks(raw))} -> {len(list_tracks(clean))}"
    print(f"{args.output}: {clean.num_frames} frames at {clean.fps:g} fps{ids}")


def cmd_keyframes(args) -> None:
    from holdpose.io.posefile import save_poses
    from holdpose.refine.keyframes import builtin_motions, from_keyframes, load_builtin_motion, load_keyframes

    check_output(args.output, inputs=[args.keyframes], suffixes=POSE_SUFFIXES, what="pose file")
    if args.keyframes in builtin_motions() and not Path(args.keyframes).exists():
        seq = load_builtin_motion(args.keyframes, fps=args.fps, easing=args.easing)
    else:
        seq = from_keyframes(load_keyframes(args.keyframes), fps=args.fps, easing=args.easing,
                             base_dir=Path(args.keyframes).parent)
    save_poses(seq, args.output, **_json_options(args))
    print(f"{args.output}: {seq.num_frames} frames at {seq.fps:g} fps ({seq.duration:.2f} s)")


def cmd_edit(args) -> None:
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.refine import keyframes

    check_output(args.output, inputs=[args.poses], suffixes=POSE_SUFFIXES, what="pose file")
    edits = [(keyframes.move, "--move", e) for e in args.move or []] + \
        [(keyframes.rotate, "--rotate", e) for e in args.rotate or []] + \
        [(keyframes.scale, "--scale", e) for e in args.scale or []]
    if not edits:
        raise HoldposeError("nothing to edit; give --move, --rotate or --scale")
    for _, flag, (part, *numbers) in edits:  # all checked before the file is read
        keyframes.part_indices(part)
        for number in numbers:
            limits.finite(number, f"{flag} {part}: {number!r}: value")
    original = load_poses(args.poses)
    seq = original
    window = dict(start=args.start, end=args.end, ramp=args.ramp)
    for edit, _, (part, *numbers) in edits:
        seq = edit(seq, part, *map(float, numbers), **window)
    save_poses(seq, args.output, **_json_options(args))
    changed = int((seq.keypoints != original.keypoints).any(axis=(1, 2, 3)).sum())
    print(f"{args.output}: {changed} of {seq.num_frames} frames edited")


def cmd_import_bvh(args) -> None:
    from holdpose.io.bvh import Camera, bvh_to_sequence
    from holdpose.io.posefile import save_poses

    check_output(args.output, inputs=[args.bvh], suffixes=POSE_SUFFIXES, what="pose file")
    camera = Camera(azimuth=args.azimuth, elevation=args.elevation, focal_length=args.focal_length)
    seq = bvh_to_sequence(args.bvh, size=args.size, camera=camera)
    if args.fps is not None and abs(args.fps - seq.fps) > 1e-6:
        from holdpose.refine.timeline import resample

        seq = resample(seq, args.fps)
    save_poses(seq, args.output, **_json_options(args))
    print(f"{args.output}: {seq.num_frames} frames at {seq.fps:g} fps, {seq.size[0]}x{seq.size[1]}")


def _alignment_reference(path: str):
    """A reference pose from an image (detected) or a pose file (its first frame, first person)."""
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import IMAGE_SUFFIXES, read_image

    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        from holdpose.detect.extract import detect_reference_pose

        image = read_image(path)
        keypoints, scores = detect_reference_pose(image, path)
        return keypoints, scores, (image.shape[1], image.shape[0])
    ref = load_poses(path)
    return ref.keypoints[0, 0], ref.scores[0, 0], ref.size


def cmd_align(args) -> None:
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.refine.align import align_to_reference

    from holdpose.people import choose_people

    check_output(args.output, inputs=[args.poses, args.reference], suffixes=POSE_SUFFIXES, what="pose file")
    driving = choose_people(load_poses(args.poses), args.person, what=args.poses)
    keypoints, scores, size = _alignment_reference(args.reference)
    aligned, info = align_to_reference(driving, keypoints, scores, orientation_only=args.orientation_only,
                                       reference_size=size)
    save_poses(aligned, args.output, **_json_options(args))
    print(f"{args.output}: {aligned.num_frames} frames on the reference's {size[0]}x{size[1]} canvas; "
          f"character/driver body ratio {info.body_ratio:.3f}")


def cmd_demo(args) -> None:
    from holdpose.demo import run_demo

    check_output(args.output, inputs=[args.reference, args.video], folder=True, what="demo folder")
    run_demo(args.output, reference=args.reference, video=args.video, progress=not args.quiet)


# --- parser ----------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line like every other error: ``holdpose: error:
    render: argument --fps: ... (see holdpose render --help)``, exit 2."""

    def error(self, message):
        command = self.prog.removeprefix("holdpose").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"holdpose: error: {where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="holdpose", description="Make characters in AI-generated video hold a pose.")
    parser.add_argument("--version", action="version", version=f"holdpose {holdpose.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what each stage does (-vv: also the models' own messages)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # -q and -v work after the command too (`holdpose render x.json -o y.mp4 -q`)
    common = ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    p = sub.add_parser("extract", parents=[common], help="detect poses in a video, image folder or image")
    p.add_argument("input", help="video file, folder of images, or image")
    p.add_argument("-o", "--output", required=True, help="poses.json (OpenPose), poses.npz, or a folder (one JSON per frame)")
    p.add_argument("--detector", choices=["mediapipe", "dwpose"], default="mediapipe",
                   help="pose detector (default mediapipe; dwpose needs --pose-model)")
    p.add_argument("--pose-model", help="dwpose: path to the DWPose/RTMPose .onnx file")
    p.add_argument("--det-model", help="dwpose: path to a YOLOX person detector .onnx file (optional)")
    p.add_argument("--max-people", type=argtypes.positive_int, default=1, help="most people per frame (default 1)")
    p.add_argument("--body-only", action="store_true",
                   help="with --max-people 2 or more: bodies only, no hands or face (about 3x faster per person)")
    p.add_argument("--keep-offscreen", action="store_true",
                   help="keep points the detector guesses outside the frame or with low visibility/score "
                   "(default: they are missing)")
    p.add_argument("--short-side", type=argtypes.positive_int, help="resize frames so their short side has this many "
                   "pixels (default: full resolution; 512 is faster and as accurate for one person)")
    p.add_argument("--fps", type=argtypes.fps, help="frame rate of an image folder (default 30)")
    p.add_argument("--workers", type=argtypes.positive_int, help="processes to use (default: one per core)")
    p.add_argument("--coco", action="store_true", help="write OUTPUT (.json) as COCO keypoint annotations of an image "
                   "folder, in each image's own pixels (training data for `holdpose train stablepose`)")
    p.add_argument("--threshold", type=argtypes.fraction, default=0.3, help="with --coco: points scoring above this "
                   "are labelled (default 0.3)")
    _add_json_options(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("render", parents=[common], help="draw pose maps (ControlNet OpenPose style)")
    p.add_argument("poses", help="pose file (.json, .npz or folder of .json)")
    p.add_argument("-o", "--output", required=True, help="maps.mp4 (video), maps/ (PNG per frame) or map.png (one frame)")
    from holdpose.render.styles import STYLES

    p.add_argument("--style", default="openpose_full", choices=list(STYLES),
                   help="pose-map style (default openpose_full; openpose_full_bgr for MusePose and DisPose)")
    p.add_argument("--size", type=argtypes.size, help="output WxH (default: the poses' canvas)")
    p.add_argument("--canvas", type=argtypes.size, help="canvas WxH of a pose file that does not state it")
    p.add_argument("--threshold", type=argtypes.fraction, default=0.3, help="draw points with a score above this (default 0.3)")
    add_person_option(p, "draw")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("refine", parents=[common], help="clean a pose sequence: track, fill gaps, fix left/right swaps, smooth, change fps")
    p.add_argument("poses", help="pose file (.json, .npz or folder of .json)")
    p.add_argument("-o", "--output", required=True, help="refined poses (.json, .npz or folder)")
    p.add_argument("--track", action="store_true", help="re-assign person ids across frames (pose, motion, and "
                   "colours with --video) and join the pieces of one person")
    p.add_argument("--video", help="--track: the video the poses came from, to compare people's colours")
    p.add_argument("--reid-seconds", type=float, help="--track: how long a person may be lost and keep their id "
                   "(default 2)")
    p.add_argument("--fill", action="store_true", help="interpolate short gaps")
    p.add_argument("--max-gap", type=argtypes.positive_int, help="with --fill: longest gap to fill, in frames (default 5)")
    p.add_argument("--fix-swaps", action="store_true", help="repair left/right limb swaps")
    p.add_argument("--smooth", nargs="?", const="offline", choices=["offline", "one_euro"],
                   help="smooth jitter: offline (zero-phase, default) or one_euro (causal)")
    p.add_argument("--smooth-window", type=argtypes.positive_float, help="offline smoothing window in seconds (default 0.75; "
                   "shorter keeps fast motion sharper)")
    p.add_argument("--fps", type=argtypes.fps, help="resample to this frame rate (default: keep the file's)")
    p.add_argument("--plot", help="PNG of raw vs refined track of --plot-keypoint")
    p.add_argument("--plot-keypoint", default="right_wrist", help="keypoint name for --plot (default right_wrist)")
    _add_json_options(p)
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("keyframes", parents=[common], help="build a pose sequence from keyframe poses (JSON) with easing")
    p.add_argument("keyframes", help="keyframes JSON file, or the name of a built-in motion (wave)")
    p.add_argument("-o", "--output", required=True, help="poses (.json, .npz or folder)")
    p.add_argument("--fps", type=argtypes.fps, help="frame rate (default: the file's)")
    p.add_argument("--easing", default="ease_in_out", choices=["linear", "ease_in", "ease_out", "ease_in_out"],
                   help="how each move starts and stops (default ease_in_out)")
    _add_json_options(p)
    p.set_defaults(func=cmd_keyframes)

    from holdpose.refine.keyframes import PARTS

    p = sub.add_parser("edit", parents=[common], help="move, rotate or scale a body part over a time range",
                       description="Move, rotate or scale body parts of POSES in the frames between --start and "
                       f"--end. PART is one of: {', '.join(PARTS)}.")
    p.add_argument("poses", help="pose file")
    p.add_argument("-o", "--output", required=True, help="edited poses")
    p.add_argument("--move", nargs=3, action="append", metavar=("PART", "DX", "DY"), help="shift a part by pixels")
    p.add_argument("--rotate", nargs=2, action="append", metavar=("PART", "DEGREES"),
                   help="turn a part about its joint, counter-clockwise on screen (e.g. left_forearm 30)")
    p.add_argument("--scale", nargs=2, action="append", metavar=("PART", "FACTOR"), help="scale a part about its joint")
    p.add_argument("--start", type=argtypes.nonnegative_float, help="first second to edit (default: the beginning)")
    p.add_argument("--end", type=argtypes.nonnegative_float, help="second to stop editing (default: the end)")
    p.add_argument("--ramp", type=argtypes.nonnegative_float, default=0.0,
                   help="seconds over which the edit fades in and out (default 0)")
    _add_json_options(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("import-bvh", parents=[common], help="project a BVH motion-capture file to a 2-D pose sequence")
    p.add_argument("bvh", help="motion file (.bvh)")
    p.add_argument("-o", "--output", required=True, help="poses (.json, .npz or folder)")
    p.add_argument("--size", type=argtypes.size, default=(512, 512), help="canvas WxH (default 512x512)")
    p.add_argument("--azimuth", type=argtypes.finite_float, default=0.0,
                   help="camera azimuth in degrees (default 0: facing the figure)")
    p.add_argument("--elevation", type=argtypes.finite_float, default=0.0,
                   help="camera elevation in degrees (default 0: level)")
    p.add_argument("--focal-length", type=argtypes.positive_float, help="perspective camera focal length in pixels (default orthographic)")
    p.add_argument("--fps", type=argtypes.fps, help="resample to this frame rate (default: the file's)")
    _add_json_options(p)
    p.set_defaults(func=cmd_import_bvh)

    p = sub.add_parser("align", parents=[common], help="retarget poses to a reference character's body, size and placement")
    p.add_argument("poses", help="driving pose file")
    p.add_argument("--reference", required=True, help="the character: an image (pose detected) or a pose file")
    p.add_argument("-o", "--output", required=True, help="aligned poses")
    p.add_argument("--orientation-only", action="store_true",
                   help="keep only the driver's bone directions; every bone gets the reference's length")
    add_person_option(p, "align", default_help="all, each about their own root; the largest becomes the character")
    _add_json_options(p)
    p.set_defaults(func=cmd_align)

    from holdpose.animate.cli import add_generate_subcommand as add_generate
    from holdpose.animate.cli import add_subcommand as add_animate
    from holdpose.batch.cli import add_subcommand as add_batch
    from holdpose.render.people_cli import add_subcommand as add_people
    from holdpose.evaluate.cli import add_subcommands as add_evaluate
    from holdpose.studio.cli import add_subcommand as add_studio
    from holdpose.animate.train_cli import add_subcommand as add_train
    from holdpose.train.cli import add_subcommand as add_convert_weights
    from holdpose.animate.diffusion.posecrafter.cli import add_subcommand as add_tune

    add_animate(sub, common)
    add_generate(sub, common)
    add_convert_weights(sub, common)
    add_train(sub, common)
    add_tune(sub, common)
    add_batch(sub, common)
    add_evaluate(sub, [common])
    add_studio(sub, common)
    add_people(sub, common)

    p = sub.add_parser("demo", parents=[common], help="animate a photo that ships with scikit-image, with a built-in wave",
                       description="The whole job on material that ships with holdpose's dependencies: detect the "
                       "pose in a photo (scikit-image's astronaut, or --reference), take a built-in wave (or poses "
                       "extracted from --video), align it to the character, animate it with the warp puppet and "
                       "score how well the result holds the pose. Writes the animation, a side-by-side, a contact "
                       "sheet and an HTML report into OUTPUT.")
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it unwinds like Ctrl-C: every ``atomic_path``
    and writer removes its temporary files and the worker pool is stopped."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return _run(argv)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _run(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    from holdpose.quiet import native_noise_filtered

    with native_noise_filtered():
        code, message = _run_command(args)
    if message:  # after the filter is gone: the one line a user must see goes straight to stderr
        print(message, file=sys.stderr)
    return code


def _configure_logging(args) -> None:
    if not args.verbose:
        # diffusers logs "Couldn't connect to the Hub ... Will try to load from local cache" and the like
        # before holdpose can say in one line what is missing; -v shows the library's messages again.
        from holdpose.animate.diffusion.loading import quiet_library_logs

        quiet_library_logs()
    if args.quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level,
                        format="holdpose: %(levelname)s: %(message)s")


def _run_command(args) -> tuple[int, str | None]:
    """Run the subcommand: ``(exit code, the one line to print on stderr, or None)``."""
    try:
        args.func(args)
    except HoldposeError as err:
        return 2, f"holdpose: error: {err}"
    except OSError as err:  # outputs on a full, read-only or special file system; anything the OS refuses
        return 2, f"holdpose: error: {describe_os_error(err)}"
    except KeyboardInterrupt as err:
        # A subcommand whose work survives an interruption says where (args.on_interrupt).
        terminated = isinstance(err, Terminated)
        return (143 if terminated else 130), (f"holdpose: {'terminated' if terminated else 'interrupted'}; "
                                              f"{getattr(args, 'on_interrupt', 'no partial output was kept')}")
    return 0, None


if __name__ == "__main__":
    sys.exit(main())
