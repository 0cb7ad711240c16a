"""DWPose / RTMPose whole-body detector on ONNX Runtime, with user-supplied weights.

Top-down, as in RTMPose (Jiang et al., 2023) and DWPose (Yang et al., 2023):

1. a person detector (YOLOX) gives boxes, or the whole image is one box;
2. each box is grown 1.25x, widened or heightened to the model's aspect ratio, and
   cropped by an affine warp to the model input (e.g. 288x384), RGB, ImageNet mean/std;
3. the model returns SimCC vectors: per keypoint a 1-D classification over x ``[Wx]``
   and over y ``[Wy]`` at ``split_ratio`` (2) times the input resolution;
4. the keypoint is the pair of argmaxes divided by the ratio, mapped back to the image
   through the inverse affine; its confidence comes from the two maxima.

The models return COCO-WholeBody 133, holdpose's canonical layout, so no remapping.

Confidence: SimCC maxima are raw network outputs, not probabilities (an ideal peak is
about 1, confident points often exceed it, absent ones fall to or below 0). DWPose and
rtmlib call a point visible when ``min(max_x, max_y) > 0.3``. holdpose reports
``clip(min(max_x, max_y), 0, 1)`` (:func:`simcc_to_confidence`), so its default
threshold of 0.3 keeps exactly the points DWPose draws; all values of 1 or more are 1.

Presence: points under that threshold, or outside the image, are returned missing
(score 0) unless ``keep_offscreen=True`` (``holdpose extract --keep-offscreen``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from holdpose.detect.base import NUM_KEYPOINTS, PoseDetector, drop_unseen, no_people
from holdpose.errors import HoldposeError, require
from holdpose.io.video import check_rgb_image

logger = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], np.float32)  # RGB
IMAGENET_STD = np.array([58.395, 57.12, 57.375], np.float32)
PERSON = 0  # COCO class id
_WEIGHTS_HELP = {
    "pose": "DWPose pose model (e.g. dw-ll_ucoco_384.onnx from https://huggingface.co/yzd-v/DWPose, "
    "the DWPose project's weights, or an RTMW whole-body onnx_sdk zip from the rtmlib releases); "
    "pass its path with --pose-model PATH",
    "det": "person detector (e.g. yolox_l.onnx from https://huggingface.co/yzd-v/DWPose, or a YOLOX "
    "onnx_sdk zip from the rtmlib releases); pass its path with --det-model PATH, or leave it out "
    "to use the whole image as one person box",
}


# ---------------------------------------------------------------- pre/post-processing


def box_to_center_scale(box, padding: float = 1.25, aspect_ratio: float | None = None):
    """Box(es) ``[..., 4]`` (x0, y0, x1, y1) px -> center ``[..., 2]`` and scale ``[..., 2]`` (w, h) px.

    The box grows by ``padding`` about its centre. With ``aspect_ratio`` (model input
    width / height) the shorter side is lengthened until w / h equals it, so the warp
    scales both axes alike and never squeezes the person.
    """
    box = np.asarray(box, np.float64)
    center = (box[..., :2] + box[..., 2:4]) / 2
    scale = (box[..., 2:4] - box[..., :2]) * padding
    if aspect_ratio is not None:
        w, h = scale[..., 0], scale[..., 1]
        too_wide = (w > h * aspect_ratio)[..., None]
        scale = np.where(too_wide, np.stack([w, w / aspect_ratio], -1), np.stack([h * aspect_ratio, h], -1))
    return center, scale


def crop_affine(image: np.ndarray, center, scale, input_size: tuple[int, int]):
    """Warp the region ``center`` +- ``scale`` / 2 of ``image`` ``[H, W, C]`` to ``input_size`` (w, h).

    Returns the crop ``[h, w, C]`` (same dtype, black outside the image) and the 2x3
    matrix taking image pixels to crop pixels (pixel i at coordinate i, as cv2 uses).
    """
    import cv2

    w, h = input_size
    sx, sy = w / scale[0], h / scale[1]
    matrix = np.array([[sx, 0.0, w / 2 - sx * center[0]], [0.0, sy, h / 2 - sy * center[1]]])
    crop = cv2.warpAffine(image, matrix, (int(w), int(h)), flags=cv2.INTER_LINEAR)
    return crop, matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to ``points`` ``[..., 2]``."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0):
    """SimCC vectors -> keypoint locations and raw confidences.

    ``simcc_x`` ``[N, K, Wx]``, ``simcc_y`` ``[N, K, Wy]``. Returns locations ``[N, K, 2]``
    (x, y) in crop pixels (argmax / ``split_ratio``) and raw values ``[N, K]``, the smaller
    of the two maxima (see :func:`simcc_to_confidence`).
    """
    x = np.argmax(simcc_x, axis=-1)
    y = np.argmax(simcc_y, axis=-1)
    locations = np.stack([x, y], axis=-1).astype(np.float32) / split_ratio
    values = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1)).astype(np.float32)
    return locations, values


def simcc_to_confidence(values: np.ndarray) -> np.ndarray:
    """Raw SimCC maxima -> confidence in [0, 1]: ``clip(values, 0, 1)`` (see the module doc)."""
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def letterbox(image: np.ndarray, input_size: tuple[int, int], pad_value: int = 114):
    """Resize ``image`` ``[H, W, 3]`` to fit ``input_size`` (w, h) keeping its aspect ratio,
    top-left aligned and padded bottom/right with ``pad_value``, as YOLOX was trained.

    Returns the padded image ``[h, w, 3]`` uint8 and the ratio (letterbox px per image px).
    """
    import cv2

    w, h = input_size
    ratio = min(w / image.shape[1], h / image.shape[0])
    new_w, new_h = int(image.shape[1] * ratio), int(image.shape[0] * ratio)
    padded = np.full((h, w, 3), pad_value, np.uint8)
    padded[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return padded, ratio


def decode_yolox(pred: np.ndarray, input_size: tuple[int, int], score_threshold: float, nms_threshold: float = 0.45):
    """Raw YOLOX output ``[A, 5 + C]`` (no NMS inside) -> person boxes ``[M, 4]`` and scores ``[M]``.

    Anchors are the cells of strides 8, 16, 32 in row-major order; a cell predicts its
    centre offset and log size in stride units. Person score = objectness x class 0.
    """
    import cv2

    w, h = input_size
    grids, strides = [], []
    for stride in (8, 16, 32):
        xs, ys = np.meshgrid(np.arange(w // stride), np.arange(h // stride))
        grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    centers = (pred[:, :2] + grid) * stride
    sizes = np.exp(pred[:, 2:4]) * stride
    scores = pred[:, 4] * pred[:, 5 + PERSON]
    keep = scores > score_threshold
    if not keep.any():
        return np.zeros((0, 4)), np.zeros(0)
    centers, sizes, scores = centers[keep], sizes[keep], scores[keep]
    xywh = np.concatenate([centers - sizes / 2, sizes], axis=1)
    kept = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), score_threshold, nms_threshold), int).reshape(-1)
    return np.concatenate([xywh[kept, :2], xywh[kept, :2] + xywh[kept, 2:]], axis=1), scores[kept]


# ---------------------------------------------------------------- detector


def _load_session(ort, path, providers: list[str], kind: str):
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as err:  # onnxruntime's errors derive from Exception only
        raise HoldposeError(f"cannot load {path} as an ONNX model ({err}). Get a {_WEIGHTS_HELP[kind]}.") from err


def _static_dim(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class DWPoseDetector(PoseDetector):
    """Whole-body 133-keypoint detector running DWPose / RTMPose / RTMW ONNX models.

    ``pose_model``: SimCC model, input ``[N or 1, 3, h, w]``, outputs ``simcc_x``
    ``[N, 133, Wx]`` and ``simcc_y`` ``[N, 133, Wy]``. ``det_model``: optional YOLOX,
    either the mmdeploy "end2end" export (outputs ``dets`` ``[1, M, 5]`` and ``labels``
    ``[1, M]``, NMS inside) or the raw export (``[1, A, 85]``, as DWPose ships
    ``yolox_l.onnx``). Without it the whole image is one person box.
    ``device``: ``"cpu"`` or ``"cuda"`` (needs onnxruntime-gpu).
    ``input_size``: (w, h), only for models whose input shape is not fixed.
    ``keep_offscreen``: keep points scored under ``min_score`` or outside the image
    (otherwise they are returned with score 0, missing).
    """

    def __init__(
        self,
        pose_model: str | Path,
        det_model: str | Path | None = None,
        *,
        device: str = "cpu",
        det_score_threshold: float = 0.3,
        det_nms_threshold: float = 0.45,
        padding: float = 1.25,
        input_size: tuple[int, int] | None = None,
        keep_offscreen: bool = False,
        min_score: float = 0.3,
    ):
        for kind, path in (("pose", pose_model), ("det", det_model)):
            if (path is None and kind == "pose") or (path is not None and not Path(path).is_file()):
                problem = "not given" if path is None else f"not found: {path}"
                raise HoldposeError(f"{kind} model {problem}. Get a {_WEIGHTS_HELP[kind]}.")
        providers = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
        if device not in providers:
            raise ValueError(f"`device` must be 'cpu' or 'cuda', got {device!r}")
        ort = require("onnxruntime", "onnx")
        if providers[device][0] not in ort.get_available_providers():
            raise HoldposeError(
                f"onnxruntime has no {providers[device][0]}; install onnxruntime-gpu or use --device cpu"
            )

        self.det_score_threshold, self.det_nms_threshold, self.padding = det_score_threshold, det_nms_threshold, padding
        self.keep_offscreen, self.min_score = keep_offscreen, min_score
        self._pose = _load_session(ort, pose_model, providers[device], "pose")
        batch, _, h, w = self._pose.get_inputs()[0].shape
        self.input_size = tuple(input_size) if input_size else (_static_dim(w), _static_dim(h))
        if None in self.input_size:
            raise HoldposeError(f"{pose_model} has a dynamic input size; pass input_size=(width, height)")
        self._batched = _static_dim(batch) is None  # a dynamic batch: all boxes in one run
        if not self._batched and batch != 1:
            raise HoldposeError(f"{pose_model} has a fixed batch of {batch}; export it with batch 1 or dynamic")
        names = [o.name for o in self._pose.get_outputs()]
        self._simcc_names = ["simcc_x", "simcc_y"] if {"simcc_x", "simcc_y"} <= set(names) else names[:2]

        self._det = None
        if det_model is not None:
            self._det = _load_session(ort, det_model, providers[device], "det")
            _, _, h, w = self._det.get_inputs()[0].shape
            self.det_input_size = (_static_dim(w) or 640, _static_dim(h) or 640)
        logger.info("DWPose: %s input %s, detector %s, %s", pose_model, self.input_size, det_model, device)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = check_rgb_image(image, "image")
        if self._det is None:
            boxes = np.array([[0, 0, image.shape[1], image.shape[0]]], np.float32)
        else:
            boxes, _ = self.detect_people(image)
        return self.detect_in_boxes(image, boxes)

    def detect_people(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes ``[M, 4]`` (x0, y0, x1, y1) px of ``image`` and their scores ``[M]``."""
        if self._det is None:
            raise HoldposeError("no person detector loaded; pass det_model (--det-model)")
        image = check_rgb_image(image, "image")
        # 1. letterbox; YOLOX was trained on BGR 0..255 without normalisation
        padded, ratio = letterbox(image[..., ::-1], self.det_input_size)
        x = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], np.float32)
        outputs = self._det.run(None, {self._det.get_inputs()[0].name: x})
        # 2. person rows above the threshold, in letterbox pixels
        if outputs[0].shape[-1] == 5:  # end2end: dets [1, M, 5], labels [1, M]
            dets = outputs[0][0]
            labels = outputs[1][0] if len(outputs) > 1 else np.full(len(dets), PERSON)
            keep = (labels == PERSON) & (dets[:, 4] > self.det_score_threshold)
            boxes, scores = dets[keep, :4], dets[keep, 4]
        elif outputs[0].shape[-1] > 5 + PERSON:  # raw: [1, A, 5 + classes]
            boxes, scores = decode_yolox(
                outputs[0][0], self.det_input_size, self.det_score_threshold, self.det_nms_threshold
            )
        else:
            raise HoldposeError(f"unexpected detector output shape {list(outputs[0].shape)}; expected a YOLOX export")
        # 3. undo the letterbox
        boxes = np.clip(boxes / ratio, 0, [image.shape[1], image.shape[0]] * 2)
        return boxes.astype(np.float32), scores.astype(np.float32)

    def detect_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        image = check_rgb_image(image, "image")
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return no_people()
        # 1. crop each box to the model input, normalise
        w, h = self.input_size
        centers, scales = box_to_center_scale(boxes, self.padding, aspect_ratio=w / h)
        crops, matrices = zip(*(crop_affine(image, c, s, self.input_size) for c, s in zip(centers, scales)))
        batch = ((np.stack(crops).astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2)
        # 2. run the model, all boxes at once if the batch is dynamic
        feed = self._pose.get_inputs()[0].name
        chunks = [batch] if self._batched else [batch[i : i + 1] for i in range(len(batch))]
        outs = [self._pose.run(self._simcc_names, {feed: np.ascontiguousarray(c)}) for c in chunks]
        simcc_x, simcc_y = (np.concatenate([o[i] for o in outs]) for i in (0, 1))
        if simcc_x.shape[1] != NUM_KEYPOINTS:
            raise HoldposeError(
                f"pose model gives {simcc_x.shape[1]} keypoints; holdpose needs COCO-WholeBody {NUM_KEYPOINTS}"
            )
        # 3. decode in crop pixels (split ratio = SimCC bins per input pixel), map back to the image
        locations, values = decode_simcc(simcc_x, simcc_y, split_ratio=simcc_x.shape[-1] / w)
        keypoints = np.stack([transform_points(p, cv2.invertAffineTransform(m)) for p, m in zip(locations, matrices)])
        scores = simcc_to_confidence(values)
        if not self.keep_offscreen:
            scores = drop_unseen(keypoints, scores, (image.shape[1], image.shape[0]), min_score=self.min_score)
        return keypoints.astype(np.float32), scores

    def close(self) -> None:
        self._pose = self._det = None
