"""Pose-map styles: how each consumer wants its maps drawn (parts, channel order, confidence
weighting). Plain data, cheap to import (the CLI lists the names without loading OpenCV)."""

from __future__ import annotations

from dataclasses import dataclass

from holdpose.errors import HoldposeError


@dataclass(frozen=True)
class PoseMapStyle:
    """How one consumer wants its pose maps.

    Attributes:
        body, hands, face: parts to draw.
        channel_order: "RGB" as in ControlNet's maps, or "BGR" (red and blue swapped).
        confidence_weighted: scale each limb's colour by the product of its endpoint
            scores and each joint's by its score (MimicMotion).
        drawing: "openpose" (ControlNet's ellipses and joints, :mod:`holdpose.render.openpose`)
            or "humansd" (HumanSD's COCO-17 lines, :mod:`holdpose.render.humansd`).
        threshold: draw points with a score above this, when the style fixes it (HumanSD: 0.02);
            None: the caller's threshold.
    """

    name: str
    body: bool = True
    hands: bool = False
    face: bool = False
    channel_order: str = "RGB"
    confidence_weighted: bool = False
    drawing: str = "openpose"
    threshold: float | None = None


STYLES = {
    style.name: style
    for style in (
        PoseMapStyle("openpose"),
        PoseMapStyle("openpose_hand", hands=True),
        PoseMapStyle("openpose_face", face=True),
        PoseMapStyle("openpose_full", hands=True, face=True),
        PoseMapStyle("openpose_full_bgr", hands=True, face=True, channel_order="BGR"),  # MusePose, DisPose
        PoseMapStyle("mimicmotion", hands=True, face=True, channel_order="BGR", confidence_weighted=True),
        PoseMapStyle("humansd", drawing="humansd", threshold=0.02),  # HumanSD, Stable-Pose: COCO-17 body lines
    )
}


def get_style(style: str | PoseMapStyle) -> PoseMapStyle:
    if isinstance(style, PoseMapStyle):
        return style
    try:
        return STYLES[style]
    except KeyError as err:
        raise HoldposeError(f"unknown pose map style {style!r}; choose one of {', '.join(STYLES)}") from err
