"""Extract a PoseSequence from a video, an image folder or an image.

Both cores are used by splitting the frames into contiguous chunks, one worker
process per chunk. Each worker decodes its own chunk (decoding is cheap next to
detection) and keeps MediaPipe's tracking mode within it, so frame order and
temporal coherence are kept; the parent only collects small keypoint arrays and
reports progress. Memory does not grow with the number of frames beyond those
arrays (about 1 KB per person per frame).

Frames where nobody is found stay in the sequence with every score 0, so the
sequence stays aligned with the video.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.io.video import FrameSource, header_slack
from holdpose.parallel import frame_chunks, run_chunks
from holdpose.progress import progress_bar
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)


@dataclass
class DetectorConfig:
    """What a worker needs to build its detector (picklable, no model inside)."""

    name: str = "mediapipe"
    max_people: int = 1
    options: dict = field(default_factory=dict)

    def build(self, *, video: bool):
        if self.name == "mediapipe":
            from holdpose.detect.mediapipe import MediaPipeDetector

            return MediaPipeDetector(max_people=self.max_people, video=video, **self.options)
        if self.name == "dwpose":
            from holdpose.detect.dwpose import DWPoseDetector

            return DWPoseDetector(**self.options)
        raise HoldposeError(f"unknown detector {self.name!r}; choose mediapipe or dwpose")


def _detect_chunk(path, short_side, fps, start, stop, config: DetectorConfig, progress):
    """Worker: detect people in frames [start, stop). Returns per-frame (keypoints, scores), and
    with several people also each one's clothes histogram (for tracking by appearance)."""
    from holdpose.detect.track import appearance_descriptors

    source = FrameSource(path, short_side=short_side, fps=fps, start=start, stop=stop)
    results = []
    with config.build(video=source.kind != "image") as detector:
        for frame in source:
            keypoints, scores = detector(frame)
            keypoints, scores = keypoints[: config.max_people], scores[: config.max_people]
            found = (keypoints.astype(np.float32), scores.astype(np.float32))
            if config.max_people > 1:
                found += (appearance_descriptors(frame, *found),)
            results.append(found)
            if progress is not None:
                progress.put(1)
    return start, results


def extract_poses(path: str | os.PathLike, *, detector: str | DetectorConfig = "mediapipe", max_people: int = 1,
                  short_side: int | None = None, fps: float | None = None, workers: int | None = None,
                  progress: bool = True, **detector_options) -> PoseSequence:
    """Detect poses in every frame of ``path``.

    Args:
        path: a video, a folder of images (in name order) or one image.
        detector: "mediapipe" (default, offline) or "dwpose" (give ``pose_model=`` path).
        max_people: most people per frame; people are then given track ids that are
            stable across frames (see :func:`holdpose.detect.track.assign_track_ids`).
        short_side: resize frames so their short side has this many pixels first.
            Keypoints are in pixels of the resized frames, and ``size`` says so.
        fps: frame rate for image folders (videos carry their own).
        workers: processes to use (default: one per core, fewer for short inputs).
        progress: show a progress bar on stderr.

    Returns:
        A COCO-WholeBody :class:`PoseSequence` with one frame per input frame.
    """
    config = detector if isinstance(detector, DetectorConfig) else DetectorConfig(detector, max_people, detector_options)
    source = FrameSource(path, short_side=short_side, fps=fps)
    total = source.num_frames
    chunks = frame_chunks(total, workers)
    logger.info("%s: %d frames %dx%d, %d worker(s)", path, total, *source.size, len(chunks))

    per_frame: list = [None] * total
    jobs = [(str(path), short_side, fps, a, b, config) for a, b in chunks]
    with progress_bar(total=total, desc="extract", enabled=progress) as bar:
        for start, results in run_chunks(_detect_chunk, jobs, bar):  # a worker's HoldposeError is raised here
            per_frame[start: start + len(results)] = results

    undecoded = total - next((t + 1 for t in range(total - 1, -1, -1) if per_frame[t] is not None), 0)
    if 0 < undecoded <= header_slack(total):  # the header counted frames that never decode
        per_frame = per_frame[:total - undecoded]
    for t, result in enumerate(per_frame):
        if result is None:
            raise HoldposeError(f"{path}: frame {t} was not decoded; is the file damaged?")
    return sequence_from_detections(per_frame, size=source.size, fps=source.fps, max_people=max_people)


def sequence_from_detections(detections: list[tuple], *, size: tuple[int, int], fps: float,
                             max_people: int) -> PoseSequence:
    """A PoseSequence from per-frame detections ``(keypoints [P_t, K, 2], scores [P_t, K])``,
    optionally with ``appearance [P_t, D]``: several people get track ids that are stable
    across frames (:func:`holdpose.detect.track.track_people`), one person id 0 where found."""
    frames = [(found[0], found[1], np.arange(len(found[1]), dtype=np.int32)) for found in detections]
    seq = PoseSequence.from_frames(frames, size=size, fps=fps)
    if max_people > 1:
        from holdpose.detect.track import track_people

        appearance = None
        if detections and all(len(found) > 2 for found in detections):
            appearance = np.zeros(seq.scores.shape[:2] + (detections[0][2].shape[-1],), np.float32)
            for t, found in enumerate(detections):
                appearance[t, :len(found[2])] = found[2]
        return track_people(seq, appearance=appearance)
    seq.track_ids[:] = np.where(seq.scores.max(-1) > 0, 0, -1)
    return seq




def detect_reference_pose(image: np.ndarray, what: str = "the reference image") -> tuple[np.ndarray, np.ndarray]:
    """The pose of the person in one photo (its main person, never a skeleton mixed from two:
    :func:`holdpose.detect.reference.find_reference_person`), with the default detector:
    ``keypoints [133, 2]`` in pixels and ``scores [133]``. Nobody found, or no torso in view, is a
    :class:`HoldposeError`."""
    from holdpose.detect.reference import find_reference_person

    person = find_reference_person(image, what=what)
    return person.keypoints, person.scores
