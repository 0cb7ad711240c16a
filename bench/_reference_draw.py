"""Reference side of bench_render.py: draw pose maps with controlnet_aux 0.0.10's own code.

Runs inside the reference venv (see reference_venv.sh), never in holdpose's venv:

    python _reference_draw.py INPUT.npz OUTPUT.npy [--repeat N | --serve]

INPUT.npz (written by bench_render.py) holds, for T frames and P person slots,
``size`` (W, H), ``person_ok [T, P]`` and, per part (body 18, face 70, left_hand 21,
right_hand 21), ``<part> [T, P, K, 2]`` keypoints normalised to [0, 1] (float64) and
``<part>_ok [T, P, K]`` (score above the drawing threshold).

With ``--serve`` the caller decides when each timed pass runs (one per ``pass`` line on
stdin), so that it can interleave them with its own and compare passes run close in time.

The keypoints are turned into controlnet_aux ``Keypoint`` lists the way its detector hands
them to ``draw_poses`` (untimed), then each frame is drawn as ``draw_poses`` does it: a black
canvas, and per person draw_bodypose, draw_handpose(left), draw_handpose(right),
draw_facepose. Only that drawing loop is timed. An untimed last pass saves the maps to
OUTPUT.npy (uint8 [T, H, W, 3]); timings and versions go to stdout as one JSON line.

controlnet_aux's package __init__ imports torch/torchvision, and open_pose/body.py imports
torch, so util.py is loaded on its own, with a stub ``.body`` module giving it the two
NamedTuples it imports.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import sysconfig
import time
import types
from pathlib import Path
from typing import List, NamedTuple, Optional

import numpy as np

PARTS = ("body", "face", "left_hand", "right_hand")


class Keypoint(NamedTuple):  # as controlnet_aux.open_pose.body.Keypoint
    x: float
    y: float
    score: float = 1.0
    id: int = -1


class BodyResult(NamedTuple):  # as controlnet_aux.open_pose.body.BodyResult
    keypoints: List[Optional[Keypoint]]
    total_score: float = 0.0
    total_parts: int = 0


def load_reference_util():
    """Import controlnet_aux/open_pose/util.py without the package (and without torch)."""
    util_path = Path(sysconfig.get_paths()["purelib"]) / "controlnet_aux" / "open_pose" / "util.py"
    if not util_path.is_file():
        sys.exit(f"{util_path} not found: is controlnet-aux==0.0.10 installed in this venv?")
    package = types.ModuleType("cnaux_open_pose")
    package.__path__ = []
    body = types.ModuleType("cnaux_open_pose.body")
    body.Keypoint = Keypoint
    body.BodyResult = BodyResult
    sys.modules["cnaux_open_pose"] = package
    sys.modules["cnaux_open_pose.body"] = body
    spec = importlib.util.spec_from_file_location("cnaux_open_pose.util", util_path)
    util = importlib.util.module_from_spec(spec)
    sys.modules["cnaux_open_pose.util"] = util
    spec.loader.exec_module(util)
    return util, util_path


def keypoint_lists(data) -> list[list[tuple]]:
    """Per frame, per person: (body, left_hand, right_hand, face) as controlnet_aux gets them.

    Body: a missing point is None (as BodyResult gives it). Hands and face: a list of
    Keypoints with missing points at (-1, -1), which the reference skips (its ``x > eps``
    test; None would crash its joint loop), or None when the whole part is missing.
    """
    def body(points, ok):
        return [Keypoint(float(x), float(y)) if k else None for (x, y), k in zip(points, ok)]

    def part(points, ok):
        if not ok.any():
            return None
        return [Keypoint(float(x), float(y)) if k else Keypoint(-1.0, -1.0) for (x, y), k in zip(points, ok)]

    frames = []
    person_ok = data["person_ok"]
    arrays = {name: (data[name], data[name + "_ok"]) for name in PARTS}
    for t in range(person_ok.shape[0]):
        people = []
        for p in np.flatnonzero(person_ok[t]):
            pick = {name: (a[t, p], ok[t, p]) for name, (a, ok) in arrays.items()}
            people.append((body(*pick["body"]), part(*pick["left_hand"]), part(*pick["right_hand"]),
                           part(*pick["face"])))
        frames.append(people)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (ignored with --serve)")
    parser.add_argument("--serve", action="store_true",
                        help="print 'ready', then run one timed pass per 'pass' line read from stdin "
                             "(printing its seconds), until end of input")
    args = parser.parse_args()

    util, util_path = load_reference_util()
    import cv2
    import matplotlib

    data = np.load(args.input)
    width, height = (int(v) for v in data["size"])
    frames = keypoint_lists(data)

    def draw(people):
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        for body, left_hand, right_hand, face in people:
            canvas = util.draw_bodypose(canvas, body)
            canvas = util.draw_handpose(canvas, left_hand)
            canvas = util.draw_handpose(canvas, right_hand)
            canvas = util.draw_facepose(canvas, face)
        return canvas

    def timed_pass() -> float:
        # Each map is dropped as the next is drawn, as a consumer that encodes or writes
        # frames one by one would: holding hundreds of maps would time page faults instead.
        start = time.perf_counter()
        for people in frames:
            canvas = draw(people)
        return time.perf_counter() - start

    draw(frames[0])  # warm-up: first calls import matplotlib.colors, fault in OpenCV, ...
    seconds = []
    if args.serve:  # the caller interleaves these passes with its own
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() == "pass":
                seconds.append(timed_pass())
                print(seconds[-1], flush=True)
    else:
        seconds = [timed_pass() for _ in range(max(1, args.repeat))]

    # Untimed pass: save the maps for the pixel comparison.
    out = np.lib.format.open_memmap(args.output, mode="w+", dtype=np.uint8, shape=(len(frames), height, width, 3))
    for t, people in enumerate(frames):
        out[t] = draw(people)
    out.flush()
    del out
    print(json.dumps({
        "frames": len(frames),
        "seconds": seconds,
        "util_path": str(util_path),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "matplotlib": matplotlib.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
