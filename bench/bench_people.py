"""Benchmark: identities through crossings and occlusions, on a composite of fixture people.

The composite (built on first use, ``bench/out/people_crossing.mp4``, 1280x720, 25 fps, 6 s):
three people cut out of the fixture catalogue photos (``ref_animateanyone_anyone-3.png``, the
woman; ``anyone-11.png``, the man in red; and the man again, mirrored, in a green jacket; cut
out with MediaPipe's own person mask) walk
across a grey textured floor. The woman walks right, the man in red walks left in front of her
(she is hidden for about 20 frames as he passes), then turns back and crosses her again; the
man in green walks in from the right, stops, and leaves. Each person's visible box per frame is
known from the composite's masks (ground truth): a person counts as present when at least half
of their pixels show.

Scored (MOT-style), with the composite's ownership of every pixel: a detection is the person on
whose pixels most of its body keypoints lie (:func:`match_by_pixels`), so a skeleton of the man
in front is never counted as the woman behind him. An **ID switch** is a person matched to
another id than at their previous match; **fragments** are the distinct ids a person is
matched to. Figures: switches per 100 matched person-frames (<= 1) and fragments
per true person (<= 1.5).

Trackers compared on the same detections (``holdpose extract --max-people 4``):
- "pose + motion, online" (the previous tracker's method): :func:`assign_track_ids` alone;
- "refine --track" (no pixels): online pass + global tracklet merging;
- "extract / refine --track --video" (the default of extract with several people): appearance
  + motion + pose, re-identification within 2 s, tracklet merging.

Extraction speed at 1280x720 with ``--max-people 4``, both ways of finding people (the person
detector once per frame, :mod:`holdpose.detect.candidates`, and the paint-and-search fallback),
on this clip (2-3 people) and on ``bench/out/people_four.mp4`` (4 people side by side, swaying,
2 s): frames/s, CPU seconds per frame (the whole process tree) and the load averages, since
the machine is shared with other jobs and wall time alone says little; "frames/s from CPU" is
frames / (CPU seconds / 2 cores), what the two cores would give with nobody else on them.
The body-only variant (``hands_and_face=False``) is timed too. Since whole runs one after the
other meet different loads, the finders are also timed in this process on the same 50 frames of
each clip in turn (:func:`interleaved_cpu`): the fairest comparison on a busy machine.

    .venv/bin/python bench/bench_people.py [--no-search | --tracking-only]

``--no-search`` skips timing the slow fallback (minutes under load). ``--tracking-only``
extracts the crossing clip once and scores the trackers; the other speed figures (and the
interleaved timing) are kept from the last full run's bench/results/people.json.

Writes bench/results/people.json. Skips (exit 0) when ../shared/fixtures is absent.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, load, rel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
OUT = REPO / "bench" / "out"
SIZE, FPS, FRAMES = (1280, 720), 25, 150
HEIGHT = 520  # px, each person's height on the canvas


def cutout(path: Path, *, mirror=False, recolour=None) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha ``[h, w]`` of a catalogue photo's person (white studio background removed)."""
    import cv2

    from holdpose.io.video import read_image

    from holdpose.detect.mediapipe import MediaPipeDetector

    image = read_image(path)
    with MediaPipeDetector(segmentation=True) as detector:  # MediaPipe's own person mask
        detector.detect_one(image)
        alpha = (detector.last_mask > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(alpha)
    alpha = (labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])).astype(np.uint8)  # the person, not specks
    ys, xs = np.nonzero(alpha)
    image, alpha = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1], alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = HEIGHT / image.shape[0]
    size = (int(round(image.shape[1] * scale)), HEIGHT)
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_NEAREST)
    if mirror:
        image, alpha = image[:, ::-1], alpha[:, ::-1]
    if recolour is not None:  # turn the red jacket green: rotate the hue of saturated red pixels
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        red = ((hsv[..., 0] < 10) | (hsv[..., 0] > 168)) & (hsv[..., 1] > 150)  # the jacket, not skin
        hsv[..., 0] = np.where(red, recolour, hsv[..., 0])
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.ascontiguousarray(image), np.ascontiguousarray(alpha)


def paths() -> np.ndarray:
    """Left edge x of each person per frame ``[3, T]`` (NaN: off stage), drawing order back to front."""
    t = np.arange(FRAMES, dtype=np.float64)
    woman = 80 + 5.0 * t  # walks right the whole time
    man = np.where(t < 70, 1000 - 9.0 * t, 1000 - 9.0 * 70 + 9.0 * (t - 70))  # left, then back right
    green = np.where(t < 40, np.nan, np.where(t < 100, np.maximum(1180 - 8.0 * (t - 40), 900), 900 + 9.0 * (t - 100)))
    return np.stack([woman, man, green])


OWNER_STEP = 4  # the ownership maps are kept at 1/4 resolution


def build_composite(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Write the composite video; return the visible boxes ``[T, 3, 4]`` (NaN: not present)
    and who owns each pixel ``int8 [T, H / 4, W / 4]`` (-1: the floor)."""
    from holdpose.io.video import VideoWriter

    people = [cutout(FIXTURES / "reference" / "ref_animateanyone_anyone-3.png"),
              cutout(FIXTURES / "reference" / "ref_animateanyone_anyone-11.png"),
              cutout(FIXTURES / "reference" / "ref_animateanyone_anyone-11.png", mirror=True, recolour=60)]
    rng = np.random.default_rng(0)
    floor = np.clip(rng.normal(0, 6, (SIZE[1], SIZE[0], 1)) + np.linspace(150, 110, SIZE[1])[:, None, None], 0, 255)
    floor = np.repeat(floor, 3, -1).astype(np.uint8)
    xs = paths()
    boxes = np.full((FRAMES, 3, 4), np.nan)
    owners = np.zeros((FRAMES, SIZE[1] // OWNER_STEP, SIZE[0] // OWNER_STEP), np.int8)
    order = [0, 2, 1]  # the man in red walks in front of the others
    with VideoWriter(path, fps=FPS, size=SIZE) as writer:
        for t in range(FRAMES):
            frame = floor.copy()
            owner = np.full(SIZE[::-1], -1)
            for who in order:
                x = xs[who, t]
                if np.isnan(x):
                    continue
                image, alpha = people[who]
                y0 = 690 - HEIGHT + int(round(4 * np.sin(t / 3 + who)))  # a little bob as they walk
                x0 = int(round(x))
                left, right = max(x0, 0), min(x0 + image.shape[1], SIZE[0])
                if right <= left:
                    continue
                crop = slice(left - x0, right - x0)
                mask = alpha[:, crop] > 0
                region = frame[y0:y0 + HEIGHT, left:right]
                region[mask] = image[:, crop][mask]
                owner[y0:y0 + HEIGHT, left:right][mask] = who
            writer.write(frame)
            owners[t] = owner[OWNER_STEP // 2::OWNER_STEP, OWNER_STEP // 2::OWNER_STEP]
            for who in range(3):
                ys, xs_ = np.nonzero(owner == who)
                total = people[who][1].sum()
                if len(ys) >= 0.5 * total:
                    boxes[t, who] = [xs_.min(), ys.min(), xs_.max() + 1, ys.max() + 1]
    return boxes, owners


def build_four(path: Path, frames: int = 50) -> None:
    """Four people side by side (the woman, the man, the man in green, the woman mirrored),
    each swaying a little: the speed test's "up to 4 people"."""
    from holdpose.io.video import VideoWriter

    woman = cutout(FIXTURES / "reference" / "ref_animateanyone_anyone-3.png")
    people = [woman, cutout(FIXTURES / "reference" / "ref_animateanyone_anyone-11.png"),
              cutout(FIXTURES / "reference" / "ref_animateanyone_anyone-11.png", mirror=True, recolour=60),
              (np.ascontiguousarray(woman[0][:, ::-1]), np.ascontiguousarray(woman[1][:, ::-1]))]
    floor = np.full((SIZE[1], SIZE[0], 3), 135, np.uint8)
    with VideoWriter(path, fps=FPS, size=SIZE) as writer:
        for t in range(frames):
            frame = floor.copy()
            for who, (image, alpha) in enumerate(people):
                x0 = 40 + 310 * who + int(round(25 * np.sin(t / 6 + who)))
                y0 = 690 - HEIGHT
                mask = alpha > 0
                frame[y0:y0 + HEIGHT, x0:x0 + image.shape[1]][mask] = image[mask]
            writer.write(frame)


def timed_extract(video: Path, **options) -> tuple:
    """``extract_poses(video, max_people=4, **options)`` with its wall and CPU time (this process
    and its workers), people per frame and the load averages around it."""
    from holdpose.detect.extract import extract_poses

    before, times, start = load(), os.times(), time.perf_counter()
    seq = extract_poses(video, max_people=4, progress=False, **options)
    seconds, after = time.perf_counter() - start, os.times()
    cpu = sum(getattr(after, f) - getattr(times, f) for f in ("user", "system", "children_user", "children_system"))
    frames = seq.num_frames
    return seq, {"options": options, "frames": frames, "seconds": round(seconds, 1),
                 "frames_per_second": round(frames / seconds, 2), "cpu_seconds": round(cpu, 1),
                 "cpu_ms_per_frame": round(1000 * cpu / frames), "frames_per_second_from_cpu": round(frames / (cpu / 2), 2),
                 "people_per_frame": round(float((seq.scores.max(-1) > 0).sum() / frames), 2),
                 "load_before": before, "load_after": load()}


def interleaved_cpu(video: Path, frames: int = 50) -> dict:
    """CPU ms per frame of each way of finding people (``max_people=4``, video mode), measured in
    this process frame by frame in turn on the same frames, so that the load other jobs put on
    the machine falls on all alike: mean and median over ``frames`` frames."""
    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.io.video import FrameSource

    finders = {"detector": dict(), "detector, body only": dict(hands_and_face=False), "search (fallback)": dict(finder="search")}
    detectors = {name: MediaPipeDetector(max_people=4, video=True, **options) for name, options in finders.items()}
    cpu = {name: [] for name in finders}
    found = {name: [] for name in finders}
    try:
        for t, frame in enumerate(FrameSource(video, stop=frames)):
            names = list(finders)[t % len(finders):] + list(finders)[:t % len(finders)]  # rotate who goes first
            for name in names:
                start = time.process_time()
                found[name].append(len(detectors[name](frame)[1]))
                cpu[name].append(time.process_time() - start)
    finally:
        for detector in detectors.values():
            detector.close()
    return {name: {"cpu_ms_per_frame_mean": round(1000 * float(np.mean(cpu[name]))),
                   "cpu_ms_per_frame_median": round(1000 * float(np.median(cpu[name]))),
                   "frames_per_second_from_cpu": round(2 / float(np.mean(cpu[name])), 2),
                   "people_per_frame": round(float(np.mean(found[name])), 2)} for name in finders}


def match_by_pixels(seq, owners: np.ndarray, truth_boxes: np.ndarray) -> np.ndarray:
    """Track id matched to each true person per frame ``[T, 3]`` (-1: none).

    A detection is the person on whose pixels most of its present body keypoints (score >
    0.3) lie, if at least half of them do; when two detections claim one person in a frame,
    the one with more keypoints on them counts. Only present people (half their pixels
    showing) are matched."""
    matched = np.full(truth_boxes.shape[:2], -1)
    votes_of = np.zeros(truth_boxes.shape[:2])
    h, w = owners.shape[1:]
    for t in range(len(owners)):
        for slot in np.flatnonzero(seq.track_ids[t] >= 0):
            present = seq.scores[t, slot, :17] > 0.3
            xy = (seq.keypoints[t, slot, :17][present] / OWNER_STEP).astype(int)
            xy = xy[(xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)]
            if not len(xy):
                continue
            who = owners[t, xy[:, 1], xy[:, 0]]
            counts = np.bincount(who[who >= 0], minlength=3)
            person = int(counts.argmax())
            if counts[person] * 2 < present.sum() or not np.isfinite(truth_boxes[t, person]).all():
                continue
            if counts[person] > votes_of[t, person]:
                matched[t, person], votes_of[t, person] = seq.track_ids[t, slot], counts[person]
    return matched


def match_by_boxes(seq, truth_boxes: np.ndarray) -> np.ndarray:
    """The usual MOT matching, for comparison: detections' body boxes to the people's visible
    boxes, Hungarian on IoU >= 0.3. When the detector misses the person behind, the front
    person's skeleton can be matched to them (their visible box overlaps it), which counts
    as a switch the tracker did not make."""
    from scipy.optimize import linear_sum_assignment

    det_boxes = seq.boxes(0.3)
    matched = np.full(truth_boxes.shape[:2], -1)
    for t in range(len(truth_boxes)):
        people = np.flatnonzero(np.isfinite(truth_boxes[t]).all(-1))
        slots = np.flatnonzero(np.isfinite(det_boxes[t]).all(-1) & (seq.track_ids[t] >= 0))
        if not len(people) or not len(slots):
            continue
        a, b = truth_boxes[t, people][:, None], det_boxes[t, slots][None]
        inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
                 * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None))
        areas = [(x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1]) for x in (a, b)]
        iou = inter / np.maximum(areas[0] + areas[1] - inter, 1e-9)
        for r, c in zip(*linear_sum_assignment(-iou)):
            if iou[r, c] >= 0.3:
                matched[t, people[r]] = seq.track_ids[t, slots[c]]
    return matched


def score(seq, owners: np.ndarray, truth_boxes: np.ndarray) -> dict:
    """ID switches and fragments of ``seq``'s track ids against the composite's truth
    (pixel ownership; the box-IoU matching's switches beside it)."""
    by_boxes = _switches(match_by_boxes(seq, truth_boxes))
    return {**_switches(match_by_pixels(seq, owners, truth_boxes)),
            "present_person_frames": int(np.isfinite(truth_boxes).all(-1).sum()),
            "ids": int(len(np.unique(seq.track_ids[seq.track_ids >= 0]))),
            "box_iou_matching": by_boxes}


def _switches(matched: np.ndarray) -> dict:
    switches, fragments = 0, []
    for who in range(matched.shape[1]):
        ids = matched[:, who][matched[:, who] >= 0]
        switches += int((ids[1:] != ids[:-1]).sum())
        fragments.append(len(np.unique(ids)))
    person_frames = int((matched >= 0).sum())
    return {"id_switches": switches, "person_frames_matched": person_frames,
            "switches_per_100": round(100 * switches / max(person_frames, 1), 2),
            "fragments_per_person": round(float(np.mean(fragments)), 2), "fragments": fragments}


def main() -> None:
    if not FIXTURES.is_dir():
        print(f"skipped: {FIXTURES} is absent")
        return
    from holdpose.detect.extract import extract_poses
    from holdpose.detect.track import assign_track_ids
    from holdpose.io.posefile import save_poses
    from holdpose.refine.pipeline import refine

    OUT.mkdir(parents=True, exist_ok=True)
    video = OUT / "people_crossing.mp4"
    truth, owners = build_composite(video)
    np.savez_compressed(OUT / "people_crossing_truth.npz", boxes=truth, owners=owners)
    if "--build-only" in sys.argv:
        return
    if "--score-only" in sys.argv:  # re-score the saved detections (tracker work, no extraction)
        return rescore(truth, owners, OUT / "people_crossing.npz", video)

    path = REPO / "bench" / "results" / "people.json"
    extracted, crossing_speed = timed_extract(video)
    save_poses(extracted, OUT / "people_crossing.npz")
    speed = {"crossing, detector": crossing_speed}
    if "--tracking-only" in sys.argv:  # the other speed figures are kept from the last full run
        previous = json.loads(path.read_text())
        speed = {**previous["extraction_speed"], **speed}
        interleaved = previous["interleaved_cpu"]
        kept_from = previous.get("other_speed_figures_from", previous["commit"])
    else:
        kept_from = None
        four = OUT / "people_four.mp4"
        build_four(four)
        speed["four, detector"] = timed_extract(four)[1]
        speed["four, detector, body only"] = timed_extract(four, hands_and_face=False)[1]
        interleaved = {"crossing": interleaved_cpu(video), "four": interleaved_cpu(four)}
    if "--no-search" not in sys.argv and "--tracking-only" not in sys.argv:
        speed["four, search (fallback)"] = timed_extract(four, finder="search")[1]
        speed["crossing, search (fallback)"] = timed_extract(video, finder="search")[1]

    online = assign_track_ids(extracted)
    merged = refine(extracted, track=True)
    with_video = refine(extracted, track=True, video=video)
    results = {
        "benchmark": "people", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_state(), "cpus": os.cpu_count(),
        "input": rel(video), "frames": FRAMES, "size": list(SIZE), "fps": FPS,
        "extraction_speed": speed, "interleaved_cpu": interleaved,
        **({"other_speed_figures_from": kept_from} if kept_from else {}),
        "trackers": {
            "pose + motion, online (previous method)": score(online, owners, truth),
            "refine --track (no pixels)": score(merged, owners, truth),
            "extract --max-people 4 (appearance at extraction)": score(extracted, owners, truth),
            "refine --track --video": score(with_video, owners, truth),
        },
        "command": "python bench/bench_people.py " + " ".join(sys.argv[1:]),
    }
    path.write_text(json.dumps(results, indent=2) + "\n")
    print("| tracker | ids | ID switches / 100 person-frames | fragments / person | by box IoU: switches/100, "
          "fragments |\n|---|---|---|---|---|")
    for name, r in results["trackers"].items():
        b = r["box_iou_matching"]
        print(f"| {name} | {r['ids']} | {r['switches_per_100']} ({r['id_switches']} in {r['person_frames_matched']}) "
              f"| {r['fragments_per_person']} {r['fragments']} | {b['switches_per_100']}, {b['fragments_per_person']} |")
    print("\n| clip, finder | people/frame | frames/s | CPU ms/frame | frames/s from CPU (2 cores) | load before, after |"
          "\n|---|---|---|---|---|---|")
    for name, r in speed.items():
        print(f"| {name} | {r['people_per_frame']} | {r['frames_per_second']} | {r['cpu_ms_per_frame']} | "
              f"{r['frames_per_second_from_cpu']} | {r['load_before'][0]}, {r['load_after'][0]} |")
    print("\n| clip, finder (in-process, interleaved, 50 frames) | people/frame | CPU ms/frame mean (median) "
          "| frames/s from CPU (2 cores) |\n|---|---|---|---|")
    for clip, rows in interleaved.items():
        for name, r in rows.items():
            print(f"| {clip}, {name} | {r['people_per_frame']} | {r['cpu_ms_per_frame_mean']} "
                  f"({r['cpu_ms_per_frame_median']}) | {r['frames_per_second_from_cpu']} |")
    print(f"wrote {rel(path)}")


def rescore(truth, owners, poses, video) -> None:
    from holdpose.io.posefile import load_poses
    from holdpose.refine.pipeline import refine

    seq = load_poses(poses)
    for name, tracked in (("refine --track", refine(seq, track=True)),
                          ("refine --track --video", refine(seq, track=True, video=video))):
        print(name, score(tracked, owners, truth))


if __name__ == "__main__":
    main()
