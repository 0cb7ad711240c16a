"""``holdpose demo``: the whole job on material that ships with the dependencies.

By default the reference is scikit-image's astronaut photo (Eileen Collins, NASA,
public domain). It extracts the reference pose, writes it as OpenPose JSON and
draws the pose map and an overlay, so a new user sees every file type holdpose makes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def load_demo_reference() -> np.ndarray:
    """The bundled reference photo, ``uint8 [512, 512, 3]`` RGB."""
    from skimage import data

    return data.astronaut()


def overlay(image: np.ndarray, pose_map: np.ndarray) -> np.ndarray:
    """The pose map drawn over a dimmed copy of ``image``, for checking by eye."""
    drawn = pose_map.any(-1, keepdims=True)
    return np.where(drawn, pose_map, (image * 0.5).astype(np.uint8))


def run_demo(output: str | Path, *, reference: str | None = None, video: str | None = None,
             progress: bool = True) -> dict[str, Path]:
    from holdpose.detect.extract import extract_poses
    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.errors import HoldposeError
    from holdpose.io.posefile import save_poses
    from holdpose.io.video import read_image, write_image
    from holdpose.render.openpose import render_pose_maps
    from holdpose.sequence import PoseSequence

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    image = read_image(reference) if reference else load_demo_reference()
    with MediaPipeDetector() as detector:
        keypoints, scores = detector(image)
    if len(scores) == 0:
        raise HoldposeError("nobody found in the reference photo; use a photo where one person is clearly visible")
    ref = PoseSequence.from_frames([(keypoints, scores, np.zeros(1, np.int32))], size=(image.shape[1], image.shape[0]))
    files = {"reference": output / "reference.png", "reference_pose": output / "reference_pose.json",
             "pose_map": output / "reference_pose_map.png", "overlay": output / "reference_overlay.png"}
    write_image(files["reference"], image)
    save_poses(ref, files["reference_pose"])
    pose_map = next(render_pose_maps(ref, "openpose_full"))
    write_image(files["pose_map"], pose_map)
    write_image(files["overlay"], overlay(image, pose_map))
    if video:
        files["video_poses"] = output / "video_poses.json"
        files["video_pose_maps"] = output / "video_pose_maps.mp4"
        seq = extract_poses(video, short_side=512, progress=progress)
        save_poses(seq, files["video_poses"])
        from holdpose.io.video import VideoWriter

        with VideoWriter(files["video_pose_maps"], fps=seq.fps, size=seq.size) as writer:
            for frame in render_pose_maps(seq):
                writer.write(frame)
    for name, path in files.items():
        print(f"{name:>16}: {path}")
    return files
