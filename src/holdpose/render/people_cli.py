"""``holdpose people POSES``: the tracks of a pose file, and a thumbnail strip to tell them apart."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from holdpose.people import Track, list_tracks, track_as_slot
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

THUMB = (96, 128)  # (width, height) px of one thumbnail
LABEL_WIDTH = 72


def add_subcommand(subparsers, common) -> None:
    p = subparsers.add_parser("people", parents=[common], help="list the people (tracks) of a pose file",
                              description="One line per track: id, frames present, mean box; and a PNG strip with "
                              "a row of thumbnails per track (their pose, over the video's pixels with --video). "
                              "Pass an id to --person on align, render, animate or evaluate.")
    p.add_argument("poses", help="pose file (.json, .npz or folder of .json)")
    p.add_argument("--strip", help="thumbnail strip PNG (default: POSES with .people.png)")
    p.add_argument("--video", help="the video the poses came from: thumbnails show its pixels")
    p.add_argument("--thumbnails", type=int, default=6, help="thumbnails per track (default 6)")
    p.set_defaults(func=cmd_people)


def cmd_people(args) -> None:
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import write_image

    seq = load_poses(args.poses)
    tracks = list_tracks(seq)
    strip_path = Path(args.strip) if args.strip else Path(args.poses).with_suffix(".people.png")
    write_image(strip_path, track_strip(seq, tracks, count=max(1, args.thumbnails), video=args.video))
    for track in tracks:
        x0, y0, x1, y1 = track.mean_box
        print(f"person {track.id}: {track.frames} frames ({track.first}-{track.last}), mean box "
              f"({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}) {x1 - x0:.0f}x{y1 - y0:.0f} px")
    print(f"{strip_path}: {len(tracks)} people in {seq.num_frames} frames")


def track_strip(seq: PoseSequence, tracks: list[Track], *, count: int = 6, video: str | None = None) -> np.ndarray:
    """``uint8 [rows * H, LABEL_WIDTH + count * W, 3]``: per track, ``count`` thumbnails at frames
    spread over the ones it is in, each its box (grown 20 %) with the pose drawn, labelled with its id."""
    import cv2

    from holdpose.render.openpose import overlay_pose_map, render_pose_maps

    picks = {}
    for tr in tracks:  # frames spread over the ones where the person is there
        present = np.flatnonzero(((seq.track_ids == tr.id) & (seq.scores > 0).any(-1)).any(1))
        picks[tr.id] = present[np.unique(np.linspace(0, len(present) - 1, count).round().astype(int))]
    wanted = sorted({int(t) for frames in picks.values() for t in frames})
    pictures = _frames(video, wanted, seq.size) if video and wanted else {}
    w, h = THUMB
    strip = np.zeros((max(len(tracks), 1) * h, LABEL_WIDTH + count * w, 3), np.uint8)
    for row, track in enumerate(tracks):
        one = track_as_slot(seq, track.id)
        cv2.putText(strip, f"id {track.id}", (6, row * h + h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (255, 255, 255), 1, cv2.LINE_AA)
        boxes = one.boxes(0.3)
        for col, t in enumerate(picks[track.id]):
            box = boxes[t, 0]
            if not np.isfinite(box).all():
                continue
            pose_map = next(render_pose_maps(one[int(t)]))
            if t in pictures:
                pose_map = overlay_pose_map(pictures[t], pose_map, alpha=0.8, dim=0.8)
            thumb = _crop(pose_map, box, THUMB)
            strip[row * h:(row + 1) * h, LABEL_WIDTH + col * w:LABEL_WIDTH + (col + 1) * w] = thumb
    return strip


def _crop(image: np.ndarray, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``box`` (grown 20 %, widened to ``size``'s aspect) cut from ``image`` and resized to ``size``."""
    import cv2

    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_h = max((y1 - y0), (x1 - x0) * size[1] / size[0], 8) * 0.6
    half_w = half_h * size[0] / size[1]
    matrix = np.array([[size[0] / (2 * half_w), 0, -(cx - half_w) * size[0] / (2 * half_w)],
                       [0, size[1] / (2 * half_h), -(cy - half_h) * size[1] / (2 * half_h)]], np.float64)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_AREA, borderValue=(0, 0, 0))


def _frames(video: str, wanted: list[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """The frames ``wanted`` of ``video``, resized to the poses' canvas."""
    import cv2

    from holdpose.io.video import FrameSource

    out, wanted_set = {}, set(wanted)
    for t, frame in enumerate(FrameSource(video, stop=max(wanted) + 1)):
        if t in wanted_set:
            out[t] = frame if frame.shape[1::-1] == tuple(size) else cv2.resize(frame, size)
    return out
