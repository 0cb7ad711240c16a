"""The reference character of an animation: its photo, and what is found in it once.

Backends ask for what they need and each thing is computed at most once: the
warp animator (and ``init="warp"``) needs the puppet rig, alignment and the
AnimateDiff anchor need the pose. When the rig exists its pose is the pose, so a run
that rigs and aligns detects the person once.
"""

from __future__ import annotations

import os

import numpy as np

from holdpose.animate.base import check_reference
from holdpose.sequence import PoseSequence


class Character:
    """``Character(image)``: ``image`` is the reference photo, ``uint8 [H, W, 3]`` RGB."""

    def __init__(self, image: np.ndarray):
        self.image = check_reference(image)
        self._rig = None
        self._pose: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def load(cls, reference) -> "Character":
        """A Character from a photo's path, a ``uint8 [H, W, 3]`` RGB array, or a Character (as is)."""
        if isinstance(reference, Character):
            return reference
        if isinstance(reference, (str, os.PathLike)):
            from holdpose.io.video import read_image

            reference = read_image(reference)
        return cls(reference)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the photo: the canvas of the animation."""
        return self.image.shape[1], self.image.shape[0]

    @property
    def rig(self):
        """The warp animator's puppet of the photo (:class:`holdpose.animate.warp.PuppetRig`)."""
        if self._rig is None:
            from holdpose.animate.warp import rig_reference

            self._rig = rig_reference(self.image)
        return self._rig

    @property
    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keypoints [133, 2], scores [133])`` of the character: the rig's when it is built,
        else one detection."""
        if self._rig is not None:
            return self._rig.points, self._rig.present.astype(np.float32)
        if self._pose is None:
            from holdpose.detect.extract import detect_reference_pose

            self._pose = detect_reference_pose(self.image)
        return self._pose

    def pose_sequence(self, fps: float = 30.0) -> PoseSequence:
        """The character's pose as a one-frame sequence on the photo's canvas."""
        keypoints, scores = self.pose
        return PoseSequence.single_pose(keypoints.astype(np.float32), scores.astype(np.float32), size=self.size,
                                        fps=fps)

    def align(self, poses: PoseSequence) -> PoseSequence:
        """``poses`` with the character's bone lengths, size and placement, on its canvas."""
        from holdpose.refine.align import align_to_reference

        keypoints, scores = self.pose
        aligned, _ = align_to_reference(poses, keypoints, scores, reference_size=self.size)
        return aligned
