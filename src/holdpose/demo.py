"""``holdpose demo``: the whole job on material that ships with the dependencies.

By default the reference is scikit-image's astronaut photo (Eileen Collins, NASA,
public domain), a head-and-shoulders portrait, and the motion is the waving
keyframes that ship with holdpose. With ``--reference`` and ``--video`` it runs on
the user's own photo and driving video instead. Steps: detect the reference pose,
get the driving poses (keyframes, or extracted and smoothed from the video), align
them to the character, animate with the embedded warp animator, and check pose
adherence by re-detecting the poses in the result.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def load_demo_reference() -> np.ndarray:
    """The bundled reference photo, ``uint8 [512, 512, 3]`` RGB."""
    from skimage import data

    return data.astronaut()


def run_demo(output: str | Path, *, reference: str | None = None, video: str | None = None,
             progress: bool = True) -> dict[str, Path]:
    """Run the demo into the folder ``output``; returns the files it wrote by name."""
    output = Path(output)
    created = not output.exists()
    try:
        return _run_demo(output, reference, video, progress)
    except BaseException:
        if created:  # a failed or interrupted demo leaves no half-filled folder behind
            shutil.rmtree(output, ignore_errors=True)
        raise


def _run_demo(output: Path, reference: str | None, video: str | None, progress: bool) -> dict[str, Path]:
    from holdpose.animate import animate
    from holdpose.animate.character import Character
    from holdpose.evaluate.report import write_report
    from holdpose.evaluate.run import evaluate_video
    from holdpose.io.video import FrameSource, read_image, write_image
    from holdpose.render.openpose import render_pose_maps

    reference_image = read_image(reference) if reference else load_demo_reference()
    if video:
        FrameSource(video)  # a bad video fails here, before anything is made
    output.mkdir(parents=True, exist_ok=True)
    files = {name: output / filename for name, filename in (
        ("animation", "animation.mp4"), ("side_by_side", "side_by_side.mp4"), ("contact_sheet", "contact_sheet.png"),
        ("poses", "animation.poses.json"), ("reference_pose_map", "reference_pose_map.png"),
        ("report", "report/index.html"))}

    # 1. the character: its photo, rigged as a puppet (pose and segmentation)
    character = Character(reference_image)
    character.rig  # rigged first, so the reference map, alignment and puppet share its pose
    write_image(files["reference_pose_map"], next(render_pose_maps(character.pose_sequence())))

    # 2. the motion: built-in keyframes, or poses extracted from the user's video
    driving = _driving_poses(video, progress)

    # 3. animate: the motion gets the character's body and canvas, the puppet follows it
    result = animate(character, driving, files["animation"], side_by_side=files["side_by_side"],
                     contact_sheet=files["contact_sheet"], progress=progress)

    # 4. does the result hold the pose? Re-detect it on the frames, score against the poses it followed
    evaluation = evaluate_video(result.video_path, target=result.poses_path, detector="mediapipe", worst_frames=2,
                                progress=progress)
    write_report(evaluation, files["report"].parent)
    for name, path in files.items():
        print(f"{name:>18}: {path}")
    m = evaluation.metrics
    print(f"pose adherence (poses re-detected on the animation): PCK@0.05 {m['pck@0.05']:.3f}, PCK@0.1 "
          f"{m['pck@0.1']:.3f}, OKS AP {m['oks_ap']:.3f}; flicker {m['flicker']:.2f}; "
          f"metrics.json beside the report")
    return files


def _driving_poses(video: str | None, progress: bool):
    from holdpose.refine.keyframes import load_builtin_motion

    if not video:
        return load_builtin_motion("wave")
    from holdpose.detect.extract import extract_poses
    from holdpose.refine.gaps import fill_gaps
    from holdpose.refine.smooth import smooth

    raw = extract_poses(video, short_side=512, progress=progress)
    return smooth(fill_gaps(raw), method="offline")
