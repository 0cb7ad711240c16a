"""Pose studio figures, measured in headless Chromium.

The figures it checks (issue 20):
- first paint of a 300-frame, 133-keypoint sequence with its 512-px video: < 1.5 s;
- stepping a frame: < 50 ms to the new frame drawn, measured in the browser;
- a drag edit of one keypoint, saved: the file differs from the original in exactly that
  keypoint of that frame (round trip through the loader), for NPZ and OpenPose JSON.

Input: the fixture dance video (../shared/fixtures/videos/dance_musepose_dance.mp4, 288
frames at 24 fps) scaled to a short side of 512 px (512x910) and looped to 300 frames,
written to bench/out/studio_dance_512.mp4; its poses from holdpose's default extractor
(bench/out/dance_raw.npz, shared with bench_refine; made on first use), looped the same way.

The server is the real command (``holdpose studio ... --no-browser``) in its own process;
the browser is Debian's chromium driven by Playwright (tests/studio_browser.py). Times
come from the page itself (``performance.now()``): first paint is the first frame drawn
(video and skeleton) after navigation started, with a fresh server each run so nothing is
cached; a step is from the key press to the new frame drawn. Steps are measured walking
forward through every frame, backward over 60 frames, and jumping to 40 random frames
(a jump decodes from the key frame before it). The server's resident memory is read
after the first paint and after the walk over all 300 frames.

    .venv/bin/python bench/bench_studio.py [--runs 5]

Prints a markdown table and writes bench/results/studio.json. Skips (exit 0) without the
fixtures or a browser.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import git_state, holdpose_prefix, load, rel, video_ok  # noqa: E402
from studio_browser import NO_BROWSER, chromium_executable, headless_chromium, new_page, wait_for, wait_loaded  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
FIXTURES = REPO.parent / "shared" / "fixtures"
VIDEO = FIXTURES / "videos" / "dance_musepose_dance.mp4"
NUM_FRAMES = 300
SHORT_SIDE = 512
TARGETS = {"first_paint_s": 1.5, "step_ms": 50.0}


# --- inputs ---------------------------------------------------------------------------


def make_inputs() -> tuple[Path, Path]:
    """(poses.npz, video.mp4): 300 frames of the dance at a 512-px short side."""
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.io.video import FrameSource, VideoWriter
    from holdpose.refine.timeline import loop

    OUT.mkdir(parents=True, exist_ok=True)
    raw_path = OUT / "dance_raw.npz"
    if not raw_path.exists():
        subprocess.run(holdpose_prefix() + ["-q", "extract", str(VIDEO), "-o", str(raw_path), "--short-side",
                                            str(SHORT_SIDE)], check=True, cwd=REPO)
    raw = load_poses(raw_path)
    poses = OUT / "studio_dance_300.npz"
    save_poses(loop(raw, NUM_FRAMES / raw.num_frames), poses)
    video = OUT / "studio_dance_512.mp4"
    source = FrameSource(VIDEO, short_side=SHORT_SIDE)
    if not video_ok(video, NUM_FRAMES, source.size):
        with VideoWriter(video, fps=source.fps, size=source.size) as writer:
            written = 0
            while written < NUM_FRAMES:
                for frame in source:
                    if written == NUM_FRAMES:
                        break
                    writer.write(frame)
                    written += 1
    return poses, video


# --- the server -------------------------------------------------------------------------


class Server:
    """``holdpose studio POSES --video VIDEO --no-browser`` in its own process."""

    def __init__(self, poses: Path, video: Path | None = None):
        cmd = holdpose_prefix() + ["studio", str(poses), "--no-browser"] + (["--video", str(video)] if video else [])
        start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.start_ms = (time.perf_counter() - start) * 1000  # command launched -> URL printed
        if not line.startswith("holdpose studio: http"):
            raise SystemExit(f"studio did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split()[2]

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


# --- measurements -----------------------------------------------------------------------


def first_paints(browser, poses: Path, video: Path, runs: int) -> list[dict]:
    out = []
    for _ in range(runs):
        server = Server(poses, video)
        try:
            page = new_page(browser)
            start = time.perf_counter()
            page.goto(server.url)
            paint_ms = wait_loaded(page)
            out.append({"first_paint_ms": paint_ms, "python_wall_ms": (time.perf_counter() - start) * 1000,
                        "server_start_ms": server.start_ms, "server_rss_mb": server.rss_mb()})
            page.context.close()
        finally:
            server.stop()
    return out


def step(page, key: str, expected: int) -> float:
    before = page.evaluate("window.studio.stats.steps.length")
    page.keyboard.press(key)
    wait_for(page, f"window.studio.state.drawn === {expected} && window.studio.stats.steps.length > {before}")
    return page.evaluate("window.studio.stats.lastStep")


def jump(page, frame: int) -> float:
    before = page.evaluate("window.studio.stats.steps.length")
    page.evaluate(f"window.studio.show({frame}, {{step: true}})")
    wait_for(page, f"window.studio.state.drawn === {frame} && window.studio.stats.steps.length > {before}")
    return page.evaluate("window.studio.stats.lastStep")


def summary(values: list[float]) -> dict:
    a = np.asarray(values)
    return {"n": len(a), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def stepping(browser, poses: Path, video: Path, seed: int = 0) -> dict:
    server = Server(poses, video)
    try:
        page = new_page(browser)
        page.goto(server.url)
        wait_loaded(page)
        rss_loaded = server.rss_mb()
        forward = [step(page, "ArrowRight", t) for t in range(1, 100)]
        rss_100 = server.rss_mb()
        forward += [step(page, "ArrowRight", t) for t in range(100, NUM_FRAMES)]
        rss_walked = server.rss_mb()
        backward = [step(page, "ArrowLeft", t) for t in range(NUM_FRAMES - 2, NUM_FRAMES - 62, -1)]
        rng = np.random.default_rng(seed)
        jumps = [jump(page, int(t)) for t in rng.integers(0, NUM_FRAMES, 40)]
        page.context.close()
    finally:
        server.stop()
    return {"forward_ms": summary(forward), "backward_ms": summary(backward), "jump_ms": summary(jumps),
            "server_rss_mb": {"after_first_paint": rss_loaded, "after_100_frames": rss_100,
                              "after_all_300_frames": rss_walked}}


def drag_edit_save(browser, poses: Path, video: Path, suffix: str) -> dict:
    """Drag one keypoint of frame 150 in the page, save, and diff the file against the original."""
    from holdpose.io.posefile import load_poses, save_poses
    from holdpose.skeleton import COCO_WHOLEBODY

    work = OUT / "studio_edit"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path = work / f"poses{suffix}"
    save_poses(load_poses(poses), path, **({"confidences": "real"} if suffix == ".json" else {}))
    original = load_poses(path)
    frame = 150
    k = next(COCO_WHOLEBODY.index(name) for name in ("right_wrist", "left_wrist", "right_elbow", "nose")
             if original.scores[frame, 0, COCO_WHOLEBODY.index(name)] > 0.5)
    server = Server(path, video)
    try:
        page = new_page(browser)
        page.goto(server.url)
        wait_loaded(page)
        jump(page, frame)
        x, y = page.evaluate(f"window.studio.pointOnScreen(0, {k})")
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 25, y - 15, steps=5)
        page.mouse.up()
        wait_for(page, "!document.getElementById('undo').disabled")
        in_page = page.evaluate(f"window.studio.point({frame}, 0, {k})")
        page.keyboard.press("Control+s")
        wait_for(page, "document.getElementById('status').textContent.startsWith('saved')")
        page.context.close()
    finally:
        server.stop()
    saved = load_poses(path)
    diff = (saved.keypoints != original.keypoints).any(-1) | (saved.scores != original.scores)
    diff[np.any(saved.track_ids != original.track_ids, axis=1)] = True  # a changed person id counts everywhere
    changed = [tuple(int(v) for v in i) for i in np.argwhere(diff)]
    moved = saved.keypoints[frame, 0, k]
    return {"format": suffix, "changed_points": changed, "expected": [[frame, 0, k]],
            "exact": changed == [(frame, 0, k)],
            "moved_px": (moved - original.keypoints[frame, 0, k]).round(2).tolist(),
            "saved_equals_page": bool(np.allclose(moved, in_page[:2], atol=0.005 if suffix == ".json" else 0))}


# --- main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="first-paint runs, each with a fresh server (default 5)")
    args = parser.parse_args()
    if not VIDEO.exists():
        print(f"SKIP: {VIDEO} is absent")
        return 0
    if chromium_executable() is None:
        print(f"SKIP: {NO_BROWSER}")
        return 0
    poses, video = make_inputs()
    with headless_chromium() as browser:
        paints = first_paints(browser, poses, video, args.runs)
        steps = stepping(browser, poses, video)
        edits = [drag_edit_save(browser, poses, video, suffix) for suffix in (".npz", ".json")]
        version = browser.version
    first_paint = summary([p["first_paint_ms"] for p in paints])
    result = {
        "benchmark": "studio",
        "figure": "First paint of a 300-frame, 133-keypoint sequence with its 512-px video < 1.5 s in headless "
                  "Chromium; stepping a frame < 50 ms to the new frame drawn; a saved drag edit changes exactly "
                  "that keypoint of that frame.",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count(), "load_average": load(),
                    "chromium": version},
        "inputs": {"poses": rel(poses), "video": rel(video), "frames": NUM_FRAMES, "keypoints": 133,
                   "video_size": list(__import__("holdpose.io.video", fromlist=["FrameSource"]).FrameSource(video).size)},
        "first_paint": {"runs": paints, "ms": first_paint},
        "stepping": steps,
        "drag_edit_save": edits,
        "targets": TARGETS,
        "met": {
            "first_paint": first_paint["max"] / 1000 < TARGETS["first_paint_s"],
            "step_forward_p95": steps["forward_ms"]["p95"] < TARGETS["step_ms"],
            "step_backward_p95": steps["backward_ms"]["p95"] < TARGETS["step_ms"],
            "exact_diff": all(e["exact"] and e["saved_equals_page"] for e in edits),
        },
    }
    out = REPO / "bench" / "results" / "studio.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("| measure | median | p95 | max | target |\n|---|---|---|---|---|")
    print(f"| first paint (ms, {args.runs} fresh servers) | {first_paint['median']:.0f} | {first_paint['p95']:.0f} | "
          f"{first_paint['max']:.0f} | < 1500 |")
    for name in ("forward", "backward", "jump"):
        s = steps[f"{name}_ms"]
        print(f"| step {name} (ms, n={s['n']}) | {s['median']:.1f} | {s['p95']:.1f} | {s['max']:.1f} | < 50 |")
    rss = steps["server_rss_mb"]
    start = summary([p["server_start_ms"] for p in paints])
    print(f"\nserver: command to URL printed {start['median']:.0f} ms (median); RSS {rss['after_first_paint']:.0f} MB "
          f"after the first paint, {rss['after_100_frames']:.0f} MB after 100 frames, "
          f"{rss['after_all_300_frames']:.0f} MB after all 300")
    for e in edits:
        print(f"drag-edit-save {e['format']}: changed {e['changed_points']} (exact: {e['exact']}), "
              f"moved {e['moved_px']} px, saved equals page: {e['saved_equals_page']}")
    print(f"met: {result['met']}  (load {load()})\n-> {rel(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
