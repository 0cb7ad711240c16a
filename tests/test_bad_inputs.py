"""The bad-input battery: every subcommand, given what a careful user might give it by
mistake, answers with exit 2, exactly one ``holdpose: error:`` line naming the problem, no
traceback, and leaves nothing in the output folder nor changes any input.

Each case runs ``holdpose.cli.main`` in this process (fd-level capture, so native
libraries' stderr noise counts too); the inputs are made once per module.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from holdpose.cli import main
from holdpose.io.posefile import save_poses
from holdpose.io.video import VideoWriter, write_image

from conftest import random_sequence


# --- inputs -----------------------------------------------------------------------


def _frame(**changes) -> dict:
    frame = {"people": [{"person_id": [0], "pose_keypoints_2d": [10, 10, 1] * 18}], "canvas_width": 64,
             "canvas_height": 64, "fps": 25, "coordinates": "pixels"}
    person = changes.pop("person", {})
    frame["people"][0].update(person)
    frame.update(changes)
    return frame


BAD_JSON = {
    "broken": '[{"people": [',
    "empty": "",
    "number": "42",
    "numbers": "[1, 2, 3]",
    "no_people": json.dumps([{"canvas_width": 64}]),
    "people_not_list": json.dumps([{"people": {"a": 1}}]),
    "person_list": json.dumps([{"people": [[1, 2, 3]]}]),
    "person_string": json.dumps([{"people": ["me"]}]),
    "kp_strings": json.dumps([_frame(person={"pose_keypoints_2d": ["1", "2", "1"] * 18})]),
    "kp_not_triplets": json.dumps([_frame(person={"pose_keypoints_2d": [1, 2] * 18})]),
    "kp_17_points": json.dumps([_frame(person={"pose_keypoints_2d": [10, 10, 1] * 17})]),
    "kp_bool": json.dumps([_frame(person={"pose_keypoints_2d": [True, 10, 1] * 18})]),
    "kp_nested": json.dumps([_frame(person={"pose_keypoints_2d": [[10, 10, 1]] * 18})]),
    "face_3_points": json.dumps([_frame(person={"face_keypoints_2d": [10, 10, 1] * 3})]),
    "hand_5_points": json.dumps([_frame(person={"hand_left_keypoints_2d": [10, 10, 1] * 5})]),
    "kp_nan": json.dumps([_frame(person={"pose_keypoints_2d": [float("nan"), 10, 1] * 18})]),
    "kp_inf": json.dumps([_frame(person={"pose_keypoints_2d": [float("inf"), 10, 1] * 18})]),
    "kp_400_digits": json.dumps([_frame(person={"pose_keypoints_2d": [10, 10, 1] * 18})]).replace(
        "[10, 10", "[" + "9" * 400 + ", 10", 1),
    "kp_5000_digits": json.dumps([_frame()]).replace("[10, 10", "[" + "9" * 5000 + ", 10", 1),
    "kp_far": json.dumps([_frame(person={"pose_keypoints_2d": [1e6, 10, 1] * 18})]),
    "canvas_nan": json.dumps([_frame(canvas_width=float("nan"))]),
    "canvas_text": json.dumps([_frame(canvas_width="wide")]),
    "canvas_zero": json.dumps([_frame(canvas_width=0)]),
    "canvas_negative": json.dumps([_frame(canvas_height=-5)]),
    "canvas_huge": json.dumps([_frame(canvas_width=10**9, canvas_height=10**9)]),
    "canvas_fraction": json.dumps([_frame(canvas_width=64.5)]),
    "canvas_width_only": json.dumps([{k: v for k, v in _frame().items() if k != "canvas_height"}]),
    "fps_text": json.dumps([_frame(fps="fast")]),
    "fps_nan": json.dumps([_frame(fps=float("nan"))]),
    "fps_negative": json.dumps([_frame(fps=-24)]),
    "fps_zero": json.dumps([_frame(fps=0)]),
    "fps_inf": json.dumps([_frame(fps=float("inf"))]),
    "fps_huge": json.dumps([_frame(fps=1e9)]),
    "fps_bool": json.dumps([_frame(fps=True)]),
    "pid_inf": json.dumps([_frame(person={"person_id": float("inf")})]),
    "pid_2_63": json.dumps([_frame(person={"person_id": [2**63]})]),
    "pid_1e12": json.dumps([_frame(person={"person_id": 1e12})]),
    "pid_text": json.dumps([_frame(person={"person_id": "bob"})]),
    "pid_fraction": json.dumps([_frame(person={"person_id": 1.5})]),
    "pid_negative": json.dumps([_frame(person={"person_id": -7})]),
    "pid_dict": json.dumps([_frame(person={"person_id": {"id": 1}})]),
    "deep_1000": "[" * 1000 + "]" * 1000,
    "deep_100000": "[" * 100000 + "]" * 100000,
    "coordinates_bogus": json.dumps([_frame(coordinates="inches")]),
    "coordinates_list": json.dumps([_frame(coordinates=["pixels"])]),
    "normalised_no_canvas": json.dumps([{"people": [{"pose_keypoints_2d": [0.5, 0.5, 1] * 18}],
                                         "coordinates": "normalized"}]),
    "no_canvas_no_points": json.dumps([{"people": []}]),
    "empty_list": "[]",
    "not_utf8": b"\xff\xfe[{\x00".decode("latin-1"),
    "score_text": json.dumps([_frame(person={"pose_keypoints_2d": [10, 10, "x"] * 18})]),
}


def _npz(path: Path, **changes) -> None:
    seq = random_sequence(num_frames=2, num_people=1, size=(64, 64))
    arrays = {"format": np.array("holdpose-npz-1"), "keypoints": seq.keypoints, "scores": seq.scores,
              "track_ids": seq.track_ids, "layout": np.array(seq.layout.name), "size": np.array(seq.size),
              "fps": np.array(seq.fps), "interpolated": seq.interpolated}
    arrays.update(changes)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})


def _huge_header_npz(path: Path) -> None:
    _npz(path)
    member = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**7, 1000, 133, 2)})
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["keypoints.npy"] = member.getvalue() + b"\0" * 64
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _corrupt_deflate(path: Path) -> None:
    _npz(path)
    data = bytearray(path.read_bytes())
    for i in range(200, 400, 7):  # inside the first member's compressed bytes
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


BAD_NPZ = {
    "npz_size_3": dict(size=np.array([64, 64, 3])),
    "npz_size_negative": dict(size=np.array([-64, 64])),
    "npz_size_huge": dict(size=np.array([10**9, 10**9])),
    "npz_size_text": dict(size=np.array(["a", "b"])),
    "npz_fps_nan": dict(fps=np.array(np.nan)),
    "npz_fps_negative": dict(fps=np.array(-24.0)),
    "npz_fps_huge": dict(fps=np.array(1e9)),
    "npz_fps_text": dict(fps=np.array("fast")),
    "npz_layout_unknown": dict(layout=np.array("openpose_99")),
    "npz_no_format": dict(format=None),
    "npz_wrong_format": dict(format=np.array("other-1")),
    "npz_no_keypoints": dict(keypoints=None),
    "npz_shape_mismatch": dict(scores=np.zeros((3, 1, 133), np.float32)),
    "npz_keypoints_nan": dict(keypoints=np.full((2, 1, 133, 2), np.nan, np.float32)),
    "npz_scores_2": dict(scores=np.full((2, 1, 133), 2.0, np.float32)),
    "npz_track_2_40": dict(track_ids=np.full((2, 1), 2**40, np.int64)),
    "npz_complex": dict(keypoints=np.ones((2, 1, 133, 2), np.complex64)),
    "npz_keypoints_text": dict(keypoints=np.full((2, 1, 133, 2), "a")),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    for name, text in BAD_JSON.items():
        (d / f"{name}.json").write_text(text, encoding="latin-1" if name == "not_utf8" else "utf-8")
    for name, changes in BAD_NPZ.items():
        _npz(d / f"{name}.npz", **changes)
    _huge_header_npz(d / "npz_huge_header.npz")
    _corrupt_deflate(d / "npz_corrupt_deflate.npz")
    (d / "npz_not_zip.npz").write_text("hello")
    (d / "npz_empty.npz").write_bytes(b"")
    good = random_sequence(num_frames=3, num_people=1, size=(64, 64), missing=0.0)
    save_poses(good, d / "good.npz")
    save_poses(good, d / "good.json")
    save_poses(good[:1], d / "one.npz")
    (d / "empty_folder").mkdir()
    (d / "bad_folder").mkdir()
    (d / "bad_folder" / "frame_000000.json").write_text("{")
    (d / "poses.txt").write_text("x")
    write_image(d / "blank.png", np.zeros((64, 64, 3), np.uint8))
    png = (d / "blank.png").read_bytes()  # IHDR width/height at bytes 16..24
    ihdr = png[12:16] + (60000).to_bytes(4, "big") * 2 + png[24:29]  # a valid header claiming 60000x60000
    (d / "huge.png").write_bytes(png[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + png[33:])
    (d / "corrupt.png").write_bytes(png[:60] + b"\0" * 40 + png[100:])
    (d / "text.png").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video\n" * 50)
    with VideoWriter(d / "clip.mp4", fps=10, size=(64, 64)) as writer:
        for i in range(4):
            writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    (d / "empty.bvh").write_text("")
    (d / "text.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    motion = {"size": [64, 64], "fps": 10, "keyframes": [{"time": 0, "pose": {"nose": [10, 10]}},
                                                         {"time": 1, "pose": {"nose": [20, 10]}}]}
    for name, change in {"fps_nan": {"fps": float("nan")}, "fps_negative": {"fps": -5}, "no_size": {"size": None},
                         "size_huge": {"size": [10**9, 10**9]}, "no_keyframes": {"keyframes": []},
                         "time_nan": {"keyframes": [{"time": float("nan"), "pose": {"nose": [1, 1]}}]},
                         "point_text": {"keyframes": [{"time": 0, "pose": {"nose": ["a", 1]}}]},
                         "list": None}.items():
        doc = [] if change is None else {**motion, **change}
        (d / f"motion_{name}.json").write_text(json.dumps({k: v for k, v in doc.items() if v is not None}
                                                          if isinstance(doc, dict) else doc))
    annotations = {"images": [{"id": 1, "file_name": "blank.png", "width": 64, "height": 64}],
                   "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                    "bbox": [1, 1, 30, 30], "num_keypoints": 17, "area": 900,
                                    "keypoints": [10, 10, 2] * 17}], "categories": [{"id": 1, "name": "person"}]}
    no_bbox = json.loads(json.dumps(annotations))
    del no_bbox["annotations"][0]["bbox"]
    nan_kp = json.loads(json.dumps(annotations))
    nan_kp["annotations"][0]["keypoints"][0] = float("nan")
    (d / "coco_no_bbox.json").write_text(json.dumps(no_bbox))
    (d / "coco_nan.json").write_text(json.dumps(nan_kp))
    (d / "coco_list.json").write_text("[]")
    (d / "a_file").write_text("I am a file")
    (d / "junk.pt").write_bytes(b"junk" * 10)
    frames = d / "run.frames"
    frames.mkdir()
    (frames / "manifest.json").write_text("[]")
    return d


# --- cases ------------------------------------------------------------------------

ARGUMENT_CASES = [
    # extract
    ("extract {i}/blank.png -o {o}/p.json --fps nan", "frame rate"),
    ("extract {i}/blank.png -o {o}/p.json --fps -5", "frame rate"),
    ("extract {i}/blank.png -o {o}/p.json --fps 0", "frame rate"),
    ("extract {i}/blank.png -o {o}/p.json --fps inf", "frame rate"),
    ("extract {i}/blank.png -o {o}/p.json --fps 1e9", "frame rate"),
    ("extract {i}/blank.png -o {o}/p.json --fps fast", "frame rate"),
    ("extract {i}/blank.png -o {o}/p.json --max-people 0", "max-people"),
    ("extract {i}/blank.png -o {o}/p.json --max-people 1.5", "whole number"),
    ("extract {i}/blank.png -o {o}/p.json --max-people 99999999999", "whole number"),
    ("extract {i}/blank.png -o {o}/p.json --short-side 0", "short-side"),
    ("extract {i}/blank.png -o {o}/p.json --workers -2", "workers"),
    ("extract {i}/blank.png -o {o}/p.json --detector openpose", "invalid choice"),
    ("extract {i}/blank.png", "-o/--output"),
    # render
    ("render {i}/good.npz -o {o}/m.mp4 --size 0x10", "size must be positive"),
    ("render {i}/good.npz -o {o}/m.mp4 --size 100000x100000", "limit"),
    ("render {i}/good.npz -o {o}/m.mp4 --size 9000x9000", "limit"),
    ("render {i}/good.npz -o {o}/m.mp4 --size big", "512x768"),
    ("render {i}/good.npz -o {o}/m.mp4 --size 10x", "512x768"),
    ("render {i}/good.npz -o {o}/m.mp4 --canvas 0x5", "size"),
    ("render {i}/good.npz -o {o}/m.mp4 --threshold nan", "threshold"),
    ("render {i}/good.npz -o {o}/m.mp4 --threshold 2", "threshold"),
    ("render {i}/good.npz -o {o}/m.mp4 --style bogus", "invalid choice"),
    # refine
    ("refine {i}/good.npz -o {o}/r.npz --fps nan", "frame rate"),
    ("refine {i}/good.npz -o {o}/r.npz --fps 0", "frame rate"),
    ("refine {i}/good.npz -o {o}/r.npz --fps 1e9", "frame rate"),
    ("refine {i}/good.npz -o {o}/r.npz --fps -30", "frame rate"),
    ("refine {i}/good.npz -o {o}/r.npz --smooth --smooth-window 0", "smooth-window"),
    ("refine {i}/good.npz -o {o}/r.npz --smooth --smooth-window -1", "smooth-window"),
    ("refine {i}/good.npz -o {o}/r.npz --smooth --smooth-window nan", "smooth-window"),
    ("refine {i}/good.npz -o {o}/r.npz --fill --max-gap 0", "max-gap"),
    ("refine {i}/good.npz -o {o}/r.npz --smooth bogus", "invalid choice"),
    # keyframes
    ("keyframes wave -o {o}/k.json --fps nan", "frame rate"),
    ("keyframes wave -o {o}/k.json --fps -24", "frame rate"),
    ("keyframes wave -o {o}/k.json --easing bouncy", "invalid choice"),
    # edit
    ("edit {i}/good.npz -o {o}/e.npz --move head 1 1 --start nan", "start"),
    ("edit {i}/good.npz -o {o}/e.npz --move head 1 1 --start -1", "start"),
    ("edit {i}/good.npz -o {o}/e.npz --move head 1 1 --end inf", "end"),
    ("edit {i}/good.npz -o {o}/e.npz --move head 1 1 --ramp -1", "ramp"),
    ("edit {i}/good.npz -o {o}/e.npz --move head 1 1 --ramp nan", "ramp"),
    # import-bvh
    ("import-bvh {i}/text.bvh -o {o}/b.json --size 0x0", "size"),
    ("import-bvh {i}/text.bvh -o {o}/b.json --azimuth nan", "azimuth"),
    ("import-bvh {i}/text.bvh -o {o}/b.json --elevation inf", "elevation"),
    ("import-bvh {i}/text.bvh -o {o}/b.json --focal-length 0", "focal-length"),
    ("import-bvh {i}/text.bvh -o {o}/b.json --focal-length nan", "focal-length"),
    ("import-bvh {i}/text.bvh -o {o}/b.json --fps 0", "frame rate"),
    # animate
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --seed -1", "seed"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --seed 1e3", "seed"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --seed 99999999999999", "seed"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --person -1", "person"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --person x", "person"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --backend sora", "invalid choice"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --backend controlnet --controlnet-scale nan", "controlnet-scale"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --backend controlnet --guidance nan", "guidance"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --backend controlnet --guidance inf", "guidance"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --backend controlnet --steps 0", "steps"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --backend controlnet --strength nan", "strength"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --backend controlnet --ip-adapter-scale nan", "ip-adapter"),
    # evaluate, compare, evaluate-detector
    ("evaluate {i}/text.mp4 -o {o}/rep --min-score 2", "min-score"),
    ("evaluate {i}/text.mp4 -o {o}/rep --min-score nan", "min-score"),
    ("evaluate {i}/text.mp4 -o {o}/rep --max-people 0", "max-people"),
    ("evaluate {i}/text.mp4 -o {o}/rep --workers 0", "workers"),
    ("evaluate {i}/text.mp4 -o {o}/rep --worst-frames -1", "worst-frames"),
    ("evaluate {i}/text.mp4 -o {o}/rep --flow magic", "invalid choice"),
    ("evaluate {i}/text.mp4 -o {o}/rep --detector openpose", "invalid choice"),
    ("compare {i}/text.mp4 --target {i}/good.npz -o {o}/cmp --tile-height 0", "tile-height"),
    ("compare {i}/text.mp4 --target {i}/good.npz -o {o}/cmp --max-people -3", "max-people"),
    ("compare {i}/text.mp4 -o {o}/cmp", "--target"),
    ("evaluate-detector {i} {i}/coco_nan.json -o {o}/det --pck-alpha nan", "pck-alpha"),
    ("evaluate-detector {i} {i}/coco_nan.json -o {o}/det --pck-alpha 2", "pck-alpha"),
    ("evaluate-detector {i} {i}/coco_nan.json -o {o}/det --max-people 0", "max-people"),
    ("evaluate-detector {i} {i}/coco_nan.json -o {o}/det --mode sideways", "invalid choice"),
    # studio, top level
    ("studio {i}/good.npz --port -1 --no-browser", "port"),
    ("studio {i}/good.npz --port 70000 --no-browser", "port"),
    ("studio {i}/good.npz --port http --no-browser", "port"),
    ("transmogrify x", "invalid choice"),
    ("", "required"),
]

LOADER_CASES = (
    [(f"render {{i}}/{name}.json -o {{o}}/m.mp4", "") for name in BAD_JSON]
    + [(f"render {{i}}/{name}.npz -o {{o}}/m.mp4", "") for name in BAD_NPZ]
    + [(f"refine {{i}}/{name}.npz -o {{o}}/r.json", "") for name in
       ("npz_huge_header", "npz_corrupt_deflate", "npz_not_zip", "npz_empty")]
    + [
        ("render {i}/empty_folder -o {o}/m.mp4", "no .json"),
        ("render {i}/bad_folder -o {o}/m.mp4", "not readable JSON"),
        ("render {i}/poses.txt -o {o}/m.mp4", "unknown pose file type"),
        ("render {i}/missing.json -o {o}/m.mp4", "no such file"),
        ("refine {i}/kp_nan.json -o {o}/r.npz", "NaN"),
        ("edit {i}/fps_nan.json -o {o}/e.json --move head 1 1", "fps"),
        ("align {i}/pid_1e12.json --reference {i}/good.npz -o {o}/al.json", "person_id"),
        ("align {i}/good.npz --reference {i}/canvas_nan.json -o {o}/al.json", "canvas"),
        ("align {i}/good.npz --reference {i}/missing.png -o {o}/al.json", "no such file"),
        ("studio {i}/deep_1000.json --no-browser", "nested"),
        ("studio {i}/missing.json --no-browser", "no such file"),
        ("evaluate {i}/text.mp4 --target {i}/fps_zero.json -o {o}/rep", "fps|not a readable video"),
        # images and videos
        ("extract {i}/huge.png -o {o}/p.json", "limit|too large"),
        ("extract {i}/corrupt.png -o {o}/p.json", "not a readable image"),
        ("extract {i}/text.png -o {o}/p.json", "not a readable image"),
        ("extract {i}/empty.png -o {o}/p.json", "not a readable image|empty"),
        ("extract {i}/empty_folder -o {o}/p.json", "no images"),
        ("extract {i}/empty.mp4 -o {o}/p.json", "empty"),
        ("extract {i}/text.mp4 -o {o}/p.json", "not a readable video"),
        ("extract {i}/missing.mp4 -o {o}/p.json", "no such file"),
        ("animate {i}/huge.png {i}/good.npz -o {o}/a.mp4", "limit|too large"),
        ("animate {i}/text.png {i}/good.npz -o {o}/a.mp4", "not a readable image"),
        ("animate {i}/blank.png {i}/kp_inf.json -o {o}/a.mp4", "NaN or infinite"),
        ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --no-align --person 5", "person 5"),
        ("evaluate {i}/empty.mp4 -o {o}/rep", "empty"),
        ("evaluate {i}/missing.mp4 -o {o}/rep", "no such file"),
        ("compare {i}/text.mp4 --target {i}/kp_nan.json -o {o}/cmp", "NaN"),
        ("compare {i}/text.mp4 {i}/text.mp4 --target {i}/good.npz -o {o}/cmp --labels one", "labels"),
        # motion, BVH and COCO files
        ("import-bvh {i}/empty.bvh -o {o}/b.json", "bvh|BVH"),
        ("import-bvh {i}/text.bvh -o {o}/b.json", "bvh|BVH"),
        ("import-bvh {i}/missing.bvh -o {o}/b.json", "no such BVH file"),
        ("keyframes {i}/motion_fps_nan.json -o {o}/k.json", "fps"),
        ("keyframes {i}/motion_fps_negative.json -o {o}/k.json", "fps"),
        ("keyframes {i}/motion_no_size.json -o {o}/k.json", "size"),
        ("keyframes {i}/motion_size_huge.json -o {o}/k.json", "size|limit"),
        ("keyframes {i}/motion_no_keyframes.json -o {o}/k.json", "keyframe"),
        ("keyframes {i}/motion_time_nan.json -o {o}/k.json", "time"),
        ("keyframes {i}/motion_point_text.json -o {o}/k.json", "point"),
        ("keyframes {i}/motion_list.json -o {o}/k.json", "motion"),
        ("keyframes dance -o {o}/k.json", "no such motion file|built-in"),
        ("evaluate-detector {i} {i}/coco_nan.json -o {o}/det", "NaN|finite"),
        ("evaluate-detector {i} {i}/coco_no_bbox.json -o {o}/det", "bbox"),
        ("evaluate-detector {i} {i}/coco_list.json -o {o}/det", "COCO"),
        ("evaluate-detector {i} {i}/broken.json -o {o}/det", "COCO"),
        ("evaluate-detector {i}/missing {i}/coco_nan.json -o {o}/det", "not a folder"),
    ]
)

OUTPUT_CASES = [
    ("render {i}/good.npz -o /proc/holdpose_test/m.mp4", "/proc"),
    ("render {i}/good.npz -o {i}/a_file/m.mp4", "is a file"),
    ("render {i}/good.npz -o {o}/m.gif", "output must be"),
    ("render {i}/good.npz -o {o}/m.avi", "output must be"),
    ("render {i}/good.npz -o {o}/m.txt", "output must be"),
    ("render {i}/good.npz -o {o}/m.png", "one image holds one frame"),
    ("render {i}/good.npz -o {i}/good.npz", "output must be|also an input"),
    ("extract {i}/blank.png -o {o}/p.txt", "pose file must be"),
    ("extract {i}/blank.png -o {i}/blank.png", "pose file must be|also an input"),
    ("extract {i}/blank.png -o {i}/a_file/p.json", "is a file"),
    ("refine {i}/good.json -o {i}/good.json", "also an input"),
    ("refine {i}/good.npz -o {o}/r.npz --max-gap 3", "--max-gap only applies with --fill"),
    ("refine {i}/good.npz -o {o}/r.npz --plot {o}/plot.txt", "plot must be"),
    ("refine {i}/good.npz -o {o}/r.npz --plot {i}/good.npz", "plot must be|also an input"),
    ("refine {i}/good.npz -o {o}/r.npz --plot {o}/p.png --plot-keypoint elbow", "keypoint"),
    ("refine {i}/good.npz -o {o}/r.npz --smooth one_euro --smooth-window 1", "smooth_window|smooth-window"),
    ("refine {i}/good.npz -o /proc/holdpose_test.npz", "/proc"),
    ("keyframes wave -o {o}/k.csv", "pose file must be"),
    ("keyframes wave -o {i}/a_file/k.json", "is a file"),
    ("edit {i}/good.npz -o {o}/e.npz --move left_forearm a b", "--move left_forearm"),
    ("edit {i}/good.npz -o {o}/e.npz --move tail 1 1", "unknown part 'tail'"),
    ("edit {i}/good.npz -o {o}/e.npz --rotate left_arm nan", "--rotate left_arm"),
    ("edit {i}/good.npz -o {o}/e.npz --scale left_arm 0", "scale factor"),
    ("edit {i}/good.npz -o {o}/e.npz --scale left_arm -2", "scale factor"),
    ("edit {i}/good.npz -o {o}/e.npz", "nothing to edit"),
    ("edit {i}/good.npz -o {o}/e.npz --move head 1 1 --start 5 --end 2", "start < end"),
    ("edit {i}/good.npz -o {i}/good.npz --move head 1 1", "also an input"),
    ("import-bvh {i}/text.bvh -o {o}/b.mp4", "pose file must be"),
    ("align {i}/good.npz --reference {i}/good.npz -o {i}/good.npz", "also an input"),
    ("align {i}/good.npz --reference {i}/blank.png -o {o}/al.txt", "pose file must be"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.gif", "mp4"),
    ("animate {i}/blank.png {i}/good.npz -o {i}/blank.png", "mp4|also an input"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --side-by-side {o}/a.mp4", "side-by-side"),
    ("animate {i}/blank.png {i}/good.npz -o {o}/a.mp4 --side-by-side {o}/s.gif", "side-by-side"),
    ("animate {i}/blank.png {i}/good.npz -o {i}/a_file/a.mp4", "is a file"),
    ("animate {i}/blank.png {i}/good.npz -o {i}/run.mp4", "manifest"),
    ("animate {i}/blank.png {i}/good.npz -o /proc/holdpose_test.mp4", "/proc"),
    ("evaluate {i}/text.mp4 -o {i}/a_file", "not a folder"),
    ("evaluate {i}/clip.mp4 -o {o}/rep --lpips", "lpips compares the video with a ground truth"),
    ("evaluate {i}/clip.mp4 -o {o}/rep --fid-features {i}/junk.pt --fvd-model {i}/junk.pt", "ground truth"),
    ("evaluate {i}/clip.mp4 -o {o}/rep --ground-truth {i}/clip.mp4 --fid-features {i}/junk.pt",
     "runs code from the file; pass --allow-pickle"),
    ("evaluate {i}/clip.mp4 -o {o}/rep --ground-truth {i}/clip.mp4 --fid-features {i}/junk.pt --allow-pickle",
     "not a TorchScript model"),
    ("evaluate {i}/clip.mp4 -o {o}/rep --target {i}/missing.json", "no such file"),
    ("evaluate {i}/clip.mp4 -o {o}/rep --target {i}/pid_text.json", "person_id"),
    ("evaluate {i}/clip.mp4 -o {i}/clip.mp4", "not a folder|also an input"),
    ("compare {i}/text.mp4 --target {i}/good.npz -o {i}/a_file", "not a folder"),
    ("evaluate-detector {i} {i}/coco_nan.json -o {i}/a_file", "not a folder"),
    ("demo -o {i}/a_file", "not a folder"),
    ("demo -o {o}/demo --video {i}/empty.mp4", "empty"),
    ("demo -o {o}/demo --reference {i}/text.png", "not a readable image"),
    ("studio {i}/npz_fps_nan.npz --no-browser", "fps"),
]

CASES = ARGUMENT_CASES + LOADER_CASES + OUTPUT_CASES


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's usage errors and --help
        return exit_.code


@pytest.mark.parametrize("command, message", CASES, ids=[c[0][:70] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(inputs, tmp_path, capfd, command, message):
    out = tmp_path / "out"
    out.mkdir()
    before = _tree(inputs)
    argv = [part.format(i=inputs, o=out) for part in command.split()]
    code = run_main(["-q", *argv] if argv else [])
    captured = capfd.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("holdpose: error:")]
    noise = [line for line in captured.err.splitlines()
             if line.strip() and not line.startswith(("holdpose: error:", "holdpose: WARNING:"))]
    assert code == 2, captured.err
    assert len(errors) == 1, captured.err
    assert "Traceback" not in captured.err and not noise, captured.err
    assert re.search(message, errors[0]), errors[0]
    assert list(out.iterdir()) == [], "left behind after the failure"
    assert _tree(inputs) == before, "an input was changed"


def test_the_battery_is_large():
    assert len(CASES) >= 150
    assert {c[0].split()[0] for c in CASES if c[0]} >= {
        "extract", "render", "refine", "keyframes", "edit", "import-bvh", "align", "animate", "evaluate", "compare",
        "evaluate-detector", "studio", "demo"}
