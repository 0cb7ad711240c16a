"""The ``animate`` subcommand: every backend behind one set of flags.

``holdpose.cli`` adds it with ``add_subcommand(subparsers, common)``. The flags map onto
the Python API through :data:`INIT_ARGS` (constructor arguments of the animator) and
:data:`CALL_OPTIONS` (options of :func:`holdpose.animate.resume.run_animation`, passed on
to the animator's call); ``--init``, ``--anchor-reference``, ``--seed`` and ``--overwrite``
are handled in :func:`run_diffusion_backend`. A flag left out is not passed at all,
so each backend keeps its own default (AnimateDiff's 25 steps, say).

Output: ``-o out.mp4``, and beside it ``out.poses.json``, the (aligned) poses the
animation follows: the ``--target`` of ``holdpose evaluate``. The diffusion backends keep
their frames and manifest in ``out.frames/`` (a rerun after an interruption continues
there), then encode ``out.mp4`` from them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from holdpose.argtypes import positive_int
from holdpose.errors import HoldposeError

DIFFUSION_BACKENDS = ("controlnet", "animatediff")

# flag dest -> keyword of the animator's constructor
INIT_ARGS = {"model": "model", "model_config": "model_config", "controlnet": "controlnet",
             "motion_adapter": "motion_adapter", "ip_adapter": "ip_adapter", "ip_adapter_weight": "ip_adapter_weight",
             "device": "device", "dtype": "dtype", "vae_slicing": "vae_slicing", "vae_tiling": "vae_tiling",
             "cpu_offload": "cpu_offload", "allow_pickle": "allow_pickle"}
# flag dest -> option of the animator's call
CALL_OPTIONS = {"prompt": "prompt", "negative_prompt": "negative_prompt", "steps": "num_inference_steps",
                "guidance": "guidance_scale", "controlnet_scale": "controlnet_scale",
                "control_images": "control_images", "ip_adapter_scale": "ip_adapter_scale", "strength": "strength",
                "batch_size": "batch_size", "window": "window", "stride": "stride", "fusion": "fusion",
                "resolution": "resolution", "scheduler": "scheduler", "decode_chunk_size": "decode_chunk_size"}
ANIMATEDIFF_ONLY = ("motion_adapter", "window", "stride", "fusion", "anchor_reference")
CONTROLNET_ONLY = ("batch_size", "init", "strength")


def add_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``animate`` to ``subparsers`` (what ``add_subparsers`` returns)."""
    from holdpose.animate.diffusion_common import SCHEDULERS

    p = subparsers.add_parser(
        "animate", parents=[common], help="make a reference character follow a pose sequence",
        description="Animate REFERENCE along POSES. The poses are first aligned to the character in the reference "
        "(its bone lengths, size and placement) unless --no-align. Backends: warp (embedded CPU puppet, no "
        "weights), controlnet (Stable Diffusion + ControlNet, frame by frame), animatediff (AnimateDiff + "
        "ControlNet over the whole clip).")
    p.add_argument("reference", help="the character's photo")
    p.add_argument("poses", help="pose file (.json, .npz or folder of OpenPose .json)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    p.add_argument("--backend", choices=("warp",) + DIFFUSION_BACKENDS, default="warp",
                   help="warp: embedded CPU puppet, no weights (default); controlnet, animatediff: diffusion")
    p.add_argument("--no-align", action="store_true", help="the poses are already aligned to the reference")
    p.add_argument("--person", type=int, default=0, help="warp: person slot to animate (default 0)")
    p.add_argument("--side-by-side", help="also write pose map | overlay | frame to this video")

    d = p.add_argument_group("diffusion backends (need `pip install 'holdpose[diffusion]'` and model weights)")
    d.add_argument("--model", help="base SD 1.5 model: Hugging Face id, diffusers folder or .safetensors file "
                   "(default stable-diffusion-v1-5/stable-diffusion-v1-5)")
    d.add_argument("--model-config", help="diffusers folder or id with the configs of a single-file --model")
    d.add_argument("--controlnet", action="append",
                   help="ControlNet id, folder or .safetensors; repeat for several (default "
                   "lllyasviel/control_v11p_sd15_openpose)")
    d.add_argument("--controlnet-scale", type=float, action="append",
                   help="conditioning scale; once for all, or once per --controlnet")
    d.add_argument("--control-images", action="append",
                   help="control images per --controlnet ('pose' for the pose maps; a video or image folder)")
    d.add_argument("--motion-adapter", help="animatediff: motion adapter id or path "
                   "(default guoyww/animatediff-motion-adapter-v1-5-2)")
    d.add_argument("--ip-adapter", help="IP-Adapter id, folder or weight file: holds the reference's appearance")
    d.add_argument("--ip-adapter-weight", help="weight file inside an --ip-adapter id or folder")
    d.add_argument("--ip-adapter-scale", type=float, help="IP-Adapter weight (default 0.6)")
    d.add_argument("--prompt", help="text prompt")
    d.add_argument("--negative-prompt", help="negative prompt")
    d.add_argument("--steps", type=positive_int, help="denoising steps (controlnet 20, animatediff 25)")
    d.add_argument("--guidance", type=float, help="classifier-free guidance scale (default 7.5; <= 1: off)")
    d.add_argument("--seed", type=int, default=0, help="seed (default 0): same seed and inputs, same frames")
    d.add_argument("--init", help="controlnet: start from these frames (image-to-image): 'warp' for the embedded "
                   "animator's, or a video / image folder")
    d.add_argument("--strength", type=float, help="controlnet with --init: part of the denoising redone (default 0.75)")
    d.add_argument("--batch-size", type=positive_int, help="controlnet: frames denoised together (default 4)")
    d.add_argument("--window", type=positive_int, help="animatediff: frames per window (default 16)")
    d.add_argument("--stride", type=positive_int, help="animatediff: frames between window starts (default 8)")
    d.add_argument("--fusion", choices=["pyramid", "flat", "freenoise"], help="animatediff: window fusion")
    d.add_argument("--anchor-reference", action="store_true",
                   help="animatediff: put the reference (and its pose) in front of every window")
    d.add_argument("--resolution", type=positive_int, help="short side to generate at (default: the canvas)")
    d.add_argument("--scheduler", choices=sorted(SCHEDULERS), help="sampler (controlnet unipc, animatediff ddim)")
    d.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when there is a GPU)")
    d.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="default float16 on GPUs, float32 on CPU")
    d.add_argument("--decode-chunk-size", type=positive_int, help="frames the VAE decodes at once (default 8)")
    d.add_argument("--vae-slicing", action="store_true", help="decode one frame at a time (less memory)")
    d.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less memory at large sizes)")
    d.add_argument("--cpu-offload", choices=["model", "sequential"], help="keep models on the CPU between uses")
    d.add_argument("--allow-pickle", action="store_true", help="allow pickled checkpoints (.ckpt/.bin): trusted ones")
    d.add_argument("--overwrite", action="store_true", help="start over when OUTPUT.frames/ holds another run")
    p.set_defaults(func=cmd_animate)


def cmd_animate(args) -> None:
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import read_image

    reference = read_image(args.reference)
    poses = load_poses(args.poses)
    if args.backend == "warp":
        _refuse_diffusion_flags(args)
        _run_warp(args, reference, poses)
    else:
        run_diffusion_backend(args, reference, poses)


def _refuse_diffusion_flags(args) -> None:
    given = [name for name in list(INIT_ARGS) + list(CALL_OPTIONS) + ["init", "anchor_reference", "overwrite"]
             if getattr(args, name, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise HoldposeError(f"{flags}: diffusion flags; the warp backend takes none (add --backend controlnet or "
                            "--backend animatediff)")


def _run_warp(args, reference: np.ndarray, poses) -> None:
    from holdpose.animate.output import write_animation
    from holdpose.animate.warp import WarpAnimator, rig_reference

    rig = rig_reference(reference)
    if not args.no_align:
        poses = _align(poses, reference, rig.points, rig.present.astype(np.float32))
    frames = WarpAnimator(rig)(reference, poses, person=args.person)
    count = write_animation(frames, poses, args.output, side_by_side=args.side_by_side, progress=not args.quiet)
    used = _save_used_poses(poses, Path(args.output))
    print(f"{args.output}: {count} frames, {poses.size[0]}x{poses.size[1]}, {poses.fps:g} fps; poses: {used}")


def _save_used_poses(poses, output: Path) -> Path:
    """The poses the animation follows (aligned), beside it: the target for `holdpose evaluate`."""
    from holdpose.io.posefile import save_poses

    path = output.with_suffix(".poses.json")
    save_poses(poses, path, confidences="real")
    return path


def _align(poses, reference: np.ndarray, keypoints: np.ndarray, scores: np.ndarray):
    from holdpose.refine.align import align_to_reference

    aligned, _ = align_to_reference(poses, keypoints, scores, reference_size=(reference.shape[1], reference.shape[0]))
    return aligned


def _reference_pose(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from holdpose.detect.mediapipe import MediaPipeDetector

    with MediaPipeDetector() as detector:
        keypoints, scores = detector(reference)
    if len(scores) == 0:
        raise HoldposeError("nobody found in the reference image, so the poses cannot be aligned to it; put them on "
                            "its canvas yourself (holdpose align --reference POSE_FILE) and pass --no-align")
    return keypoints[0], scores[0]


def diffusion_arguments(args) -> tuple[dict, dict]:
    """``(constructor keywords, call options)`` from the parsed flags; flags not given are left out."""
    wrong = ANIMATEDIFF_ONLY if args.backend == "controlnet" else CONTROLNET_ONLY
    given = [name for name in wrong if getattr(args, name, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        other = "animatediff" if args.backend == "controlnet" else "controlnet"
        raise HoldposeError(f"{flags}: for the {other} backend, not {args.backend}")
    init = {key: getattr(args, dest) for dest, key in INIT_ARGS.items() if getattr(args, dest) not in (None, False)}
    options = {key: getattr(args, dest) for dest, key in CALL_OPTIONS.items() if getattr(args, dest) is not None}
    if len(options.get("controlnet_scale", [])) == 1:
        options["controlnet_scale"] = options["controlnet_scale"][0]
    return init, options


def diffusion_animator_class(backend: str):
    if backend == "controlnet":
        from holdpose.animate.controlnet import ControlNetAnimator

        return ControlNetAnimator
    if backend == "animatediff":
        from holdpose.animate.animatediff import AnimateDiffAnimator

        return AnimateDiffAnimator
    raise HoldposeError(f"unknown diffusion backend {backend!r}; choose one of {', '.join(DIFFUSION_BACKENDS)}")


def run_diffusion_backend(args, reference: np.ndarray, poses) -> None:
    """Run a diffusion backend for ``holdpose animate``: check the options, load the models,
    align the poses, make the frames (resumably), encode the video."""
    from holdpose.animate.output import write_animation
    from holdpose.animate.resume import FRAME_NAME, run_animation
    from holdpose.io.video import read_image
    from holdpose.sequence import PoseSequence

    init, options = diffusion_arguments(args)
    output = Path(args.output)
    if output.suffix.lower() != ".mp4":
        raise HoldposeError(f"{output}: the diffusion backends write an .mp4 (their frames go to "
                            f"{output.with_suffix('.frames')}/)")
    cls = diffusion_animator_class(args.backend)
    if not args.verbose:
        # diffusers logs "Couldn't connect to the Hub ... Will try to load from local cache" and the like
        # before holdpose can say in one line what is missing; -v shows the library's messages again.
        from holdpose.animate.diffusion_common import import_diffusers

        import_diffusers().utils.logging.set_verbosity_error()
    # Bad options fail here, not after minutes of loading models (init and the anchor pose are checked later).
    probe = dict(options, init=args.init) if args.backend == "controlnet" else options
    cls.options_class.from_kwargs(probe, cls.name).check(len(args.controlnet or [None]), bool(args.ip_adapter))
    animator = cls(**init)
    rig = None
    if args.init == "warp":
        from holdpose.animate.warp import WarpAnimator, rig_reference

        rig = rig_reference(reference)
        options["init"] = WarpAnimator(rig)
    elif args.init is not None:
        options["init"] = args.init
    if not args.no_align or args.anchor_reference:
        keypoints, scores = (rig.points, rig.present.astype(np.float32)) if rig else _reference_pose(reference)
        if not args.no_align:
            poses = _align(poses, reference, keypoints, scores)
        if args.anchor_reference:
            options["reference_pose"] = PoseSequence.from_frames(
                [(keypoints[None], scores[None], np.zeros(1, np.int32))], layout=poses.layout, size=poses.size,
                fps=poses.fps)

    frames_dir = output.with_suffix(".frames")
    args.on_interrupt = (f"the frames made so far are kept in {frames_dir}/; run the same command again to "
                         "continue from there")
    run = run_animation(animator, reference, poses, frames_dir, seed=args.seed, overwrite=args.overwrite,
                        video=False, progress=not args.quiet, **options)
    frames = (read_image(run.frames_dir / FRAME_NAME.format(i)) for i in range(run.num_frames))
    count = write_animation(frames, poses, output, side_by_side=args.side_by_side, progress=not args.quiet)
    used = _save_used_poses(poses, output)
    resumed = f" ({run.resumed_from} resumed)" if run.resumed_from else ""
    print(f"{output}: {count} frames{resumed}, {poses.size[0]}x{poses.size[1]}, {poses.fps:g} fps; "
          f"frames and manifest in {frames_dir}/; poses: {used}")
