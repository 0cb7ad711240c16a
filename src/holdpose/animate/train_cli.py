"""``holdpose train SYSTEM ...``: one subcommand per registered trainer (:mod:`holdpose.animate.trainers`)."""

from __future__ import annotations

import argparse
import importlib

from holdpose.animate.trainers import TRAINERS


def add_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``train`` to ``subparsers``, with one sub-command per trainer (none: no ``train`` command)."""
    if not TRAINERS:
        return
    p = subparsers.add_parser("train", parents=[common], help="train a research system's adapter on your data",
                              description="Train the trainable part of a research system (the base model stays "
                              "frozen); interrupted runs resume from the last checkpoint in the output folder. "
                              "See docs/training.md.")
    systems = p.add_subparsers(dest="system", required=True, metavar="SYSTEM")
    for name, module_name in TRAINERS.items():
        module = importlib.import_module(module_name)
        q = systems.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(q)
        q.set_defaults(func=module.run)
