"""Writing animations: the video, an optional side-by-side with the pose maps, a contact sheet.
(Whether the result holds the pose is :mod:`holdpose.evaluate`'s job.)"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from holdpose.io.video import VideoWriter, write_image
from holdpose.progress import progress_bar
from holdpose.render.openpose import overlay_pose_map, render_pose_maps
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)


def write_animation(frames: Iterable[np.ndarray], poses: PoseSequence, output: str | Path, *,
                    side_by_side: str | Path | None = None, contact_sheet: str | Path | None = None,
                    progress: bool = True, sheet_frames: int = 8) -> int:
    """Encode ``frames`` (one per pose frame) to ``output``; optionally also a side-by-side video
    (pose map | overlay | frame) and a contact sheet PNG of ``sheet_frames`` evenly spaced frames.
    Streams: only the sheet's few frames are kept. Returns the number of frames written."""
    size = poses.size
    wanted = set(np.linspace(0, poses.num_frames - 1, min(sheet_frames, poses.num_frames)).round().astype(int))
    sheet = []
    writers = [VideoWriter(output, fps=poses.fps, size=size)]
    if side_by_side:
        writers.append(VideoWriter(side_by_side, fps=poses.fps, size=(3 * size[0], size[1])))
    maps = render_pose_maps(poses, "openpose_full")
    count = 0
    try:
        for t, (frame, pose_map) in enumerate(progress_bar(zip(frames, maps), total=poses.num_frames,
                                                            desc="animate", enabled=progress)):
            writers[0].write(frame)
            if side_by_side:
                writers[1].write(np.concatenate([pose_map, overlay_pose_map(frame, pose_map, dim=0.5), frame], axis=1))
            if t in wanted:
                sheet.append(np.concatenate([frame, overlay_pose_map(frame, pose_map, dim=0.5)], axis=0))
            count += 1
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.close()
    if contact_sheet and sheet:
        write_image(contact_sheet, np.concatenate(sheet, axis=1))
    return count
