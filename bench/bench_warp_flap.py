"""The embedded (warp) animator: does a raised arm drag the torso's garment along?

Where the reference's arm hangs beside the body, the top's fabric (a frill, long hair, the shade
between arm and torso) may lie over it; if those pixels go into the arm's layer they are dragged up
with the arm as a dark flap under it. Each fixture photo is animated through the fixture dance (every
third frame); in frames where an upper arm is raised (turned more than 60 degrees from the photo's),
the pixels the puppet draws around the target upper arm (within 1.5 of the arm's prior radius of its
bone, its outer 80 %, off the target torso) are judged against two sets of colours measured on the
photo, independently of the rig's own cut:

- the arm's own colours: k-means (2) of a band along the silhouette's edge beside its forearm (3 px
  in from the background, where nothing lies over the arm);
- the torso garment's colours: k-means (3) of the person's pixels in the torso's quadrilateral, away
  from both arms' bones, without those within 15 (CIEDE2000) of the arm's own colour or of its hue
  (:func:`same_dye`: anyone-11's lit red jacket is his shaded red sleeve's material).

Figures: the share of drawn pixels whose colour is nearer a garment colour than the arm's own
(``garment_share``; the flap), and the median CIEDE2000 of the drawn pixels to the arm's own colours.

    python bench/bench_warp_flap.py --label after
    PYTHONPATH=<main checkout>/src python bench/bench_warp_flap.py --label before

Contact sheets in bench/out/warp_flap_<label>_<photo>.png; results in bench/results/warp_flap_<label>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dance_bench_arguments, git_state, load, rel  # noqa: E402
from bench_animate import FIXTURES, OUT, RESULTS, driving_poses, fixtures_ready  # noqa: E402
from bench_warp_hidden import contact_sheet  # noqa: E402

PHOTOS = ("anyone-3", "anyone-11")
ARMS = {"left": (5, 7, 9), "right": (6, 8, 10)}
RAISED_DEGREES = 60.0
UPPER_ARM_PRIOR = 0.17  # the rig's prior radius of an upper arm, times the body scale


def to_lab(pixels: np.ndarray) -> np.ndarray:
    """``[N, 3]`` CIE Lab of ``uint8 [N, 3]`` RGB pixels."""
    from skimage.color import rgb2lab

    return rgb2lab(pixels[None].astype(np.float64) / 255)[0]


def torso_quad(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the quadrilateral of the shoulders and hips."""
    import cv2

    quad = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(quad, np.round(points[[5, 6, 12, 11]]).astype(np.int32), 1)
    return quad > 0


def arm_colours(image: np.ndarray, mask: np.ndarray, points: np.ndarray, scale: float, side: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(own [k, 3], garment [m, 3])`` Lab colours of one arm and of the torso's garment (module docstring)."""
    import cv2
    from skimage.color import deltaE_ciede2000

    from holdpose.animate.puppet.layers import segment_distance

    shoulder, elbow, wrist = ARMS[side]
    distance, t = segment_distance(mask.shape, points[elbow], points[wrist])
    from scipy.ndimage import binary_fill_holes

    # inside: the distance to the background around the person (a gap between arm and body is lined with shade)
    outside = cv2.distanceTransform(binary_fill_holes(mask).astype(np.uint8), cv2.DIST_L2, 3)
    band = mask & (outside > 3) & (outside < 3 + 0.04 * scale) & (distance < 0.25 * scale) & (t > 0.2) & (t < 0.8)
    own = kmeans(to_lab(image[band]), 2)
    near_arms = np.zeros(mask.shape, bool)
    for a, b, c in ARMS.values():
        for p, q in ((a, b), (b, c)):
            d, _ = segment_distance(mask.shape, points[p], points[q])
            near_arms |= d < 0.35 * scale
    centres = kmeans(to_lab(image[mask & torso_quad(mask.shape, points) & ~near_arms]), 3)
    unlike = [(deltaE_ciede2000(centres, colour[None]) > 15) & ~same_dye(centres, colour) for colour in own]
    return own, centres[np.logical_and.reduce(unlike)]


def kmeans(colours: np.ndarray, count: int) -> np.ndarray:
    """``[count, 3]`` k-means centres of ``colours [N, 3]`` (seeded: the same figures every run)."""
    import cv2

    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(colours.astype(np.float32), count, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    return centres.astype(np.float64)


def same_dye(colours: np.ndarray, own: np.ndarray) -> np.ndarray:
    """``bool [k]``: which of ``colours [k, 3]`` (CIE Lab) are ``own``'s material in another light: both
    chromatic (chroma above 10), hues less than 20 degrees apart (a red sleeve in shade, the red jacket lit)."""
    chroma = np.hypot(colours[:, 1], colours[:, 2])
    hue = np.degrees(np.arctan2(colours[:, 2], colours[:, 1]) - np.arctan2(own[2], own[1]))
    return (chroma > 10) & (np.hypot(own[1], own[2]) > 10) & (np.abs((hue + 180) % 360 - 180) < 20)


def raised(ref_points: np.ndarray, points: np.ndarray, side: str) -> bool:
    """Whether the upper arm turned more than :data:`RAISED_DEGREES` from the photo's."""
    shoulder, elbow, _ = ARMS[side]
    u, v = ref_points[elbow] - ref_points[shoulder], points[elbow] - points[shoulder]
    cosine = u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-6)
    return np.degrees(np.arccos(np.clip(cosine, -1, 1))) > RAISED_DEGREES


def drawn_upper_arm(rig, points: np.ndarray, scores: np.ndarray, side: str) -> np.ndarray:
    """``bool [H, W]``: what the puppet draws around the target upper arm (module docstring)."""
    from holdpose.animate.puppet.layers import segment_distance

    shoulder, elbow, _ = ARMS[side]
    distance, t = segment_distance(rig.mask.shape, points[shoulder], points[elbow])
    region = (distance < 1.5 * UPPER_ARM_PRIOR * rig.scale) & (t > 0.2) & (t < 1.0)
    return region & (rig.coverage(points, scores) > 0.5) & ~torso_quad(rig.mask.shape, points)


def flap_figures(frame: np.ndarray, region: np.ndarray, own: np.ndarray, garment: np.ndarray) -> tuple[float, float]:
    """``(garment share, median CIEDE2000 to the nearer of the arm's own colours)`` of ``frame``'s pixels in
    ``region``."""
    from skimage.color import deltaE_ciede2000

    lab = to_lab(frame[region])
    to_own = np.min([deltaE_ciede2000(lab, colour[None]) for colour in own], axis=0)
    if len(garment):
        to_garment = np.min([deltaE_ciede2000(lab, g[None]) for g in garment], axis=0)
        share = float(np.mean(to_garment < to_own))
    else:
        share = 0.0
    return share, float(np.median(to_own))


def run_photo(photo: str, dance, label: str) -> dict:
    from holdpose.animate.warp import rig_reference
    from holdpose.io.video import read_image
    from holdpose.refine.align import align_to_reference

    image = read_image(FIXTURES / "reference" / f"ref_animateanyone_{photo}.png")
    rig = rig_reference(image)
    size = (image.shape[1], image.shape[0])
    poses, _ = align_to_reference(dance, rig.points, rig.present.astype(np.float32), reference_size=size)
    colours = {side: arm_colours(image, rig.mask, rig.points, rig.scale, side) for side in ARMS}
    per_arm = {side: {"shares": [], "ciede2000": []} for side in ARMS}
    sheet, picks = [image], set(np.linspace(0, poses.num_frames - 1, 8).astype(int))
    for t in range(poses.num_frames):
        keypoints, scores = poses.keypoints[t, 0], poses.scores[t, 0]
        frame = None
        for side, (shoulder, elbow, _) in ARMS.items():
            if min(scores[shoulder], scores[elbow]) <= 0.3 or not raised(rig.points, keypoints, side):
                continue
            frame = rig.deform(keypoints, scores) if frame is None else frame
            region = drawn_upper_arm(rig, keypoints, scores, side)
            if region.sum() >= 20:
                share, delta = flap_figures(frame, region, *colours[side])
                per_arm[side]["shares"].append(share)
                per_arm[side]["ciede2000"].append(delta)
        if t in picks:
            sheet.append(rig.deform(keypoints, scores) if frame is None else frame)
    path = OUT / f"warp_flap_{label}_{photo}.png"
    contact_sheet(sheet, path)
    out = {"photo": photo, "contact_sheet": rel(path)}
    for side, figures in per_arm.items():
        out[side] = {"frames_raised": len(figures["shares"]),
                     "garment_share_mean": float(np.mean(figures["shares"])) if figures["shares"] else None,
                     "garment_share_max": float(np.max(figures["shares"])) if figures["shares"] else None,
                     "ciede2000_median_mean": float(np.mean(figures["ciede2000"])) if figures["ciede2000"] else None}
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> int:
    args = dance_bench_arguments(__doc__, argv)
    if not fixtures_ready():
        return 0
    dance = driving_poses(None)[::args.stride]
    runs = [run_photo(photo, dance, args.label) for photo in PHOTOS]
    result = {"benchmark": "warp flap", "label": args.label, "git": git_state(), "load": load(),
              "stride": args.stride, "runs": runs}
    (RESULTS / f"warp_flap_{args.label}.json").write_text(json.dumps(result, indent=2))
    print("| photo | arm | frames raised | garment share, mean (max) | CIEDE2000 to the arm's own colour |")
    print("|---|---|---:|---:|---:|")
    for r in runs:
        for side in ARMS:
            f = r[side]
            if f["frames_raised"]:
                print(f"| {r['photo']} | {side} | {f['frames_raised']} | {100 * f['garment_share_mean']:.1f} % "
                      f"({100 * f['garment_share_max']:.1f} %) | {f['ciede2000_median_mean']:.1f} |")
    print(f"wrote {RESULTS / f'warp_flap_{args.label}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
