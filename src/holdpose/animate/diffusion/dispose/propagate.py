"""Dense motion fields over the reference: where every reference pixel goes in a target pose.

DisPose (§3.2) propagates the sparse keypoint displacements over the reference image with CMP
(Zhan et al. 2019), a network trained to do exactly that. A :class:`MotionPropagator` is set up
once per reference and called per target pose; it returns ``float32 [2, H, W]`` (``u``, ``v`` in
pixels of the reference canvas, zero where nothing moves).

- :class:`RigPropagator` (``--motion-field rig``, **holdpose's own, not the paper's**): the warp
  animator's puppet (segmentation, layers, mesh skinning) already maps every reference pixel to
  its place in the target pose, which is a dense motion field over the person. No weights. The
  field is then corrected by a small Gaussian RBF so each body keypoint lands exactly on its
  target (skinning blends transforms near the joints, which moves a joint by a few pixels).
- :class:`CMPPropagator` (``--motion-field cmp --cmp-weights FILE``, the paper's): the CMP network
  (:mod:`.cmp`) with the released checkpoint converted to safetensors (or an exported program),
  fed as DisPose feeds it: the reference at 384x384, the reference-based sparse flow and its mask.
- :class:`RBFPropagator`: normalised Gaussian RBF weighting of the body points' displacements
  inside the person mask, a simple baseline for tests and comparisons.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod

import numpy as np

from holdpose.convert import wholebody_to_openpose
from holdpose.errors import HoldposeError
from holdpose.render.motion import CMP_SIZE, reference_sparse_flow, resize_dense_flow

logger = logging.getLogger(__name__)

MOTION_FIELDS = ("rig", "cmp", "rbf")
BODY_POINTS = slice(0, 17)  # COCO body points: the rig's corrections and the RBF's centres


def body18(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose-18 body points ``[18, 2]`` and presence ``[18]`` of one WholeBody pose."""
    body, body_scores = wholebody_to_openpose(np.asarray(points, np.float64), np.asarray(scores))["body"]
    return body, body_scores > 0


class MotionPropagator(ABC):
    """Set up once per reference; ``propagator(target_points [133, 2], target_scores [133])`` →
    ``float32 [2, H, W]`` dense motion field over the reference (pixels)."""

    name = "propagator"
    origin = "holdpose"  # "paper" for the published method's own propagator

    def __init__(self, reference: np.ndarray, keypoints: np.ndarray, scores: np.ndarray):
        self.reference = reference
        self.size = (reference.shape[1], reference.shape[0])
        self.points = np.asarray(keypoints, np.float64)
        self.scores = np.asarray(scores, np.float64)

    @abstractmethod
    def __call__(self, target_points: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
        ...


def rbf_coefficients(centres: np.ndarray, values: np.ndarray, sigma: float, regularise: float = 1e-6) -> np.ndarray:
    """Weights ``[N, 2]`` of the Gaussian RBF interpolant through ``values [N, 2]`` at ``centres [N, 2]``."""
    d2 = ((centres[:, None] - centres[None]) ** 2).sum(-1)
    gram = np.exp(-d2 / (2 * sigma ** 2)) + regularise * np.eye(len(centres))
    return np.linalg.solve(gram, values)


def gaussian_rbf(centres: np.ndarray, values: np.ndarray, sigma: float, xs: np.ndarray, ys: np.ndarray,
                 regularise: float = 1e-6) -> np.ndarray:
    """Gaussian RBF interpolant of ``values [N, 2]`` at ``centres [N, 2]`` evaluated on the
    pixels ``xs, ys`` (``[M]`` each): exact at the centres. Returns ``[M, 2]``."""
    if len(centres) == 0:
        return np.zeros((len(xs), 2))
    coefficients = rbf_coefficients(centres, values, sigma, regularise)
    pixels = np.stack([xs, ys], 1).astype(np.float64)
    return np.exp(-((pixels[:, None] - centres[None]) ** 2).sum(-1) / (2 * sigma ** 2)) @ coefficients


def add_local_rbf(field: np.ndarray, mask: np.ndarray, centres: np.ndarray, values: np.ndarray, sigma: float,
                  reach: float = 4.0) -> None:
    """Add to ``field [2, H, W]`` (in place, on ``mask`` pixels only) the Gaussian RBF interpolant
    through ``values [N, 2]`` at ``centres [N, 2]``, each Gaussian cut at ``reach`` σ: a local
    correction costs a local amount (separable Gaussians over small boxes)."""
    if len(centres) == 0:
        return
    height, width = mask.shape
    radius = int(np.ceil(reach * sigma))
    for centre, coefficient in zip(centres, rbf_coefficients(centres, values, sigma)):
        if np.abs(coefficient).max() < 1e-4:
            continue
        x0, y0 = max(int(centre[0]) - radius, 0), max(int(centre[1]) - radius, 0)
        x1, y1 = min(int(centre[0]) + radius + 1, width), min(int(centre[1]) + radius + 1, height)
        gx = np.exp(-((np.arange(x0, x1) - centre[0]) ** 2) / (2 * sigma ** 2))
        gy = np.exp(-((np.arange(y0, y1) - centre[1]) ** 2) / (2 * sigma ** 2))
        bump = (np.outer(gy, gx) * mask[y0:y1, x0:x1]).astype(np.float32)
        field[0, y0:y1, x0:x1] += bump * np.float32(coefficient[0])
        field[1, y0:y1, x0:x1] += bump * np.float32(coefficient[1])


class RigPropagator(MotionPropagator):
    """The warp animator's mesh skinning as a dense motion field (holdpose's own).

    Set-up: each layer's reference-space triangles are rasterised once into a triangle-index
    buffer, front layers over back ones (an arm owns the pixels it covers in the reference). Per
    target pose: each triangle's affine map from its reference corners to its skinned corners,
    applied to every pixel it owns; pixels of the person mask left without a triangle take the
    nearest owned pixel's triangle. Zero outside the person mask."""

    name = "rig"

    def __init__(self, rig, *, correct_keypoints: bool = True):
        from holdpose.animate.warp import MIN_SCORE

        super().__init__(rig.reference, rig.points, rig.present.astype(np.float64))
        self.rig = rig
        self.min_score = MIN_SCORE
        self.correct_keypoints = correct_keypoints
        self.mask = rig.mask
        self.owner, self.offsets = self._rasterise()
        ys, xs = np.nonzero(self.mask)
        self.flat = ys * self.size[0] + xs  # the mask's pixels, row-major
        self.xs, self.ys = xs.astype(np.float32), ys.astype(np.float32)
        self.triangle = self.owner[ys, xs]

    def _rasterise(self) -> tuple[np.ndarray, list[int]]:
        """``owner [H, W]`` int32: the global index of the triangle owning each pixel (-1: none),
        triangles numbered layer after layer; ``offsets``: each layer's first index."""
        import cv2

        width, height = self.size
        owner = np.full((height, width), -1, np.int32)
        offsets, start = [], 0
        for vertices, triangles, _ in self.rig.posed_meshes(self.rig.points, self.rig.present.astype(np.float32)):
            offsets.append(start)
            fixed = np.round(vertices[triangles] * 16).astype(np.int32)  # 4 bits of subpixel precision
            for k, corners in enumerate(fixed):
                cv2.fillConvexPoly(owner, corners, start + k, cv2.LINE_8, 4)
            start += len(triangles)
        unowned = self.mask & (owner < 0)
        if unowned.any() and (owner >= 0).any():  # slivers the meshes drop: the nearest owned pixel's triangle
            _, labels = cv2.distanceTransformWithLabels((owner < 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
            owned_y, owned_x = np.nonzero(owner >= 0)
            source = np.zeros(labels.max() + 1, np.int32)
            source[labels[owned_y, owned_x]] = owner[owned_y, owned_x]
            owner[unowned] = source[labels[unowned]]
        return owner, offsets

    def skinned(self, target_points: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
        """The field from mesh skinning alone, before the keypoint correction."""
        from holdpose.animate.warp import triangle_maps

        maps = [triangle_maps(vertices[triangles], moved[triangles])
                for vertices, triangles, moved in self.rig.posed_meshes(target_points, target_scores)]
        # the linear part minus the identity, so the maps give displacements
        table = np.concatenate(maps).astype(np.float32) - np.float32([1, 0, 0, 0, 1, 0])
        x, y = self.xs, self.ys
        width, height = self.size
        field = np.zeros((2, height * width), np.float32)
        for axis, row in enumerate((0, 3)):
            a, b, c = (np.take(table[:, row + i], self.triangle) for i in range(3))
            field[axis, self.flat] = a * x + b * y + c
        return field.reshape(2, height, width)

    def __call__(self, target_points: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
        target_points = np.asarray(target_points, np.float64)
        field = self.skinned(target_points, target_scores)
        if not self.correct_keypoints:
            return field
        present = (self.scores[BODY_POINTS] > self.min_score) & (np.asarray(target_scores)[BODY_POINTS] > self.min_score)
        centres = self.points[BODY_POINTS][present]
        cols = np.clip(centres[:, 0].astype(int), 0, self.size[0] - 1)
        rows = np.clip(centres[:, 1].astype(int), 0, self.size[1] - 1)
        inside = self.mask[rows, cols]
        centres, cols, rows = centres[inside], cols[inside], rows[inside]
        if not len(centres):
            return field
        # the skinned field at a keypoint is its pixel's; the correction makes it exactly target - point
        wanted = target_points[BODY_POINTS][present][inside] - centres
        residual = wanted - field[:, rows, cols].T
        add_local_rbf(field, self.mask, centres, residual, 0.1 * self.rig.scale)
        return field


class RBFPropagator(MotionPropagator):
    """Normalised Gaussian RBF weighting (σ = a quarter of the body's extent) of the COCO body
    points' displacements, inside the person ``mask``, zero outside: a baseline (a uniform move
    stays uniform; not exact at the points)."""

    name = "rbf"

    def __init__(self, reference: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, mask: np.ndarray,
                 sigma: float | None = None):
        super().__init__(reference, keypoints, scores)
        self.mask = np.asarray(mask, bool)
        self.ys, self.xs = np.nonzero(self.mask)
        body = self.points[BODY_POINTS][self.scores[BODY_POINTS] > 0]
        extent = float(np.ptp(body, axis=0).max()) if len(body) > 1 else min(self.size)
        self.sigma = sigma or 0.25 * extent

    def __call__(self, target_points: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
        present = (self.scores[BODY_POINTS] > 0) & (np.asarray(target_scores)[BODY_POINTS] > 0)
        centres = self.points[BODY_POINTS][present]
        displacement = np.asarray(target_points, np.float64)[BODY_POINTS][present] - centres
        width, height = self.size
        field = np.zeros((2, height, width), np.float32)
        if not len(centres):
            return field
        pixels = np.stack([self.xs, self.ys], 1).astype(np.float64)
        logits = -((pixels[:, None] - centres[None]) ** 2).sum(-1) / (2 * self.sigma ** 2)
        weights = np.exp(logits - logits.max(1, keepdims=True))  # normalised: a uniform move stays uniform
        field[:, self.ys, self.xs] = ((weights @ displacement) / weights.sum(1, keepdims=True)).T
        return field


class CMPPropagator(MotionPropagator):
    """The paper's CMP propagator (``resnet50_vip+mpii_liteflow``, iteration 42000), fed as
    DisPose feeds it: the reference at 384x384 RGB in [0, 1], the reference-based sparse flow
    and its mask ``[1, 4, 384, 384]``; its dense flow ``[1, 2, 384, 384]`` is resized to the
    canvas. ``weights`` is either

    - the released checkpoint converted to ``.safetensors`` (``holdpose convert-weights``): the
      network of :mod:`.cmp`, loaded strictly (the way to use); or
    - a ``torch.export`` program (``.pt2``) or TorchScript file whose ``forward(image, sparse)``
      returns the flow ``[1, 2, 384, 384]`` (MOFA-Video's ``CMP_demo.run``) or CMP's raw bin
      logits ``[1, 198, h, w]`` (decoded here): a fallback should a checkpoint not fit
      :mod:`.cmp` (docs/dispose.md)."""

    name = "cmp"
    origin = "paper"

    def __init__(self, reference: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 weights: str | os.PathLike, device="cpu"):
        import cv2
        import torch

        super().__init__(reference, keypoints, scores)
        if not os.path.isfile(weights):
            raise HoldposeError(f"CMP weights {weights} do not exist; convert the released checkpoint as "
                                "docs/dispose.md says, or use --motion-field rig")
        self.device = device
        self.run = self._load(str(weights), device)
        image = cv2.resize(reference, (CMP_SIZE, CMP_SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        self.image = torch.from_numpy(image.transpose(2, 0, 1)[None].copy()).to(device)  # [0, 1], as CMP_demo.run
        self.body, self.body_present = body18(keypoints, scores)

    @staticmethod
    def _load(weights: str, device):
        """``run(image, sparse) -> flow [1, 2, h, w]`` (pixels of the input grid) from ``weights``."""
        import torch

        from holdpose.animate.diffusion.dispose.cmp import CMP_BINS, bins_to_flow, load_cmp

        if weights.endswith(".safetensors"):
            return load_cmp(weights, device).flow
        try:
            if weights.endswith(".pt2"):
                program = torch.export.load(weights).module().to(device)
            else:
                program = torch.jit.load(weights, map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise HoldposeError(f"CMP weights {weights} are not .safetensors, torch.export (.pt2) or TorchScript "
                                f"({str(err).splitlines()[0]}); convert them as docs/dispose.md says") from err

        def run(image, sparse):
            out = program(image, sparse)
            return bins_to_flow(out) if out.shape[1] == 2 * CMP_BINS else out

        return run

    def __call__(self, target_points: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
        import torch

        target, target_present = body18(target_points, target_scores)
        flow, mask = reference_sparse_flow(self.body, self.body_present, target, target_present, self.size)
        sparse = torch.from_numpy(np.concatenate([flow, mask])[None]).to(self.device)
        with torch.no_grad():
            dense = self.run(self.image, sparse)[0].float().cpu().numpy()
        return resize_dense_flow(dense, self.size)


def make_propagator(kind: str, character, *, cmp_weights=None, device="cpu") -> MotionPropagator:
    """The propagator ``kind`` ("rig", "cmp", "rbf") for a :class:`~holdpose.animate.character.Character`."""
    if kind == "rig":
        return RigPropagator(character.rig)
    if kind == "cmp":
        if cmp_weights is None:
            raise HoldposeError("--motion-field cmp needs CMP's weights (--cmp-weights FILE); without them use "
                                "--motion-field rig")
        keypoints, scores = character.pose
        return CMPPropagator(character.image, keypoints, scores, cmp_weights, device)
    if kind == "rbf":
        rig = character.rig
        return RBFPropagator(rig.reference, rig.points, rig.present.astype(np.float64), rig.mask)
    raise HoldposeError(f"unknown motion field {kind!r}; choose one of {', '.join(MOTION_FIELDS)}")
