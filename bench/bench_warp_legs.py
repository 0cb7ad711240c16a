"""The embedded (warp) animator's legs: does spreading them stretch the texture like paper?

Each fixture reference photo is posed in jumping jacks (each leg turned 20, 35 and 50 degrees
outward about its hip, the rest of the pose as in the photo) and through the fixture dance
(every third frame, aligned to the photo). For every pose, the mesh triangles over the thighs'
lower half (from 0.55 of the thigh to the knee, the person's pixels within 0.4 body scales of
the bone) are measured: each one's area in the pose over its area in the photo
(:meth:`PuppetRig.texture_scale`). A leg that turns as a whole keeps every ratio at 1; a leg
whose texture is blended between both thighs' turns stretches it. Reported: the 95th
percentile of the stretch (``exp |log ratio|``) per pose, and its maximum over the dance.
Contact sheets in bench/out/warp_legs_<label>_<reference>.png (the photo, the three spreads,
five dance frames).

    python bench/bench_warp_legs.py --label after
    PYTHONPATH=<old checkout>/src python bench/bench_warp_legs.py --label before   # needs texture_scale

Writes bench/results/warp_legs_<label>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dance_bench_arguments, git_state, load, rel  # noqa: E402
from bench_animate import FIXTURES, OUT, RESULTS, fixtures_ready, driving_poses  # noqa: E402

SPREADS = (20, 35, 50)  # degrees each leg turns outward


def legs_spread(points: np.ndarray, degrees: float) -> np.ndarray:
    """``points [133, 2]`` with each leg's knee, ankle and foot points turned ``degrees`` outward
    about its hip."""
    target = points.copy()
    centre = points[[11, 12]].mean(0)
    for hip, moving in ((11, [13, 15, 17, 18, 19]), (12, [14, 16, 20, 21, 22])):
        angle = -np.deg2rad(degrees) * np.sign(points[hip][0] - centre[0])  # image y points down
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        target[moving] = (points[moving] - points[hip]) @ rotation.T + points[hip]
    return target


def lower_thighs(rig) -> np.ndarray:
    """``bool [H, W]``: the person's pixels over the thighs' lower half."""
    from holdpose.animate.puppet.layers import segment_distance

    region = np.zeros(rig.mask.shape, bool)
    for hip, knee in ((11, 13), (12, 14)):
        distance, t = segment_distance(rig.mask.shape, rig.points[hip], rig.points[knee])
        region |= (t >= 0.55) & (t <= 1) & (distance < 0.4 * rig.scale)
    return region & rig.mask


def thigh_stretch(rig, region: np.ndarray, points: np.ndarray, scores: np.ndarray) -> float:
    """The 95th percentile of ``exp |log area ratio|`` over the triangles centred in ``region``."""
    centres, ratios = rig.texture_scale(points, scores)
    xy = np.round(centres).astype(int)
    inside = region[xy[:, 1], xy[:, 0]]
    return float(np.exp(np.percentile(np.abs(np.log(ratios[inside])), 95)))


def measure(path: Path, dance, label: str, stride: int) -> dict:
    import cv2

    from holdpose.animate.warp import rig_reference
    from holdpose.io.video import read_image
    from holdpose.refine.align import align_to_reference

    image = read_image(path)
    rig = rig_reference(image)
    region = lower_thighs(rig)
    present = rig.present.astype(np.float32)
    tiles = [image]
    spreads = {}
    for degrees in SPREADS:
        target = legs_spread(rig.points, degrees)
        spreads[str(degrees)] = thigh_stretch(rig, region, target, present)
        tiles.append(rig.deform(target, present))
    aligned, _ = align_to_reference(dance, rig.points, present, reference_size=(image.shape[1], image.shape[0]))
    frames = range(0, aligned.num_frames, stride)
    dance_stretch = [thigh_stretch(rig, region, aligned.keypoints[t, 0], aligned.scores[t, 0]) for t in frames]
    for t in np.linspace(0, aligned.num_frames - 1, 5).astype(int):
        tiles.append(rig.deform(aligned.keypoints[t, 0], aligned.scores[t, 0]))
    size = (int(image.shape[1] * 480 / image.shape[0]), 480)
    sheet = OUT / f"warp_legs_{label}_{path.stem.replace('ref_animateanyone_', '')}.png"
    row = np.concatenate([cv2.resize(tile, size, interpolation=cv2.INTER_AREA) for tile in tiles], 1)
    cv2.imwrite(str(sheet), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    result = {"reference": rel(path), "jumping_jacks_stretch_p95": spreads,
              "dance_frames": len(dance_stretch), "dance_stretch_p95_max": max(dance_stretch),
              "dance_stretch_p95_mean": float(np.mean(dance_stretch)), "contact_sheet": rel(sheet)}
    print(json.dumps(result), flush=True)
    return result


def main(argv=None) -> int:
    args = dance_bench_arguments(__doc__, argv)
    if not fixtures_ready():
        return 0
    dance = driving_poses(None)
    runs = [measure(path, dance, args.label, args.stride) for path in sorted((FIXTURES / "reference").glob("*.png"))]
    result = {"benchmark": "warp legs", "git": git_state(), "load": load(), "spreads_degrees": SPREADS, "runs": runs}
    out = RESULTS / f"warp_legs_{args.label}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
