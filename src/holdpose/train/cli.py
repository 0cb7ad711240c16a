"""The ``convert-weights`` subcommand. ``holdpose.cli`` adds it with ``add_subcommand(subparsers, common)``.

Torch is imported only when the command runs, so ``holdpose --help`` stays fast.
"""

from __future__ import annotations

import argparse


def add_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``convert-weights`` to ``subparsers`` (what ``add_subparsers`` returns)."""
    from holdpose.train.convert import FORMATS

    p = subparsers.add_parser(
        "convert-weights", parents=[common], help="convert a third-party checkpoint to safetensors",
        description="Convert a published checkpoint (.pth/.ckpt, or .safetensors) to one .safetensors file with "
        "holdpose's (diffusers') key names. Pickled files run code when loaded: they are read only with "
        "--allow-pickle. See docs/training.md.")
    p.add_argument("input", help="checkpoint to convert (.pth, .ckpt, .bin, .safetensors)")
    p.add_argument("output", help="the converted file (.safetensors)")
    p.add_argument("--format", choices=sorted(FORMATS), default="plain",
                   help="key layout of the input: plain (keep names; DisPose, MimicMotion), ldm-controlnet "
                   "(original ControlNet layout), ldm-stablepose (Stable-Pose's final.pth). Default: plain")
    p.add_argument("--table", help="JSON list of [old prefix, new prefix] renaming rows, applied before --format's")
    p.add_argument("--strip-prefix", help="remove this prefix from every key first (e.g. 'model.')")
    p.add_argument("--drop-unmatched", action="store_true", help="drop keys no renaming row matches")
    p.add_argument("--verify", metavar="MODEL_DIR",
                   help="a diffusers model folder (its config.json): the result must load into it strictly")
    p.add_argument("--allow-pickle", action="store_true", help="read a pickled checkpoint (only from a source you "
                   "trust; loaded with weights_only=True whenever the file allows)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run)


def run(args) -> None:
    from holdpose.train.convert import convert_weights, expected_from_config

    expected = expected_from_config(args.verify) if args.verify else None
    tensors = convert_weights(args.input, args.output, format=args.format, table_file=args.table,
                              strip_prefix=args.strip_prefix, drop_unmatched=args.drop_unmatched, expected=expected,
                              allow_pickle=args.allow_pickle, overwrite=args.overwrite)
    count = sum(t.numel() for t in tensors.values())
    checked = ", fits " + args.verify if args.verify else ""
    print(f"{args.output}: {len(tensors)} tensors, {count:,} parameters ({args.format}){checked}")
