"""The embedded (warp) animator on limbs the reference hides: are they completed from what it shows?

Test material made from the fixtures, whose true look is known: a fixture photo with a limb segment
painted over with the photo's own background (the rig's background fill), so the reference hides it,
and the unpainted photo as the truth. Both are animated through the fixture dance (every third
frame); in the frames where the hidden segment has moved clear of where it was (its middle more than
half its length from its place in the reference), the CIEDE2000 distance between the mean colour of
the segment's middle strip in the painted photo's animation and in the true photo's (target <= 10:
the limb looks like itself), and the share of those frames where it is the background's colour
instead (within 10 of the painted-over colour: the limb missing). Also the demo's astronaut, whose left
forearm is behind the helmet she holds, waving with the built-in keyframes (no truth: look at it).

    python bench/bench_warp_hidden.py --label after
    PYTHONPATH=<main checkout>/src python bench/bench_warp_hidden.py --label before

Contact sheets in bench/out/warp_hidden_<label>_<material>.png; results in
bench/results/warp_hidden_<label>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dance_bench_arguments, git_state, load, rel  # noqa: E402
from bench_animate import FIXTURES, OUT, RESULTS, driving_poses, fixtures_ready  # noqa: E402

# material -> (fixture photo, the painted segments as (joint, joint) pairs)
MATERIALS = {
    "anyone-11_left_forearm": ("anyone-11", [(7, 9)]),
    "anyone-11_both_forearms": ("anyone-11", [(7, 9), (8, 10)]),
    "anyone-3_left_shin": ("anyone-3", [(13, 15)]),
}


def paint_over(image: np.ndarray, rig, bones: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with the person's pixels along each bone (elbow to wrist, knee to ankle; the layer's
    pixels within a third of the body scale, grown 7 px) painted with the rig's background fill, and the
    painted mask."""
    import cv2

    from holdpose.animate.puppet.layers import segment_distance

    region = np.zeros(rig.mask.shape, bool)
    for a, b in bones:
        distance, t = segment_distance(rig.mask.shape, rig.points[a], rig.points[b])
        region |= rig.mask & (t > 0.05) & (t < 0.95) & (distance < 0.3 * rig.scale)
    region = cv2.dilate(region.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    painted = image.copy()
    painted[region] = rig.background[region]
    return painted, region


def strip_colour(frame: np.ndarray, points: np.ndarray, a: int, b: int, scale: float) -> np.ndarray | None:
    """Mean Lab colour of the middle strip of bone a-b (a tenth of the body scale wide, 0.2-0.8 along)."""
    from skimage.color import rgb2lab

    from holdpose.animate.puppet.layers import segment_distance

    distance, t = segment_distance(frame.shape[:2], points[a], points[b])
    strip = (distance < 0.05 * scale) & (t > 0.2) & (t < 0.8)
    if strip.sum() < 10:
        return None
    return rgb2lab(frame[strip][None].astype(np.float64) / 255)[0].mean(0)


def contact_sheet(frames: list[np.ndarray], path: Path) -> None:
    import cv2

    tiles = [cv2.resize(f, (int(f.shape[1] * 360 / f.shape[0]), 360), interpolation=cv2.INTER_AREA) for f in frames]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR))


def run_material(name: str, dance, label: str) -> dict:
    from skimage.color import deltaE_ciede2000

    from holdpose.animate.warp import rig_reference
    from holdpose.io.video import read_image
    from holdpose.refine.align import align_to_reference

    photo, bones = MATERIALS[name]
    image = read_image(FIXTURES / "reference" / f"ref_animateanyone_{photo}.png")
    true_rig = rig_reference(image)
    painted, region = paint_over(image, true_rig, bones)
    painted_rig = rig_reference(painted)
    size = (image.shape[1], image.shape[0])
    true_poses, _ = align_to_reference(dance, true_rig.points, true_rig.present.astype(np.float32), reference_size=size)
    poses, _ = align_to_reference(dance, painted_rig.points, painted_rig.present.astype(np.float32), reference_size=size)
    from skimage.color import rgb2lab

    wall = rgb2lab(painted[region][None].astype(np.float64) / 255)[0].mean(0)  # what was painted on
    errors, missing = [], []
    picks = set(np.linspace(0, poses.num_frames - 1, 8).astype(int))
    sheet = [painted]
    for t in range(poses.num_frames):
        keypoints, scores = poses.keypoints[t, 0], poses.scores[t, 0]
        frame = painted_rig.deform(keypoints, scores)
        if t in picks:
            sheet.append(frame)
        true_frame = None
        for a, b in bones:
            if min(scores[a], scores[b], true_poses.scores[t, 0, a], true_poses.scores[t, 0, b]) <= 0.3:
                continue
            here, there = keypoints[[a, b]].mean(0), painted_rig.points[[a, b]].mean(0)
            if np.linalg.norm(here - there) <= 0.5 * np.linalg.norm(painted_rig.points[a] - painted_rig.points[b]):
                continue  # not clear of where it was hidden
            if true_frame is None:
                true_frame = true_rig.deform(true_poses.keypoints[t, 0], true_poses.scores[t, 0])
            shown = strip_colour(frame, keypoints, a, b, painted_rig.scale)
            truth = strip_colour(true_frame, true_poses.keypoints[t, 0], a, b, true_rig.scale)
            if shown is not None and truth is not None:
                errors.append(float(deltaE_ciede2000(truth, shown)))
                missing.append(float(deltaE_ciede2000(wall, shown)) < 10)
    path = OUT / f"warp_hidden_{label}_{name}.png"
    contact_sheet(sheet, path)
    out = {"name": name, "hidden": sorted(getattr(painted_rig, "hidden", [])), "frames_moved": len(errors),
           "ciede2000_mean": float(np.mean(errors)) if errors else None,
           "missing_share": float(np.mean(missing)) if missing else None, "contact_sheet": rel(path)}
    print(json.dumps(out), flush=True)
    return out


def astronaut_wave(label: str) -> dict:
    from holdpose.animate.warp import rig_reference
    from holdpose.demo import load_demo_reference
    from holdpose.refine.align import align_to_reference
    from holdpose.refine.keyframes import load_builtin_motion

    image = load_demo_reference()
    rig = rig_reference(image)
    poses, _ = align_to_reference(load_builtin_motion("wave"), rig.points, rig.present.astype(np.float32),
                                  reference_size=(image.shape[1], image.shape[0]))
    frames = [image] + [rig.deform(poses.keypoints[t, 0], poses.scores[t, 0])
                        for t in np.linspace(0, poses.num_frames - 1, 8).astype(int)]
    path = OUT / f"warp_hidden_{label}_astronaut_demo_wave.png"
    contact_sheet(frames, path)
    return {"name": "astronaut_demo_wave", "hidden": sorted(getattr(rig, "hidden", [])), "contact_sheet": rel(path)}


def main(argv=None) -> int:
    args = dance_bench_arguments(__doc__, argv)
    if not fixtures_ready():
        return 0
    dance = driving_poses(None)[::args.stride]
    runs = [run_material(name, dance, args.label) for name in MATERIALS] + [astronaut_wave(args.label)]
    result = {"benchmark": "warp hidden limbs", "label": args.label, "git": git_state(), "load": load(),
              "stride": args.stride, "runs": runs}
    (RESULTS / f"warp_hidden_{args.label}.json").write_text(json.dumps(result, indent=2))
    print("| material | hidden | frames moved | CIEDE2000 to the truth | frames showing the wall |")
    print("|---|---|---:|---:|---:|")
    for r in runs:
        if "frames_moved" in r:
            de = f"{r['ciede2000_mean']:.1f}" if r["ciede2000_mean"] is not None else "-"
            share = f"{100 * r['missing_share']:.0f} %" if r["missing_share"] is not None else "-"
            print(f"| {r['name']} | {', '.join(r['hidden']) or '-'} | {r['frames_moved']} | {de} | {share} |")
    print(f"wrote {RESULTS / f'warp_hidden_{args.label}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
