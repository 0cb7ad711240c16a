"""Stable-Pose's numpy signals (SEED_MODULES §1.1-1.2): the HumanSD pose image, the coarse-to-fine
masks, and the COCO keypoint files its training reads."""

import colorsys

import cv2
import numpy as np
import pytest

from holdpose.errors import HoldposeError
from holdpose.io.coco import CocoImage, read_coco_keypoints, write_coco_keypoints
from holdpose.render.humansd import HUMANSD_LIMBS, LIMB_COLORS, draw_humansd, pose_image_tensor_values
from holdpose.render.openpose import render_pose_maps
from holdpose.render.pose_masks import coarse_to_fine_masks, pose_mask
from holdpose.render.styles import STYLES
from holdpose.sequence import PoseSequence

from conftest import FIXTURES


def one_person(points: dict, score: float = 1.0):
    keypoints = np.zeros((1, 133, 2), np.float32)
    scores = np.zeros((1, 133), np.float32)
    for index, xy in points.items():
        keypoints[0, index] = xy
        scores[0, index] = score
    return keypoints, scores


# --- the humansd pose image --------------------------------------------------------------------


def test_limb_colours_are_seaborns_hls_palette():
    assert len(HUMANSD_LIMBS) == len(LIMB_COLORS) == 16
    for i, color in enumerate(LIMB_COLORS):
        rgb = colorsys.hls_to_rgb((i / 16 + 0.01) % 1, 0.6, 0.65)
        assert color == tuple(int(255 * c) for c in rgb)
    assert (5, 6) not in HUMANSD_LIMBS and (11, 12) not in HUMANSD_LIMBS  # no shoulder or hip bar


def test_a_two_point_limb_lights_exactly_a_width_10_line_and_two_radius_5_disks():
    a, b = (20.7, 30.2), (70.4, 55.9)  # left shoulder (5) and left elbow (7): limb 6
    image = draw_humansd(*one_person({5: a, 7: b}), (96, 80))
    expected = np.zeros((80, 96, 3), np.uint8)
    color = LIMB_COLORS[HUMANSD_LIMBS.index((5, 7))]
    pa, pb = (20, 30), (70, 55)  # truncated, as the official drawing does
    cv2.line(expected, pa, pb, color, 10)
    cv2.circle(expected, pa, 5, color, -1)
    cv2.circle(expected, pb, 5, color, -1)
    assert np.array_equal(image, expected)
    assert image.any()


def test_points_at_or_below_score_002_are_not_drawn():
    points = {5: (20, 30), 7: (70, 55)}
    assert not draw_humansd(*one_person(points, 0.02), (96, 80)).any()
    assert draw_humansd(*one_person(points, 0.021), (96, 80)).any()


def test_the_humansd_style_renders_through_render_pose_maps_at_its_own_threshold():
    assert STYLES["humansd"].drawing == "humansd"
    seq = PoseSequence.empty(2, 1, size=(64, 48))
    seq.keypoints[:, 0, 5], seq.keypoints[:, 0, 7] = (10, 10), (40, 30)
    seq.scores[:, 0, [5, 7]] = 0.1  # above 0.02: drawn, although the openpose default threshold is 0.3
    seq.track_ids[:, 0] = 0
    maps = list(render_pose_maps(seq, "humansd", size=(128, 96)))
    assert len(maps) == 2 and maps[0].shape == (96, 128, 3)
    assert np.array_equal(maps[0], draw_humansd(seq.keypoints[0] * 2, seq.scores[0], (128, 96)))
    assert pose_image_tensor_values(np.zeros((1, 1, 3), np.uint8)).min() == -1.0


# --- coarse-to-fine masks ---------------------------------------------------------------------


def single_pixel(x: int, y: int, size=(64, 64)) -> np.ndarray:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[y, x] = (255, 0, 0)
    return image


@pytest.mark.parametrize("x,y", [(30, 30), (5, 60), (63, 0), (16, 23)])
def test_clean_mask_of_one_pixel_is_the_cells_meeting_the_13_box(x, y):
    mask = pose_mask(single_pixel(x, y), 13)
    expected = np.zeros((8, 8), bool)
    for row in range(8):
        for col in range(8):  # cell (row, col) covers pixels [8 col, 8 col + 7] x [8 row, 8 row + 7]
            expected[row, col] = 8 * col <= x + 6 and 8 * col + 7 >= x - 6 and 8 * row <= y + 6 and 8 * row + 7 >= y - 6
    assert np.array_equal(mask, expected)


def test_coarse_contains_fine_and_an_empty_pose_gives_empty_masks():
    rng = np.random.default_rng(0)
    image = np.zeros((128, 96, 3), np.uint8)
    image[rng.integers(0, 128, 6), rng.integers(0, 96, 6)] = 200
    coarse, fine = coarse_to_fine_masks(image)
    assert coarse.shape == fine.shape == (16, 12)
    assert (coarse >= fine).all() and coarse.sum() > fine.sum() > 0
    assert not coarse_to_fine_masks(np.zeros((64, 64, 3), np.uint8)).any()


def test_official_fine_training_mask_equals_the_clean_mask():
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for _ in range(3):
        image = np.zeros((96, 128, 3), np.uint8)
        image[rng.integers(0, 96, 5), rng.integers(0, 128, 5)] = rng.integers(1, 256, (5, 3))
        official = coarse_to_fine_masks(image, mode="official", phase="train")
        assert np.array_equal(official[1], pose_mask(image, 13))


def test_official_behaviour_is_pinned():
    """Regression of the released code's masks (SEED_MODULES §1.2): with τ = -1 the k = 23 blur of
    the black background is -0.99999982, so the coarse *training* mask is the whole image; with
    τ = -0.99 a single saturated pixel spreads ±4 px for both kernels."""
    pytest.importorskip("torch")
    from holdpose.render.pose_masks import blur_like_torchvision

    background = blur_like_torchvision(np.full((64, 64, 3), -1, np.float32), 23)
    assert np.allclose(background, -0.99999982, atol=2e-8) and (background > -1).all()
    coarse_train = coarse_to_fine_masks(single_pixel(30, 30), mode="official", phase="train")[0]
    assert coarse_train.all()
    assert not coarse_to_fine_masks(np.zeros((64, 64, 3), np.uint8), mode="official")[0].any()  # τ = -0.99
    for kernel in (23, 13):
        blurred = blur_like_torchvision(pose_image_tensor_values(single_pixel(30, 30)), kernel)
        rows, cols = np.nonzero((blurred > -0.99).any(-1))
        assert (cols.min(), cols.max(), rows.min(), rows.max()) == (26, 34, 26, 34)


# --- COCO keypoint files ----------------------------------------------------------------------


def test_coco_round_trip_keeps_points_scores_and_wholebody_parts(tmp_path):
    rng = np.random.default_rng(2)
    keypoints = rng.uniform(0, 300, (2, 133, 2)).astype(np.float32)
    scores = rng.uniform(0, 1, (2, 133)).astype(np.float32)
    scores[0, :50] = 0
    image = CocoImage("a.jpg", (320, 240), keypoints, scores, 7)
    write_coco_keypoints([image, CocoImage("empty.jpg", (10, 10), keypoints[:0], scores[:0])], tmp_path / "c.json",
                         threshold=0.3)
    back = read_coco_keypoints(tmp_path / "c.json")
    assert [b.file_name for b in back] == ["a.jpg", "empty.jpg"] and back[0].size == (320, 240)
    present = scores > 0.3
    assert np.array_equal(back[0].scores > 0, present)
    assert np.allclose(back[0].keypoints[present], keypoints[present], atol=0.006)
    assert np.allclose(back[0].scores[:, :17][present[:, :17]], scores[:, :17][present[:, :17]], atol=6e-5)
    assert len(back[1].keypoints) == 0


@pytest.mark.skipif(not (FIXTURES / "images" / "annotations.json").exists(), reason="fixtures absent")
def test_reads_the_fixture_annotations():
    images = read_coco_keypoints(FIXTURES / "images" / "annotations.json")
    assert [len(i.keypoints) for i in images] == [1, 5]
    assert images[0].scores[0, :17].sum() == 17  # v > 0 -> present with score 1
    assert images[0].size == (640, 425)


def test_a_broken_coco_file_is_one_line(tmp_path):
    (tmp_path / "bad.json").write_text('{"images": []}')
    with pytest.raises(HoldposeError, match="not a COCO keypoint file"):
        read_coco_keypoints(tmp_path / "bad.json")


@pytest.mark.skipif(not (FIXTURES / "images" / "annotations.json").exists(), reason="fixtures absent")
def test_extract_coco_export_puts_points_in_each_images_own_pixels(tmp_path, capsys):
    import shutil

    from holdpose.cli import main
    from holdpose.io.video import write_image

    # an empty 800x600 first image sets the canvas: the 640x425 skier is letterboxed (x1.25, 34 px down) into it
    write_image(tmp_path / "0_empty.png", np.zeros((600, 800, 3), np.uint8))
    shutil.copy(FIXTURES / "images" / "coco_000000000785.jpg", tmp_path / "1_skier.jpg")
    assert main(["-q", "extract", str(tmp_path), "--coco", "-o", str(tmp_path / "coco.json"), "--workers", "1"]) == 0
    empty, skier = read_coco_keypoints(tmp_path / "coco.json")
    assert (empty.file_name, empty.size, len(empty.keypoints)) == ("0_empty.png", (800, 600), 0)
    assert (skier.file_name, skier.size, len(skier.keypoints)) == ("1_skier.jpg", (640, 425), 1)
    truth = read_coco_keypoints(FIXTURES / "images" / "annotations.json")[0]
    both = (truth.scores[0, :17] > 0) & (skier.scores[0, :17] > 0)
    errors = np.linalg.norm(truth.keypoints[0, :17][both] - skier.keypoints[0, :17][both], axis=1)
    assert both.sum() >= 10 and np.median(errors) < 10, errors  # in the skier image's own pixels
    assert main(["-q", "extract", str(tmp_path / "1_skier.jpg"), "--coco", "-o", str(tmp_path / "c.json")]) == 2
    assert "give a folder of images" in capsys.readouterr().err


def test_the_evaluation_script_reads_the_target_poses_in_file_name_order_and_prints_the_paper(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from stablepose_eval import table, target_sequence

    rng = np.random.default_rng(4)
    images = [CocoImage(name, (64, 48), rng.uniform(0, 40, (people, 133, 2)).astype(np.float32),
                        np.ones((people, 133), np.float32)) for name, people in (("b.png", 2), ("a.png", 1))]
    write_coco_keypoints(images, tmp_path / "ann.json")
    (tmp_path / "gen").mkdir()
    with pytest.raises(HoldposeError, match="2 annotated images missing"):
        target_sequence(tmp_path / "ann.json", tmp_path / "gen")
    for name in ("a.png", "b.png"):
        (tmp_path / "gen" / name).write_bytes(b"")
    seq = target_sequence(tmp_path / "ann.json", tmp_path / "gen")
    assert seq.size == (64, 48) and seq.num_frames == 2
    assert list((seq.track_ids >= 0).sum(1)) == [1, 2]  # a.png first, as an image folder is read
    assert np.allclose(seq.keypoints[1, :2], images[0].keypoints, atol=0.006)
    text = table({"oks_ap": 0.5, "cap": 0.7, "pce": 0.25})
    assert "50.00" in text and "48.87" in text and "71.04" in text and "57.41" in text and "68.06" in text


@pytest.mark.skipif(not (FIXTURES / "images" / "annotations.json").exists(), reason="fixtures absent")
def test_the_evaluation_script_scores_a_users_detections(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from stablepose_eval import scores_from_predictions

    truth = FIXTURES / "images" / "annotations.json"
    annotations = json.loads(truth.read_text())["annotations"]
    perfect = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "score": 1.0} for a in annotations]
    (tmp_path / "perfect.json").write_text(json.dumps(perfect))
    assert scores_from_predictions(tmp_path / "perfect.json", truth) == {"oks_ap": 1.0, "cap": 1.0, "pce": 0.0}
    (tmp_path / "one.json").write_text(json.dumps(perfect[:1]))  # image 785 right, the 5 skiers missed
    scores = scores_from_predictions(tmp_path / "one.json", truth)
    assert scores["pce"] == 2.5 and 0 < scores["oks_ap"] < 1
