"""The ``studio`` subcommand: open a pose file in the browser.

``holdpose.cli`` adds it with ``add_subcommand(subparsers, common)``.
"""

from __future__ import annotations

import argparse
import logging

from holdpose.argtypes import port

logger = logging.getLogger(__name__)


def add_subcommand(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``studio`` to ``subparsers`` (what ``add_subparsers`` returns)."""
    p = subparsers.add_parser(
        "studio", parents=[common], help="see and edit a pose sequence in the browser",
        description="Serve a local page (127.0.0.1, a random token in the URL) that draws POSES over their video, "
        "with a timeline, dragging, left/right swaps, keyframe interpolation, undo, save and export. Stop with Ctrl+C.")
    p.add_argument("poses", help="pose file (.json, .npz or folder of OpenPose .json)")
    p.add_argument("--video", help="the video the poses come from (drawn under them)")
    p.add_argument("--animation", help="an animation made from the poses (shown beside them)")
    p.add_argument("--reference", help="the animation's reference image")
    p.add_argument("--metrics", help="an evaluation's metrics.json: per-frame adherence on the timeline")
    p.add_argument("--save-as", help="where 'save as' writes (suffix .json or .npz from the chosen format; "
                   "default POSES-stem.edited beside POSES)")
    p.add_argument("--export", help="pose-map video 'export' writes (default POSES-stem.maps.mp4)")
    p.add_argument("--port", type=port, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL")
    p.set_defaults(func=run)


def run(args) -> None:
    import webbrowser

    from holdpose.studio.server import Studio, StudioServer

    studio = Studio(args.poses, video=args.video, animation=args.animation, reference=args.reference,
                    metrics=args.metrics, save_as=args.save_as, export=args.export)
    server = StudioServer(studio, args.port)  # listening from here on
    args.on_interrupt = "edits not saved from the page were dropped"
    print(f"holdpose studio: {server.url}  (Ctrl+C stops)", flush=True)
    if not args.no_browser and not _open_browser(webbrowser, server.url):
        logger.warning("no browser found; open the URL above")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        studio.close()


def _open_browser(webbrowser, url: str) -> bool:
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
