"""The ``animate`` subcommand, a thin layer over :func:`holdpose.animate.animate`.

The per-backend flags are derived from the backends' option dataclasses
(:mod:`holdpose.animate.options`) in :mod:`holdpose.animate.registry`: each option
becomes one flag, its help says which backends take it and their defaults, and a flag
given to a backend that does not take it is refused naming the backends that do. A flag
left out is not passed at all, so each backend keeps its own default.
"""

from __future__ import annotations

import argparse
import dataclasses

from holdpose import argtypes
from holdpose.animate.options import flag_name
from holdpose.errors import HoldposeError
from holdpose.people import add_person_option, person_choice

GENERAL_FLAGS = ("seed", "overwrite")  # animate()'s own keywords that have flags


def backend_fields(names: list[str] | None = None) -> dict[str, tuple[dataclasses.Field, list[str], dict[str, object]]]:
    """Option name -> (its field, the backends that take it, each one's default), for every
    option a flag offers, in declaration order; of the backends ``names`` (default: all)."""
    from holdpose.animate.registry import backend_names, get_backend

    out: dict[str, tuple[dataclasses.Field, list[str], dict[str, object]]] = {}
    for name in backend_names() if names is None else names:
        cls = get_backend(name)
        for options_class in (cls.model_options_class, cls.options_class):
            for field in dataclasses.fields(options_class):
                if not field.metadata.get("cli", True):
                    continue
                first, backends, defaults = out.setdefault(field.name, (field, [], {}))
                if flag_name(first) != flag_name(field):
                    raise TypeError(f"option {field.name} has two flags: {flag_name(first)}, {flag_name(field)}")
                backends.append(name)
                defaults[name] = field.default
    return out


def add_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``animate`` to ``subparsers`` (what ``add_subparsers`` returns)."""
    from holdpose.animate.base import Animator
    from holdpose.animate.registry import DEFAULT_BACKEND, backend_names, get_backend

    names = backend_names()
    p = subparsers.add_parser(
        "animate", parents=[common], help="make a reference character follow a pose sequence",
        description="Animate REFERENCE along POSES and write OUTPUT (.mp4), the poses it follows beside it "
        "(OUTPUT.poses.json, the target for `holdpose evaluate`), and its frames and manifest in OUTPUT.frames/ "
        "while it runs (kept for diffusion backends): the same command again continues an interrupted run. The "
        "poses are first aligned to the character in the reference (its bone lengths, size and placement) "
        f"unless --no-align. Backends: {', '.join(names)}; warp is the embedded CPU puppet (no weights), the "
        "others need `pip install 'holdpose[diffusion]'` and model weights (docs/diffusion.md).")
    others = "; ".join(f"{name}: {get_backend(name).reference_help}" for name in names
                       if get_backend(name).reference_help != Animator.reference_help)
    p.add_argument("reference", help=f"{Animator.reference_help}" + (f" ({others})" if others else ""))
    p.add_argument("poses", help="pose file (.json, .npz or folder of OpenPose .json)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    p.add_argument("--backend", choices=names, default=DEFAULT_BACKEND, help=f"default {DEFAULT_BACKEND}")
    p.add_argument("--no-align", action="store_true", help="the poses are already aligned to the reference")
    add_person_option(p, "animate", default_help="all; the warp puppet follows the first slot")
    p.add_argument("--side-by-side", help="also write pose map | overlay | frame to this video")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="seed (default 0): same seed and inputs, same frames")
    p.add_argument("--overwrite", action="store_true", help="start over when OUTPUT.frames/ holds another run")
    p.add_argument("--keep-frames", action=argparse.BooleanOptionalAction, default=None,
                   help="keep OUTPUT.frames/ after encoding (default: kept for diffusion backends only)")

    v = p.add_argument_group("closed-loop adherence: judge every frame as it is made, make drifting ones again")
    v.add_argument("--verify", action="store_true", help="re-detect the pose on each frame and compare it with its "
                   "target; a frame that drifts is made again (verdicts in OUTPUT.verdicts.jsonl)")
    v.add_argument("--max-retries", type=retry_count, default=2, help="tries after the first for a drifting frame "
                   "(default 2; later tries use a stronger control)")
    v.add_argument("--min-pck", type=float, default=0.9, help="a frame drifts below this PCK@0.05 of the body "
                   "(default 0.9)")
    v.add_argument("--max-limb-error", type=float, help="a frame drifts when a limb bone is off by more degrees "
                   "(default: not judged)")

    group = p.add_argument_group("backend options (each names the backends that take it)")
    for name, (field, backends, defaults) in backend_fields().items():
        group.add_argument(flag_name(field), dest=name, default=None, **argparse_kwargs(field, backends, defaults))
    p.set_defaults(func=cmd_animate)


def add_generate_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``generate`` (one image from one pose and a prompt) to ``subparsers``."""
    from holdpose.animate.api import single_image_backends

    names = single_image_backends()
    default = "stablepose" if "stablepose" in names else names[0]
    p = subparsers.add_parser(
        "generate", parents=[common], help="make one image from a pose and a prompt",
        description="Generate OUTPUT (.png or .jpg) showing the pose of one frame of POSES on its canvas, from a "
        f"text prompt, with a diffusion backend ({', '.join(names)}; needs `pip install 'holdpose[diffusion]'` and "
        "model weights, docs/diffusion.md and docs/stable-pose.md).")
    p.add_argument("poses", help="pose file (.json, .npz or folder of OpenPose .json)")
    p.add_argument("-o", "--output", required=True, help="the image (.png or .jpg)")
    p.add_argument("--backend", choices=names, default=default, help=f"default {default}")
    p.add_argument("--frame", type=int, default=0, help="which frame of POSES (default 0)")
    p.add_argument("--reference", help="image prompt for an --ip-adapter (resized to the canvas)")
    add_person_option(p, "draw")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="seed (default 0)")
    group = p.add_argument_group("backend options (each names the backends that take it)")
    for name, (field, backends, defaults) in backend_fields(names).items():
        group.add_argument(flag_name(field), dest=name, default=None, **argparse_kwargs(field, backends, defaults))
    p.set_defaults(func=cmd_generate, single_image_backends=names)


def cmd_generate(args) -> None:
    from holdpose.animate.api import generate_image

    options = backend_options(args, args.single_image_backends)
    image = generate_image(args.poses, args.output, backend=args.backend, frame=args.frame, reference=args.reference,
                           person=args.person, seed=args.seed, **options)
    print(f"{args.output}: {image.shape[1]}x{image.shape[0]} ({args.backend}, frame {args.frame}, seed {args.seed})")


def retry_count(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 0 <= value <= 20:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of retries in 0..20")
    return value


person_slot = person_choice  # --person's type, as `holdpose batch` imports it: a track id or largest/longest/all


def argparse_kwargs(field: dataclasses.Field, backends: list[str], defaults: dict) -> dict:
    meta = field.metadata
    kwargs = {key: meta[key] for key in ("type", "action", "choices", "metavar") if meta.get(key) is not None}
    if isinstance(field.default, bool) and "action" not in kwargs:
        kwargs["action"] = "store_true"
    elif "choices" not in kwargs and "metavar" not in kwargs:
        kwargs["metavar"] = (meta.get("flag") or field.name).upper()
    where = backends[0] if len(backends) == 1 else ", ".join(backends)
    shown = {b: d for b, d in defaults.items() if d not in (None, "", False)}
    if len(set(map(repr, shown.values()))) > 1:
        default = "; default " + ", ".join(f"{b} {d}" for b, d in shown.items())
    elif shown and "(default" not in meta["help"]:
        default = f"; default {next(iter(shown.values()))}"
    else:
        default = ""
    kwargs["help"] = f"{meta['help']} [{where}{default}]"
    return kwargs


def backend_options(args, names: list[str] | None = None) -> dict:
    """The backend options given on the command line, as :func:`~holdpose.animate.animate`
    keywords; a flag of another backend is an error naming the backends that take it.
    ``names``: the backends the command offers flags for (default: all)."""
    from holdpose.animate.registry import get_backend

    cls = get_backend(args.backend)
    taken = set(cls.model_options_class.names()) | set(cls.options_class.names())
    options, wrong = {}, []
    for name, (field, backends, _) in backend_fields(names).items():
        value = getattr(args, name, None)
        if value in (None, False):
            continue
        if name not in taken:
            wrong.append((flag_name(field), backends))
            continue
        if isinstance(value, list) and len(value) == 1 and isinstance(field.default, (str, float, int)):
            value = value[0]  # one --controlnet or --controlnet-scale: the scalar the API takes
        options[name] = value
    if wrong:
        flags = "; ".join(f"{flag} is for {', '.join(backends)}" for flag, backends in wrong)
        raise HoldposeError(f"{flags}, not the {args.backend} backend")
    return options


def cmd_animate(args) -> None:
    from holdpose.animate import animate
    from holdpose.animate.api import frames_dir_for

    options = backend_options(args)
    verify = _verify_settings(args)
    frames_dir = frames_dir_for(args.output)
    args.on_interrupt = (f"the frames made so far are kept in {frames_dir}/; run the same command again to "
                         "continue from there")
    result = animate(args.reference, args.poses, args.output, backend=args.backend, align=not args.no_align,
                     person=args.person, seed=args.seed, overwrite=args.overwrite, keep_frames=args.keep_frames,
                     side_by_side=args.side_by_side, verify=verify, progress=not args.quiet, **options)
    resumed = f" ({result.resumed_from} resumed)" if result.resumed_from else ""
    kept = f"; frames and manifest in {result.frames_dir}/" if result.frames_dir else ""
    print(f"{result.video_path}: {result.num_frames} frames{resumed}, {result.size[0]}x{result.size[1]}, "
          f"{result.fps:g} fps{kept}; poses: {result.poses_path}")
    if result.verdicts_path is not None:
        from holdpose.evaluate.closed_loop import closed_loop_summary, read_records

        summary = closed_loop_summary(read_records(result.verdicts_path), result.num_frames)
        n = summary["counts"]
        print(f"verified: {n['held']} frames held their pose, {n['regenerated']} were made again, "
              f"{n['drifting']} still drift ({summary['tries']} tries); verdicts: {result.verdicts_path}")


def _verify_settings(args):
    """The closed-loop settings of ``--verify``, or None; its flags without it are refused."""
    given = [flag for flag, value, default in (("--max-retries", args.max_retries, 2), ("--min-pck", args.min_pck, 0.9),
                                               ("--max-limb-error", args.max_limb_error, None)) if value != default]
    if not args.verify:
        if given:
            raise HoldposeError(f"{', '.join(given)}: only with --verify")
        return None
    from holdpose.evaluate.closed_loop import VerifySettings
    from holdpose.evaluate.verdicts import Thresholds

    return VerifySettings(Thresholds(min_pck=args.min_pck, max_limb_error=args.max_limb_error),
                          max_retries=args.max_retries)
