import colorsys
import math

import cv2
import numpy as np
import pytest

from holdpose.convert import wholebody_to_openpose
from holdpose.errors import HoldposeError
from holdpose.render.openpose import DISK_3, DISK_4, STYLES, PoseMapRenderer, _clipped_disks, _fill, render_pose_maps
from holdpose.sequence import PoseSequence

from conftest import random_sequence

BODY_COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
               (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
               (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
LIMBS_1BASED = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
                (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
              (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]


def spec_drawing(parts, size, threshold=0.3):
    """The ControlNet OpenPose drawing written plainly, one primitive per call, from its description."""
    w, h = size
    canvas = np.zeros((h, w, 3), np.uint8)
    body, body_s = parts["body"]
    for person in range(len(body)):
        pts, sc = body[person], body_s[person]
        for (a, b), color in zip(LIMBS_1BASED, BODY_COLORS):
            a, b = a - 1, b - 1
            if sc[a] <= threshold or sc[b] <= threshold:
                continue
            xs = np.array([pts[a, 0] / w, pts[b, 0] / w]) * w
            ys = np.array([pts[a, 1] / h, pts[b, 1] / h]) * h
            length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            poly = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), 4), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in color])
        for j, color in enumerate(BODY_COLORS):
            if sc[j] > threshold:
                cv2.circle(canvas, (int(pts[j, 0] / w * w), int(pts[j, 1] / h * h)), 4, color, thickness=-1)
        for hand in ("left_hand", "right_hand"):
            hp, hs = parts[hand][0][person], parts[hand][1][person]
            xy = [(int(x / w * w), int(y / h * h)) for x, y in hp]
            ok = [s > threshold and x > 0 and y > 0 for s, (x, y) in zip(hs, xy)]
            for e, (a, b) in enumerate(HAND_EDGES):
                if ok[a] and ok[b]:
                    color = [255.0 * c for c in colorsys.hsv_to_rgb(e / 20, 1.0, 1.0)]
                    cv2.line(canvas, xy[a], xy[b], color, thickness=2)
            for j in range(21):
                if ok[j]:
                    cv2.circle(canvas, xy[j], 4, (0, 0, 255), thickness=-1)
        fp, fs = parts["face"][0][person], parts["face"][1][person]
        for (x, y), s in zip(fp, fs):
            x, y = int(x / w * w), int(y / h * h)
            if s > threshold and x > 0 and y > 0:
                cv2.circle(canvas, (x, y), 3, (255, 255, 255), thickness=-1)
    return canvas


def clustered_sequence(num_frames=8, size=(512, 768), seed=0):
    """People-shaped point clouds (limbs of realistic length, hands and face clustered)."""
    seq = random_sequence(num_frames=num_frames, num_people=2, size=size, seed=seed, missing=0.1)
    rng = np.random.default_rng(seed)
    for t in range(num_frames):
        for p in range(2):
            center = rng.uniform([100, 150], [size[0] - 100, size[1] - 150])
            seq.keypoints[t, p] = center + rng.normal(0, 60, (133, 2))
            seq.keypoints[t, p, 23:91] = center + [0, -120] + rng.normal(0, 15, (68, 2))
            seq.keypoints[t, p, 91:112] = center + [-80, 20] + rng.normal(0, 12, (21, 2))
            seq.keypoints[t, p, 112:133] = center + [80, 20] + rng.normal(0, 12, (21, 2))
    return seq


def test_renderer_matches_the_plain_drawing_pixel_for_pixel():
    seq = clustered_sequence()
    parts = wholebody_to_openpose(seq.keypoints, seq.scores)
    for t, rendered in enumerate(render_pose_maps(seq, "openpose_full")):
        expected = spec_drawing({k: (p[t], s[t]) for k, (p, s) in parts.items()}, seq.size)
        assert np.array_equal(rendered, expected), f"frame {t}: {(rendered != expected).any(-1).sum()} pixels differ"


def test_disk_scatter_equals_opencv_circles_including_borders():
    rng = np.random.default_rng(3)
    for disk, radius in ((DISK_3, 3), (DISK_4, 4)):
        centers = rng.integers(-3, 40, (60, 2))
        colors = rng.integers(0, 256, (60, 3)).astype(np.uint8)
        ours = np.zeros((37, 41, 3), np.uint8)
        flat, keep = _clipped_disks(centers, (41, 37), disk)
        _fill(ours.reshape(-1, 3), flat[keep], np.repeat(colors, len(disk), axis=0)[keep.ravel()])
        theirs = np.zeros_like(ours)
        for (x, y), c in zip(centers, colors):
            cv2.circle(theirs, (int(x), int(y)), radius, tuple(int(v) for v in c), thickness=-1)
        assert np.array_equal(ours, theirs)


def test_points_on_the_canvas_edge_draw_as_the_spec():
    """Disks that cross the border take the clipping path; the rest the precomputed one."""
    seq = random_sequence(6, num_people=2, size=(96, 80), seed=11)
    seq.keypoints[:, :, ::3] = np.clip(seq.keypoints[:, :, ::3] * 1.3 - 10, -2, 98)  # push a third to the edges
    scores = np.where(seq.track_ids[..., None] >= 0, seq.scores, 0)
    parts = wholebody_to_openpose(seq.keypoints, scores)
    for t, rendered in enumerate(render_pose_maps(seq)):
        expected = spec_drawing({k: (p[t], s[t]) for k, (p, s) in parts.items()}, seq.size)
        assert np.array_equal(rendered, expected), f"frame {t}: {(rendered != expected).any(-1).sum()} pixels differ"


def test_known_pixels_of_one_limb_and_joints():
    seq = PoseSequence.empty(1, 1, size=(200, 200))
    seq.track_ids[:] = 0
    seq.keypoints[0, 0, 6] = [50, 100]  # right shoulder -> OpenPose 2
    seq.keypoints[0, 0, 8] = [150, 100]  # right elbow -> OpenPose 3
    seq.scores[0, 0, [6, 8]] = 1
    image = next(render_pose_maps(seq, "openpose"))
    # OpenPose limb 2-3 (0-based) is the third ControlNet limb: colour 2 at 60 %
    assert tuple(image[100, 100]) == (153, 102, 0)
    assert tuple(image[100, 50]) == (255, 170, 0)  # joint 2 has colour 2
    assert tuple(image[100, 150]) == (255, 255, 0)  # joint 3 has colour 3
    assert tuple(image[110, 100]) == (0, 0, 0)  # 10 px off the limb: background
    assert image[:, :, :].any(-1).sum() < 1200


def test_bgr_style_swaps_red_and_blue_and_threshold_hides_points():
    seq = clustered_sequence(num_frames=1)
    rgb = next(render_pose_maps(seq, "openpose_full"))
    bgr = next(render_pose_maps(seq, "openpose_full_bgr"))
    assert np.array_equal(rgb[..., ::-1], bgr)
    hidden = next(render_pose_maps(seq, "openpose_full", threshold=1.0))
    assert not hidden.any()


def test_part_styles_draw_only_their_parts():
    seq = clustered_sequence(num_frames=1)
    body_only = next(render_pose_maps(seq, "openpose"))
    full = next(render_pose_maps(seq, "openpose_full"))
    assert (body_only.any(-1) <= full.any(-1)).all() and full.any(-1).sum() > body_only.any(-1).sum()
    face = next(render_pose_maps(seq, "openpose_face"))
    white = (face == 255).all(-1) & ~(body_only == 255).all(-1)
    assert white.sum() > 100  # the face dots


def test_confidence_weighted_style_dims_uncertain_limbs():
    seq = PoseSequence.empty(1, 1, size=(200, 200))
    seq.track_ids[:] = 0
    seq.keypoints[0, 0, [6, 8]] = [[50, 100], [150, 100]]
    seq.scores[0, 0, [6, 8]] = [1.0, 0.5]
    image = next(render_pose_maps(seq, "mimicmotion"))
    limb = image[100, 100][::-1]  # back to RGB
    assert tuple(limb) == (int(153 * 0.5), int(102 * 0.5), 0)


def test_render_to_another_size_scales_points():
    seq = clustered_sequence(num_frames=1, size=(256, 384))
    big = next(render_pose_maps(seq, "openpose", size=(512, 768)))
    assert big.shape == (768, 512, 3)


def test_unknown_style():
    with pytest.raises(HoldposeError, match="unknown pose map style"):
        PoseMapRenderer((10, 10), "sketch")
    assert "openpose_full" in STYLES

