"""Baseline for bench_extract.py: the plain extraction loop a tutorial writes.

OpenCV reads the video frame by frame, MediaPipe holistic (tracking mode, model
complexity 1) finds body, hands and face, the landmarks become OpenPose keypoints, the
reference drawing code (controlnet_aux 0.0.10 ``open_pose/util.py``: draw_bodypose,
draw_handpose, draw_facepose) draws the pose map, and ``cv2.imwrite`` saves one PNG per
frame. One process, one frame at a time, nothing cached.

Runs in the baseline venv (bench/baseline_venv.sh), never in holdpose's venv:

    /tmp/holdpose-baseline-venv/bin/python bench/baseline_tutorial_extract.py VIDEO OUT_DIR

Prints, as its last stdout line, one JSON object with its own time split: ``imports``
(from the first line of this script to the end of its imports; ``imports_torch`` is the
part up to the end of ``import torch``), ``setup`` (building the
Holistic graph, opening the video), ``loop`` (all frames) and, within the loop, ``read``,
``detect``, ``convert``, ``draw`` and ``write``. Interpreter start-up and exit are not in
it: bench_extract.py times the whole process from outside.
"""

import time

_T0 = time.perf_counter()

# The tutorial's drawing code is controlnet_aux, whose package imports torch (its
# open_pose/body.py does too), so a tutorial script pays for importing torch.
import torch  # noqa: E402,F401

_T_TORCH = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import cv2  # noqa: E402
import mediapipe as mp  # noqa: E402
import numpy as np  # noqa: E402

# controlnet_aux's util.py, loaded on its own with a stub ``.body`` module (the package
# __init__ also wants torchvision, timm, huggingface_hub...); see _reference_draw.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _reference_draw import Keypoint, load_reference_util  # noqa: E402

util, _util_path = load_reference_util()
_T_IMPORTS = time.perf_counter()

VISIBILITY = 0.3  # body points below this are left out, as holdpose's default threshold

# MediaPipe pose (33) -> OpenPose body 18; the neck (1) is the mean of the shoulders.
POSE_FOR_OPENPOSE = [0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7]
# A 68-point iBUG subset of the 468-point face mesh; OpenPose's face adds the two pupils
# (taken from the pose's eyes: right 5, left 2).
FACE_MESH_FOR_IBUG68 = [
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
]


def to_openpose(results):
    """MediaPipe holistic results -> (body 18, left hand 21, right hand 21, face 70) as
    controlnet_aux Keypoints (normalised x, y); a missing part is None."""
    if results.pose_landmarks is None:
        return None
    pose = results.pose_landmarks.landmark
    body = []
    for index in POSE_FOR_OPENPOSE:
        if index is None:  # neck
            l, r = pose[11], pose[12]
            ok = l.visibility > VISIBILITY and r.visibility > VISIBILITY
            body.append(Keypoint((l.x + r.x) / 2, (l.y + r.y) / 2) if ok else None)
        else:
            p = pose[index]
            body.append(Keypoint(p.x, p.y) if p.visibility > VISIBILITY else None)

    def hand(landmarks):
        if landmarks is None:
            return None
        return [Keypoint(p.x, p.y) for p in landmarks.landmark]

    face = None
    if results.face_landmarks is not None:
        mesh = results.face_landmarks.landmark
        face = [Keypoint(mesh[i].x, mesh[i].y) for i in FACE_MESH_FOR_IBUG68]
        face += [Keypoint(pose[5].x, pose[5].y), Keypoint(pose[2].x, pose[2].y)]
    return body, hand(results.left_hand_landmarks), hand(results.right_hand_landmarks), face


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} VIDEO OUT_DIR")
    video, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)

    t_setup = time.perf_counter()
    holistic = mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1)
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        sys.exit(f"{video}: cannot open")
    t_loop = time.perf_counter()

    split = dict.fromkeys(("read", "detect", "convert", "draw", "write"), 0.0)
    frames = found = 0
    while True:
        t = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        results = holistic.process(rgb)
        t2 = time.perf_counter()
        person = to_openpose(results)
        t3 = time.perf_counter()
        canvas = np.zeros_like(rgb)
        if person is not None:
            body, left_hand, right_hand, face = person
            canvas = util.draw_bodypose(canvas, body)
            canvas = util.draw_handpose(canvas, left_hand)
            canvas = util.draw_handpose(canvas, right_hand)
            canvas = util.draw_facepose(canvas, face)
            found += 1
        t4 = time.perf_counter()
        cv2.imwrite(os.path.join(out_dir, f"pose_{frames:05d}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        t5 = time.perf_counter()
        split["read"] += t1 - t
        split["detect"] += t2 - t1
        split["convert"] += t3 - t2
        split["draw"] += t4 - t3
        split["write"] += t5 - t4
        frames += 1
    cap.release()
    holistic.close()
    t_end = time.perf_counter()

    print(f"{out_dir}: {frames} pose maps ({found} with a person)", file=sys.stderr)
    print(json.dumps({
        "frames": frames, "frames_with_person": found,
        "imports": _T_IMPORTS - _T0, "imports_torch": _T_TORCH - _T0, "setup": t_loop - t_setup, "loop": t_end - t_loop, "loop_split": split,
        "python": sys.version.split()[0], "mediapipe": mp.__version__, "torch": torch.__version__,
        "numpy": np.__version__, "opencv": cv2.__version__, "util_path": str(_util_path),
    }))


if __name__ == "__main__":
    main()
