"""DWPoseDetector with tiny hand-built ONNX models, and its pure pre/post-processing."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from holdpose.detect.dwpose import (  # noqa: E402
    DWPoseDetector,
    box_to_center_scale,
    crop_affine,
    decode_simcc,
    letterbox,
    simcc_to_confidence,
)
from holdpose.errors import HoldposeError  # noqa: E402

K = 133


def _save(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_pose_model(path, batch="N", h=64, w=48):
    """simcc_x[n, k] = nearest 2x upsampling of the crop's mean over channels and rows
    (so its argmax is the brightest column), simcc_y likewise over columns; same for all K."""
    const = helper.make_tensor
    inits = [
        const("sx", TensorProto.FLOAT, [4], [1, 1, 1, 2]),
        const("sy", TensorProto.FLOAT, [4], [1, 1, 2, 1]),
        const("shx", TensorProto.INT64, [3], [0, 1, 2 * w]),
        const("shy", TensorProto.INT64, [3], [0, 1, 2 * h]),
        const("reps", TensorProto.INT64, [3], [1, K, 1]),
    ]
    nodes = []
    for axis, reduce_axes in (("x", [1, 2]), ("y", [1, 3])):
        resize = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        nodes += [
            helper.make_node("ReduceMean", ["input"], [f"m{axis}"], axes=reduce_axes, keepdims=1),
            helper.make_node("Resize", [f"m{axis}", "", f"s{axis}"], [f"u{axis}"], **resize),
            helper.make_node("Reshape", [f"u{axis}", f"sh{axis}"], [f"r{axis}"]),
            helper.make_node("Tile", [f"r{axis}", "reps"], [f"simcc_{axis}"]),
        ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, h, w])]
    outputs = [
        helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [batch, K, 2 * w]),
        helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [batch, K, 2 * h]),
    ]
    return _save(path, nodes, inputs, outputs, inits)


def make_det_model(path, outputs, size=640):
    """A detector that ignores its image and returns fixed arrays (name -> ndarray)."""
    dtypes = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}
    nodes = [
        helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtypes[a.dtype], a.shape, a.ravel()))
        for name, a in outputs.items()
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])]
    outs = [helper.make_tensor_value_info(name, dtypes[a.dtype], list(a.shape)) for name, a in outputs.items()]
    return _save(path, nodes, inputs, outs)


def stripes_image():
    """240x320 black image with two stripe crossings, one per person box.

    Person A, box (20, 20, 52, 60): 1-px stripes crossing at (40, 30), drawn only
    where A's crop looks. Person B, box (120, 40, 280, 200): 5-px stripes crossing
    at (230, 150), outside A's crop.
    """
    image = np.zeros((240, 320, 3), np.uint8)
    image[0:80, 40] = 255
    image[30, 0:70] = 255
    image[:, 228:233] = 255
    image[148:153, 90:] = 255
    boxes = np.array([[20, 20, 52, 60], [120, 40, 280, 200]], np.float32)
    return image, boxes


# ---------------------------------------------------------------- end to end with tiny models


@pytest.mark.parametrize("batch", ["N", 1], ids=["dynamic-batch", "batch-1"])
def test_keypoints_map_back_to_stripe_crossing(tmp_path, batch):
    image, boxes = stripes_image()
    with DWPoseDetector(make_pose_model(tmp_path / "pose.onnx", batch=batch)) as detector:
        assert detector.input_size == (48, 64)
        keypoints, scores = detector.detect_in_boxes(image, boxes)
    assert keypoints.shape == (2, K, 2) and keypoints.dtype == np.float32
    assert scores.shape == (2, K) and scores.dtype == np.float32
    # A: the crop is 1.2x the image, so one crop pixel is < 1 image pixel
    np.testing.assert_allclose(keypoints[0], np.tile([40, 30], (K, 1)), atol=1.0)
    # B: scale (200, 266.7) -> 48x64, one crop pixel is 4.17 image pixels
    np.testing.assert_allclose(keypoints[1], np.tile([230, 150], (K, 1)), atol=200 / 48 / 2 + 0.5)
    # bright stripes give SimCC maxima above 1 -> confidence 1
    np.testing.assert_array_equal(scores, 1.0)


def test_black_image_has_zero_confidence_and_whole_image_box(tmp_path):
    with DWPoseDetector(make_pose_model(tmp_path / "pose.onnx")) as detector:
        keypoints, scores = detector(np.zeros((64, 48, 3), np.uint8))
    assert keypoints.shape == (1, K, 2)
    np.testing.assert_array_equal(scores, 0.0)  # normalised black is negative everywhere


def test_call_without_detector_uses_whole_image(tmp_path):
    image = np.zeros((128, 96, 3), np.uint8)
    image[:, 69:72] = 255  # 3 px wide: the crop samples every 2.5 px
    image[19:22, :] = 255
    with DWPoseDetector(make_pose_model(tmp_path / "pose.onnx")) as detector:
        keypoints, _ = detector(image)
    # box (0, 0, 96, 128) x 1.25 -> scale (120, 160), one crop pixel = 2.5 image pixels
    np.testing.assert_allclose(keypoints[0], np.tile([70, 20], (K, 1)), atol=2.5 / 2 + 0.5)


def test_end2end_detector_unletterboxes_and_filters(tmp_path):
    # image 320 high, 480 wide -> letterbox ratio 640 / 480 = 4/3, pad at the bottom
    dets = np.array(
        [
            [[40, 80, 200, 400, 0.9],  # person -> (30, 60, 150, 300)
             [100, 100, 300, 300, 0.2],  # person below threshold
             [0, 0, 50, 50, 0.95],  # not a person
             [320, 200, 640, 500, 0.5]]  # person reaching into the padding -> clipped to y=320
        ],
        np.float32,
    )
    labels = np.array([[0, 0, 2, 0]], np.int64)
    det = make_det_model(tmp_path / "det.onnx", {"dets": dets, "labels": labels})
    image = np.zeros((320, 480, 3), np.uint8)
    with DWPoseDetector(make_pose_model(tmp_path / "pose.onnx"), det) as detector:
        assert detector.det_input_size == (640, 640)
        boxes, scores = detector.detect_people(image)
        keypoints, kp_scores = detector(image)
    np.testing.assert_allclose(boxes, [[30, 60, 150, 300], [240, 150, 480, 320]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9, 0.5], atol=1e-6)
    assert keypoints.shape == (2, K, 2) and kp_scores.shape == (2, K)


def test_detector_with_no_people_returns_empty(tmp_path):
    dets = np.array([[[0, 0, 10, 10, 0.1]]], np.float32)
    det = make_det_model(tmp_path / "det.onnx", {"dets": dets, "labels": np.zeros((1, 1), np.int64)})
    with DWPoseDetector(make_pose_model(tmp_path / "pose.onnx"), det) as detector:
        keypoints, scores = detector(np.zeros((100, 100, 3), np.uint8))
    assert keypoints.shape == (0, K, 2) and scores.shape == (0, K)


def test_raw_yolox_detector_is_decoded_with_nms(tmp_path):
    # 64x64 input: anchors are 8x8 cells of stride 8, then 4x4 of 16, then 2x2 of 32
    pred = np.zeros((1, 64 + 16 + 4, 6), np.float32)
    pred[0, 3 * 8 + 2] = [0.5, 0.5, np.log(2), np.log(2), 0.9, 1.0]  # centre (20, 28), 16x16
    pred[0, 3 * 8 + 3] = [-0.4, 0.5, np.log(2), np.log(2), 0.8, 1.0]  # near duplicate, NMS drops it
    pred[0, 64 + 5] = [0.0, 0.0, 0.0, 0.0, 0.5, 0.4]  # score 0.2, below threshold
    det = make_det_model(tmp_path / "det.onnx", {"output": pred}, size=64)
    with DWPoseDetector(make_pose_model(tmp_path / "pose.onnx"), det) as detector:
        boxes, scores = detector.detect_people(np.zeros((32, 32, 3), np.uint8))  # ratio 2
    np.testing.assert_allclose(boxes, [[6, 10, 14, 18]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)


def test_missing_models_say_where_to_get_weights(tmp_path):
    with pytest.raises(HoldposeError, match="not found") as err:
        DWPoseDetector(tmp_path / "nope.onnx")
    assert "dw-ll_ucoco_384.onnx" in str(err.value) and "--pose-model" in str(err.value)
    with pytest.raises(HoldposeError, match="not given.*--pose-model"):
        DWPoseDetector(None)  # what `holdpose extract --detector dwpose` passes without --pose-model
    pose = make_pose_model(tmp_path / "pose.onnx")
    with pytest.raises(HoldposeError) as err:
        DWPoseDetector(pose, tmp_path / "nodet.onnx")
    assert "yolox_l.onnx" in str(err.value) and "--det-model" in str(err.value)
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(HoldposeError, match="cannot load.*--pose-model"):
        DWPoseDetector(tmp_path / "broken.onnx")


def test_bad_image_is_rejected(tmp_path):
    with DWPoseDetector(make_pose_model(tmp_path / "pose.onnx")) as detector:
        with pytest.raises(HoldposeError, match="image must be an RGB uint8 image"):
            detector(np.zeros((10, 10), np.uint8))


# ---------------------------------------------------------------- pure functions


def test_decode_simcc_argmax_ratio_and_score():
    simcc_x = np.zeros((2, 3, 20), np.float32)
    simcc_y = np.zeros((2, 3, 16), np.float32)
    simcc_x[0, 0, 7], simcc_y[0, 0, 11] = 0.9, 0.4
    simcc_x[1, 2, 19], simcc_y[1, 2, 0] = 5.0, 3.0
    locations, values = decode_simcc(simcc_x, simcc_y)
    assert locations.shape == (2, 3, 2) and values.shape == (2, 3)
    np.testing.assert_allclose(locations[0, 0], [3.5, 5.5])
    np.testing.assert_allclose(locations[1, 2], [9.5, 0.0])
    np.testing.assert_allclose(values[0, 0], 0.4)  # the smaller maximum
    np.testing.assert_allclose(values[1, 2], 3.0)
    np.testing.assert_allclose(values[0, 1], 0.0)
    locations, _ = decode_simcc(simcc_x, simcc_y, split_ratio=4.0)
    np.testing.assert_allclose(locations[0, 0], [1.75, 2.75])


def test_simcc_to_confidence_clips_to_unit_range():
    np.testing.assert_allclose(simcc_to_confidence(np.array([-2.0, 0.0, 0.3, 0.8, 7.5])), [0, 0, 0.3, 0.8, 1])


def test_box_to_center_scale_pads_and_fixes_aspect():
    center, scale = box_to_center_scale([10, 20, 40, 120], padding=1.25)
    np.testing.assert_allclose(center, [25, 70])
    np.testing.assert_allclose(scale, [37.5, 125])
    # too narrow for 3:4 -> widen
    _, scale = box_to_center_scale([10, 20, 40, 120], aspect_ratio=0.75)
    np.testing.assert_allclose(scale, [93.75, 125])
    # too wide -> heighten; batched boxes keep their leading shape
    center, scale = box_to_center_scale([[0, 0, 200, 100], [0, 0, 75, 100]], padding=1.0, aspect_ratio=0.75)
    assert center.shape == scale.shape == (2, 2)
    np.testing.assert_allclose(scale, [[200, 800 / 3], [75, 100]])


def test_crop_affine_is_a_shift_at_unit_scale_and_inverts():
    image = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3).astype(np.float32)
    crop, matrix = crop_affine(image, center=(30, 40), scale=(48, 64), input_size=(48, 64))
    np.testing.assert_array_equal(crop, image[8:72, 6:54])
    # the matrix takes the box centre and corners to the crop's centre and corners
    crop, matrix = crop_affine(image, center=(30, 40), scale=(24, 32), input_size=(48, 64))
    corners = np.array([[30, 40, 1], [18, 24, 1], [42, 56, 1]]) @ matrix.T
    np.testing.assert_allclose(corners, [[24, 32], [0, 0], [48, 64]])


def test_letterbox_pads_bottom_right_with_114():
    image = np.full((50, 100, 3), 200, np.uint8)
    padded, ratio = letterbox(image, (64, 64))
    assert ratio == pytest.approx(0.64) and padded.shape == (64, 64, 3)
    assert (padded[:32] == 200).all() and (padded[32:] == 114).all()
