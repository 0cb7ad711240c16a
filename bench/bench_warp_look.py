"""The embedded (warp) animator's look: ghosts of the original body and limbs, hand colour.

1. Ghost test: each fixture reference person, cut out with its own segmentation mask, is
   composited onto a known background photo (scikit-image's ``rocket``, scaled to cover the
   canvas) and animated through the fixture dance. In every frame, the pixels outside the
   animated puppet's mask (grown 4 px) are compared with the true background: PSNR, its
   minimum over the frames (target >= 30 dB) and mean. Split in two: where the background
   was in plain view in the composite (an error there is a leftover of the person: a ghost)
   and where the person hid it (the fill's guess of what was behind the person).
2. Hand test: in frames where a target hand lies more than one hand length from the
   reference hand's place, the CIEDE2000 distance between the mean Lab colour of the animated
   hand (convex hull of the target hand keypoints) and the reference's hand (hull of its
   landmarks); the mean over those frames (target <= 10). Also with the palm and finger
   bones drawn as thick lines instead of the hull (a spread hand's hull is half background).
3. Ghost limbs: MediaPipe Hands (up to 4 hands, static image mode) on every output frame; a
   frame is clean when every hand found lies within one hand length of a target hand (target:
   clean in >= 98 % of frames), on the fixture references driven by the dance and by the BVH
   wave. Where the target lacks a hand (the dance's right wrist leaves the video's frame in
   frames 65-74 of every third), the puppet still draws its hand at the end of the moved arm:
   that place counts as a target hand.
4. Pose adherence (PCK@0.05 with holdpose's evaluate_video) and speed vs decode + encode, by
   bench_animate's own functions.
   Also the demo's astronaut (not a fixture) waving with the built-in keyframes, as `make demo`.
5. Contact sheets in bench/out/warp_look_<label>_<reference>_<motion>.png.

    python bench/bench_warp_look.py --label after            # this code
    PYTHONPATH=<old checkout>/src python bench/bench_warp_look.py --label before --no-adherence

Writes bench/results/warp_look_<label>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, load, rel  # noqa: E402
from bench_animate import FIXTURES, OUT, RESULTS, fixtures_ready, adherence_run, driving_poses, ensure_dance_512, speed_run  # noqa: E402

HANDS = {"left": (slice(91, 112), 9, 7), "right": (slice(112, 133), 10, 8)}  # landmarks, wrist, elbow


def composite_reference(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The person of ``image`` (its MediaPipe mask) over the rocket photo: ``(composite, background,
    seen)``, ``seen`` where the background is in plain view (the person's alpha, grown 4 px, is 0)."""
    import cv2
    from skimage import data

    from holdpose.detect.mediapipe import MediaPipeDetector

    with MediaPipeDetector(segmentation=True) as detector:
        detector.detect_one(image)
        alpha = detector.last_mask.astype(np.float32)[..., None]
    h, w = image.shape[:2]
    photo = data.rocket()
    scale = max(w / photo.shape[1], h / photo.shape[0])
    big = cv2.resize(photo, (int(np.ceil(photo.shape[1] * scale)), int(np.ceil(photo.shape[0] * scale))),
                     interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    background = np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])
    composite = np.clip(alpha * image + (1 - alpha) * background + 0.5, 0, 255).astype(np.uint8)
    seen = cv2.dilate((alpha[..., 0] > 0.02).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    return composite, background, seen


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return float("nan")
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-10)))


def puppet_mask(rig, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: pixels the posed puppet touches (its texture made white over black),
    the same way for any version of the rig."""
    import copy

    white = copy.copy(rig)
    white.atlas = np.full_like(rig.atlas, 255)
    white.background = np.zeros_like(rig.background)
    return white.deform(keypoints, scores).max(-1) > 0


def hand_centre_and_length(points: np.ndarray, scores: np.ndarray, side: str) -> tuple[np.ndarray, float] | None:
    """Where a hand is (mean of its keypoints, or beyond the wrist) and its length, in pixels."""
    hand, wrist, elbow = HANDS[side]
    present = scores[hand] > 0.3
    if present.sum() >= 10:
        xy = points[hand][present]
        return xy.mean(0), float(np.ptp(xy, axis=0).max())
    if scores[wrist] > 0.3 and scores[elbow] > 0.3:
        forearm = points[wrist] - points[elbow]
        return points[wrist] + 0.4 * forearm, 0.7 * float(np.linalg.norm(forearm))
    return None


FINGERS = [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [0, 17, 18, 19, 20], [5, 9, 13, 17]]


def hand_mean_lab(image: np.ndarray, points: np.ndarray, present: np.ndarray, *,
                  bones: bool = False) -> np.ndarray | None:
    """Mean Lab colour (scikit-image's scale) of a hand's region: the convex hull of its present
    keypoints (``points [21, 2]``), or with ``bones`` only the palm and the finger bones drawn
    as lines a tenth of the hand's size thick (a spread hand's hull is half background even
    when the hand sits exactly on its keypoints)."""
    import cv2
    from skimage.color import rgb2lab

    mask = np.zeros(image.shape[:2], np.uint8)
    found = points[present]
    if bones:
        thickness = max(2, int(np.ptp(found, axis=0).max() / 10))
        for chain in FINGERS:
            chain = [k for k in chain if present[k]]
            if len(chain) >= 2:
                cv2.polylines(mask, [np.round(points[chain]).astype(np.int32)], False, 1, thickness)
    else:
        cv2.fillConvexPoly(mask, np.round(cv2.convexHull(found.astype(np.float32))).astype(np.int32), 1)
    if mask.sum() < 10:
        return None
    return rgb2lab(image[mask > 0][None].astype(np.float64) / 255)[0].mean(0)


class Look:
    """Per-frame look measurements of one animation."""

    def __init__(self, rig, reference: np.ndarray, background: np.ndarray | None, seen: np.ndarray | None = None):
        from holdpose.detect.mediapipe import import_mediapipe, native_stderr_silenced

        self.rig, self.background, self.seen = rig, background, seen
        mp = import_mediapipe()
        with native_stderr_silenced():
            self.hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=4, model_complexity=1)
        self._silenced = native_stderr_silenced
        self.reference_hands = {}
        for side in HANDS:
            hand = HANDS[side][0]
            found = rig.present[hand]
            if found.sum() >= 10:
                xy = rig.points[hand][found]
                self.reference_hands[side] = (xy.mean(0), float(np.ptp(xy, 0).max()),
                                              hand_mean_lab(reference, rig.points[hand], found),
                                              hand_mean_lab(reference, rig.points[hand], found, bones=True))
        self.psnr, self.seen_psnr, self.guessed_psnr, self.clean = [], [], [], []
        self.hand_de, self.hand_bones_de = [], []

    def close(self):
        self.hands.close()

    def frame(self, frame: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> None:
        from skimage.color import deltaE_ciede2000

        if self.background is not None:
            import cv2

            touched = cv2.dilate(puppet_mask(self.rig, keypoints, scores).astype(np.uint8), np.ones((9, 9), np.uint8))
            outside = touched == 0
            self.psnr.append(_psnr(frame[outside], self.background[outside]))
            # Where the background was in plain view in the reference nothing had to be guessed:
            # any error there is a leftover of the person (a ghost), not an inpainting guess.
            self.seen_psnr.append(_psnr(frame[outside & self.seen], self.background[outside & self.seen]))
            self.guessed_psnr.append(_psnr(frame[outside & ~self.seen], self.background[outside & ~self.seen]))
        for side, (centre, length, colour, bones_colour) in self.reference_hands.items():
            hand = HANDS[side][0]
            present = scores[hand] > 0.3
            if present.sum() < 10 or colour is None or bones_colour is None:
                continue
            if np.linalg.norm(keypoints[hand][present].mean(0) - centre) <= length:
                continue
            animated = hand_mean_lab(frame, keypoints[hand], present)
            animated_bones = hand_mean_lab(frame, keypoints[hand], present, bones=True)
            if animated is not None and animated_bones is not None:
                self.hand_de.append(float(deltaE_ciede2000(colour, animated)))
                self.hand_bones_de.append(float(deltaE_ciede2000(bones_colour, animated_bones)))
        targets = [t for t in (hand_centre_and_length(keypoints, scores, s) for s in HANDS) if t is not None]
        targets += self.carried_hands(keypoints, scores)
        with self._silenced():
            result = self.hands.process(np.ascontiguousarray(frame))
        h, w = frame.shape[:2]
        found = [np.array([(p.x * w, p.y * h) for p in hand.landmark]).mean(0)
                 for hand in (result.multi_hand_landmarks or [])]
        self.clean.append(all(any(np.linalg.norm(f - c) <= length for c, length in targets) for f in found))

    def carried_hands(self, keypoints: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Where the puppet draws the hands the target lacks (a wrist out of the driving video's
        frame): the reference hand moved by the rig's hand transform, which follows the arm. A hand
        found there is the moved arm's own, not a ghost."""
        from holdpose.animate.warp import MIN_SCORE, PART_INDEX, part_transforms

        missing = [s for s in HANDS if hand_centre_and_length(keypoints, scores, s) is None]
        own = [s for s in missing if hand_centre_and_length(self.rig.points, self.rig.present.astype(float), s)]
        if not own:
            return []
        transforms = part_transforms(self.rig.points, self.rig.present, keypoints, scores > MIN_SCORE)
        carried = []
        for side in own:
            centre, length = hand_centre_and_length(self.rig.points, self.rig.present.astype(float), side)
            matrix = transforms[PART_INDEX[f"{side}_hand"]]
            carried.append((matrix[:2, :2] @ centre + matrix[:2, 2], length))
        return carried

    def summary(self) -> dict:
        out = {"frames": len(self.clean), "clean_hand_frames": float(np.mean(self.clean)) if self.clean else None,
               "hand_ciede2000_mean": float(np.mean(self.hand_de)) if self.hand_de else None,
               "hand_bones_ciede2000_mean": float(np.mean(self.hand_bones_de)) if self.hand_bones_de else None,
               "hand_frames_moved": len(self.hand_de)}
        if self.psnr:
            out.update(ghost_psnr_min=float(np.min(self.psnr)), ghost_psnr_mean=float(np.mean(self.psnr)),
                       ghost_frames_below_30=int(np.sum(np.array(self.psnr) < 30)),
                       seen_psnr_min=float(np.min(self.seen_psnr)), seen_psnr_mean=float(np.mean(self.seen_psnr)),
                       guessed_psnr_mean=float(np.nanmean(self.guessed_psnr)))
        return out


def animate_and_measure(image: np.ndarray, driving, name: str, label: str, background=None, seen=None) -> dict:
    import cv2

    from holdpose.animate.warp import rig_reference
    from holdpose.refine.align import align_to_reference

    rig = rig_reference(image)
    aligned, _ = align_to_reference(driving, rig.points, rig.present.astype(np.float32),
                                    reference_size=(image.shape[1], image.shape[0]))
    look = Look(rig, image, background, seen)
    picks = set(np.linspace(0, aligned.num_frames - 1, 8).astype(int))
    tiles = []
    start = time.perf_counter()
    for t in range(aligned.num_frames):
        keypoints, scores = aligned.keypoints[t, 0], aligned.scores[t, 0]
        frame = rig.deform(keypoints, scores)
        look.frame(frame, keypoints, scores)
        if t in picks:
            size = (int(frame.shape[1] * 480 / frame.shape[0]), 480)
            tiles.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    look.close()
    sheet = OUT / f"warp_look_{label}_{name}.png"
    cv2.imwrite(str(sheet), cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR))
    summary = look.summary()
    summary.update(name=name, seconds=time.perf_counter() - start, contact_sheet=rel(sheet))
    print(json.dumps(summary), flush=True)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="after", help="names the result file and the contact sheets")
    parser.add_argument("--frames", type=int, help="use only the first N frames of each motion")
    parser.add_argument("--stride", type=int, default=3,
                        help="measure every Nth frame of the dance (24 fps) and of the wave (resampled to 24/N fps)")
    parser.add_argument("--no-adherence", action="store_true", help="skip PCK and speed (bench_animate's runs)")
    parser.add_argument("--only", default="", help="run only the animations whose name contains this")
    args = parser.parse_args(argv)
    if not fixtures_ready():
        return 0
    from holdpose.io.bvh import bvh_to_sequence
    from holdpose.refine.timeline import resample
    from holdpose.io.video import read_image

    full_dance = driving_poses(args.frames)
    dance = full_dance[::args.stride]
    wave = resample(bvh_to_sequence(FIXTURES / "motions" / "bvh_fair1_wave_hello.bvh", size=(512, 512)),
                    fps=24 / args.stride)
    if args.frames:
        wave = wave[:args.frames]
    references = sorted((FIXTURES / "reference").glob("*.png"))
    runs = []
    for path in references:
        image = read_image(path)
        short = path.stem.split("_")[-1]
        if args.only in f"{short}_composite_dance":
            composite, background, seen = composite_reference(image)
            runs.append(animate_and_measure(composite, dance, f"{short}_composite_dance", args.label, background, seen))
        for name, motion in ((f"{short}_dance", dance), (f"{short}_bvh_wave", wave)):
            if args.only in name:
                runs.append(animate_and_measure(image, motion, name, args.label))
    # Not a fixture: the demo's astronaut (scikit-image) waving with the built-in keyframes, as `make demo`
    from holdpose.demo import load_demo_reference
    from holdpose.refine.keyframes import load_builtin_motion

    if args.only in "astronaut_demo_wave":
        runs.append(animate_and_measure(load_demo_reference(), load_builtin_motion("wave"), "astronaut_demo_wave",
                                        args.label))
    result = {"benchmark": "warp look", "label": args.label, "git": git_state(), "load": load(), "stride": args.stride,
              "runs": runs}
    if not args.no_adherence:
        ensure_dance_512()
        result["adherence"] = [adherence_run(path, full_dance) for path in references]
        result["speed_512"] = speed_run(full_dance, references[0])
    name = f"warp_look_{args.label}" + (f"_{args.only}" if args.only else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print("| run | frames | PSNR outside the puppet, min / mean dB | of it where the background was seen, min / mean | "
          "where it was hidden, mean | hand CIEDE2000: hull / finger bones (frames) | frames without ghost hands |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        psnr = (f"{r['ghost_psnr_min']:.1f} / {r['ghost_psnr_mean']:.1f} | {r['seen_psnr_min']:.1f} / "
                f"{r['seen_psnr_mean']:.1f} | {r['guessed_psnr_mean']:.1f}") if "ghost_psnr_min" in r else "- | - | -"
        de = (f"{r['hand_ciede2000_mean']:.1f} / {r['hand_bones_ciede2000_mean']:.1f} ({r['hand_frames_moved']})"
              if r["hand_ciede2000_mean"] is not None else "-")
        print(f"| {r['name']} | {r['frames']} | {psnr} | {de} | {100 * r['clean_hand_frames']:.1f} % |")
    for row in result.get("adherence", []):
        print(f"PCK@0.05 {Path(row['reference']).name}: {row['pck@0.05']:.3f}")
    if "speed_512" in result:
        ratio = result["speed_512"]["ratio_animate_to_decode_plus_encode"]
        print(f"speed ratio animate / (decode + encode): {ratio:.2f}")
    print(f"wrote {RESULTS / f'{name}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
