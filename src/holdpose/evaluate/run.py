"""Evaluate a generated video in one streaming pass: adherence, temporal stability, fidelity.

:func:`evaluate_video` decodes each frame of the output video once. The frames are cut
into contiguous chunks, one worker process per chunk (as :func:`holdpose.detect.extract.extract_poses`
does); each worker decodes its chunk of the output (plus the frame before it, for the
temporal metrics) and of the ground truth, and per frame re-detects the poses, measures
flickering and warping error against the previous frame, and SSIM, PSNR and L1 against
the ground-truth frame. The parent only collects per-frame numbers, the detected
keypoints and a few thumbnails of the worst frames, so memory does not grow with the
length of the video. Adherence is then scored against the target poses
(:func:`holdpose.evaluate.adherence.score_adherence`), and the learned metrics, when
asked for, run in a second pass over the frames in the parent (they need torch models).
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.evaluate.adherence import DEFAULT_MIN_SCORE, PARTS, PCK_ALPHAS, fit_target, frame_oks
from holdpose.io.video import FrameSource
from holdpose.parallel import frame_chunks, run_chunks
from holdpose.progress import progress_bar
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 360
WORST_CANDIDATES = 4  # each worker keeps 4x as many worst frames, to pick ones half a second apart
LEARNED_BATCH = 16

# What each metric is, for metrics.json and the report.
DEFINITIONS = {
    "ssim": "SSIM against the ground-truth frame (scikit-image's definition: 7x7 uniform window, channel mean), "
            "mean over frames; 1 = identical",
    "psnr": "PSNR against the ground-truth frame in dB (data range 255), mean over frames; identical frames are "
            "capped at 100 dB",
    "l1": "mean absolute difference to the ground-truth frame, intensities in [0, 1]",
    "oks_ap": "COCO OKS AP (.50:.95) of the re-detected body poses against the target, each frame an image, "
              "areas from the target's body box",
    "oks_ap50": "OKS AP at OKS 0.5", "oks_ap75": "OKS AP at OKS 0.75",
    "oks_ar": "COCO OKS AR (.50:.95)",
    "cap": "cosine-similarity AP (HumanSD, Stable-Pose): AP with OKS replaced by the cosine similarity of the "
           "sigma-weighted, per-axis normalised keypoint vectors",
    "cap_ar": "cosine-similarity AR",
    "pce": "person-count error: mean over frames of |#detected - #target|",
    "mse_p": "mean squared keypoint error, px^2, over matched people's points present in both",
    "mean_oks": "mean over frames of the target people's OKS after matching (0 for a missed person)",
    "flicker": "VBench temporal flickering, raw: mean absolute difference of consecutive frames, 0..255",
    "flicker_score": "VBench temporal flickering score (255 - flicker) / 255; 1 = no change",
    "warp_error": "warping error (Lai et al. 2018): MSE in [0, 1] units between each frame and the previous frame "
                  "warped onto it by DIS optical flow, over pixels passing the forward-backward check",
    "keypoint_jitter": "mean |p(t+1) - 2 p(t) + p(t-1)| of the re-detected body keypoints, px/frame^2",
    "keypoint_jitter_target": "the same for the target poses (the motion's own acceleration)",
    "ground_truth_flicker": "VBench temporal flickering (raw) of the ground-truth video: the content's own",
    "lpips": "LPIPS (AlexNet) to the ground-truth frame, mean over frames; 0 = identical",
    "fid": "Fréchet distance of the output frames' features to the ground-truth frames'",
    "kid": "kernel inception distance (unbiased polynomial MMD^2) of output to ground-truth frame features",
    "fvd": "Fréchet distance of I3D features of 16-frame clips, output vs ground truth",
    "clip_i": "cosine similarity of CLIP image embeddings, output frame vs the reference image "
              "(or vs the ground-truth frame without a reference)",
    "clip_t": "cosine similarity of CLIP embeddings of the output frame and the prompt",
    "clip_temporal": "mean cosine similarity of CLIP image embeddings of consecutive output frames (PoseCrafter's "
                     "CLIP-T between frames)",
    "background_consistency": "VBench background consistency: per frame, the mean of its CLIP-feature cosine (>= 0) "
                              "to the first and to the previous frame, averaged",
    "subject_consistency": "VBench subject consistency: the same with DINO features",
    "fid64": "FID on the 64-d features of pytorch-fid's Inception-v3 (first max-pool block), as Stable-Pose reports it",
    "cd_fvd": "content-debiased FVD (Ge et al. 2024): Fréchet distance of VideoMAE features of 16-frame clips",
    "mse_p_norm": "MSE-P on normalised coordinates: mean of (dx/W)^2 + (dy/H)^2 over matched body points "
                  "(PoseCrafter's MSE-P scale)",
}
for _a in PCK_ALPHAS:
    DEFINITIONS[f"pck@{_a:g}"] = (f"PCK: fraction of the target's body points that the matched detection places "
                                  f"within {_a:g} x the target person's height")


@dataclass
class WorstFrame:
    """A frame among the worst by ``metric``, with small copies of the frames."""

    index: int
    metric: str
    value: float
    output: np.ndarray
    ground_truth: np.ndarray | None = None


@dataclass
class Evaluation:
    """Everything :func:`evaluate_video` measured.

    Attributes:
        metrics: metric name -> value (see :data:`DEFINITIONS`); only metrics that could
            be computed are present.
        per_frame: metric name -> ``[T]`` per-frame values (NaN where undefined; temporal
            metrics compare frame t with t - 1, so frame 0 is NaN).
        per_part: COCO-WholeBody part -> adherence metrics of that part.
        keypoints: per-keypoint errors and the target's mean pose (see
            :class:`holdpose.evaluate.adherence.AdherenceResult`), or None.
        worst_frames: the worst frames, worst first.
        detected: poses re-detected on the output, or None.
        target: the target poses on the output's canvas, or None.
        inputs, frames: what was evaluated (paths, detector, sizes) and frame counts.
        notes: things the reader should know (detector choice, trimmed frames...).
        skipped: metric -> why it was not computed.
        seconds: time per stage.
        closed_loop: the frames' verdicts from ``holdpose animate --verify`` or ``holdpose
            correct`` (:func:`holdpose.evaluate.closed_loop.closed_loop_summary`), or None.
    """

    metrics: dict[str, float]
    per_frame: dict[str, np.ndarray]
    per_part: dict[str, dict[str, float]] = field(default_factory=dict)
    keypoints: dict[str, np.ndarray] | None = None
    worst_frames: list[WorstFrame] = field(default_factory=list)
    detected: PoseSequence | None = None
    target: PoseSequence | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    closed_loop: dict | None = None

    def to_json(self) -> dict:
        """The metrics.json document: metric names as top-level keys, then ``per_frame``,
        ``per_part``, ``per_keypoint``, ``definitions`` and the run's details."""
        from holdpose.skeleton import COCO_WHOLEBODY

        doc: dict[str, Any] = {name: _json_number(value) for name, value in self.metrics.items()}
        doc["per_frame"] = {name: [_json_number(v) for v in values] for name, values in self.per_frame.items()}
        doc["per_part"] = {part: {k: _json_number(v) for k, v in values.items()} for part, values in self.per_part.items()}
        if self.keypoints is not None:
            doc["per_keypoint"] = {
                "names": list(COCO_WHOLEBODY.keypoint_names),
                **{k: np.where(np.isfinite(v), v, np.nan).tolist() if v.dtype.kind == "f" else v.tolist()
                   for k, v in self.keypoints.items()}}
            doc["per_keypoint"] = _nan_to_none(doc["per_keypoint"])
        doc["worst_frames"] = [{"frame": w.index, "metric": w.metric, "value": _json_number(w.value)}
                               for w in self.worst_frames]
        doc["definitions"] = {k: v for k, v in DEFINITIONS.items() if k in self.metrics}
        doc["inputs"] = self.inputs
        doc["frames"] = self.frames
        doc["notes"] = self.notes
        doc["skipped"] = self.skipped
        doc["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        if self.closed_loop is not None:
            doc["closed_loop"] = _nan_to_none(self.closed_loop)
        return doc


def _json_number(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _nan_to_none(obj):
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    return obj


# --- the worker --------------------------------------------------------------------


@dataclass
class _Job:
    """One chunk of frames for a worker (picklable)."""

    output: str
    ground_truth: str | None
    start: int
    stop: int
    gt_stop: int
    detector: Any  # DetectorConfig | None
    max_people: int
    target_keypoints: np.ndarray | None  # [n, P, K, 2] on the output canvas, n <= stop - start
    target_scores: np.ndarray | None
    min_score: float
    flow: str
    worst: int
    rank_by: str | None  # "oks", "ssim", "warp_error"
    single_thread: bool


def _thumbnail(frame: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return frame.copy()
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _evaluate_chunk(job: _Job, progress) -> dict:
    """Worker: every per-frame measurement of frames [start, stop)."""
    import cv2

    from holdpose.evaluate.fidelity import frame_fidelity
    from holdpose.evaluate.temporal import FlickerMeter, WarpErrorMeter

    if job.single_thread:
        cv2.setNumThreads(1)  # one process per core already
    n = job.stop - job.start
    out = {key: np.full(n, np.nan) for key in ("flicker", "warp_error", "ssim", "psnr", "l1", "ground_truth_flicker")}
    detections: list = []
    worst: list = []  # heap of (badness, index, output thumbnail, gt thumbnail)
    first = max(job.start - 1, 0)
    source = FrameSource(job.output, start=first, stop=job.stop)
    gt_frames = iter(FrameSource(job.ground_truth, start=first, stop=job.gt_stop)) \
        if job.ground_truth and job.gt_stop > first else iter(())
    flicker, gt_flicker, warp = FlickerMeter(), FlickerMeter(), WarpErrorMeter(flow=job.flow)
    detector = job.detector.build(video=True) if job.detector is not None else nullcontext()
    with detector:
        for t, frame in enumerate(source, start=first):
            gt = next(gt_frames, None) if t < job.gt_stop else None
            if gt is not None and gt.shape != frame.shape:
                gt = cv2.resize(gt, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA)
            f, w = flicker.update(frame), warp.update(frame)
            g = gt_flicker.update(gt) if gt is not None else None
            if t < job.start:
                continue  # the frame before the chunk only primes the temporal meters
            i = t - job.start
            out["flicker"][i] = np.nan if f is None else f
            out["warp_error"][i] = np.nan if w is None else w
            out["ground_truth_flicker"][i] = np.nan if g is None else g
            if gt is not None:
                fid = frame_fidelity(frame, gt)
                out["ssim"][i], out["psnr"][i], out["l1"][i] = fid.ssim, fid.psnr, fid.l1
            if job.detector is not None:
                keypoints, scores = detector(frame)
                detections.append((keypoints[: job.max_people].astype(np.float32),
                                   scores[: job.max_people].astype(np.float32)))
            badness = _badness(job, i, out, detections)
            if badness is not None and job.worst > 0 and (len(worst) < job.worst or badness > worst[0][0]):
                # thumbnails only for frames that enter the heap: most frames never do
                item = (badness, t, _thumbnail(frame), None if gt is None else _thumbnail(gt))
                if len(worst) < job.worst:
                    heapq.heappush(worst, item)
                else:
                    heapq.heapreplace(worst, item)
            if progress is not None:
                progress.put(1)
    if job.detector is not None and len(detections) != n:
        raise HoldposeError(f"{job.output}: decoded {len(detections)} of frames {job.start}-{job.stop - 1}; "
                            "is the file damaged?")
    return {"start": job.start, "stop": job.stop, "arrays": out, "detections": detections, "worst": worst}


def _badness(job: _Job, i: int, out: dict, detections: list) -> float | None:
    """How bad frame ``start + i`` is by the chunk's ranking metric (higher: worse), or None."""
    if job.rank_by == "oks":
        if job.target_keypoints is None or i >= len(job.target_keypoints):
            return None
        value = frame_oks(detections[i][0], detections[i][1], job.target_keypoints[i], job.target_scores[i],
                          min_score=job.min_score)
        return None if np.isnan(value) else -value
    if job.rank_by == "ssim":
        return None if np.isnan(out["ssim"][i]) else -out["ssim"][i]
    if job.rank_by == "warp_error":
        return None if np.isnan(out["warp_error"][i]) else out["warp_error"][i]
    return None


def _spread(items: list, count: int, gap: int) -> list:
    """``count`` of ``items`` (worst first), preferring frames at least ``gap`` apart so the
    report does not show one bad moment four times; filled up with the next worst when the
    video is too short for that. The spread ones come first, each group worst first."""
    chosen = []
    for item in items:
        if len(chosen) < count and all(abs(item[1] - c[1]) >= gap for c in chosen):
            chosen.append(item)
    for item in items:
        if len(chosen) < count and all(item[1] != c[1] for c in chosen):
            chosen.append(item)
    return chosen


# --- the API -------------------------------------------------------------------------


@dataclass
class _Inputs:
    """What step 1 of :func:`evaluate_video` found: the sources, the fitted target, the detector."""

    source: FrameSource
    target: PoseSequence | None
    target_label: str | None
    ground_truth: FrameSource | None
    detector: Any  # DetectorConfig | None
    max_people: int
    learned: dict
    notes: list[str]
    skipped: dict[str, str]

    @property
    def compared(self) -> int:
        """Frames that have a ground-truth frame."""
        return min(self.source.num_frames, self.ground_truth.num_frames) if self.ground_truth is not None else 0


@dataclass
class _FramePass:
    """What the streaming pass measured: per-frame arrays, re-detected poses, worst-frame candidates."""

    per_frame: dict[str, np.ndarray]
    detected: PoseSequence | None
    worst: list  # (badness, frame, output thumbnail, ground-truth thumbnail), worst first
    rank_by: str


def evaluate_video(output: str | os.PathLike, *, target: PoseSequence | str | os.PathLike | None = None,
                   ground_truth: str | os.PathLike | None = None, reference: str | os.PathLike | None = None,
                   detector: Any = "auto", pose_model: str | os.PathLike | None = None,
                   det_model: str | os.PathLike | None = None, max_people: int | None = None,
                   min_score: float = DEFAULT_MIN_SCORE, flow: str = "dis", workers: int | None = None,
                   worst_frames: int = 4, lpips: bool = False, fid_features: Any = None,
                   fvd_model: str | os.PathLike | None = None, clip_model: str | os.PathLike | None = None,
                   prompt: str | None = None, dino_model: str | os.PathLike | None = None,
                   videomae_model: str | os.PathLike | None = None, fid64: bool = False,
                   verdicts: str | os.PathLike | None = None, progress: bool = True,
                   allow_pickle: bool = False) -> Evaluation:
    """Measure how well ``output`` holds the target pose, how stable it is, and how close
    it is to the ground truth.

    Args:
        output: the generated video (or image folder).
        target: the driving poses (PoseSequence or pose file): enables the adherence
            metrics (OKS AP/AR, CAP, PCE, MSE-P, PCK) and the worst-frame view.
        ground_truth: a video of the same motion: enables SSIM, PSNR, L1 (and LPIPS,
            FID, KID, FVD with weights). Frames are resized to the output's size;
            the first ``min(T_output, T_ground_truth)`` frames are compared.
        reference: the reference image of the character: CLIP-I with ``clip_model``.
        detector: "auto" (see :func:`holdpose.evaluate.adherence.choose_detector`),
            "mediapipe", "dwpose", a DetectorConfig, or None to skip re-detection
            (no adherence, no keypoint jitter).
        pose_model, det_model: DWPose ONNX weights.
        max_people: most people the detector reports per frame (default: the most
            target people in a frame, or 1).
        min_score: keypoint score above which a point counts as present.
        flow: optical flow for the warping error, "dis" or "farneback".
        workers: processes (default: one per core, fewer for short videos).
        worst_frames: how many worst frames to keep for the report.
        lpips: compute LPIPS (needs the lpips package and AlexNet weights locally).
        allow_pickle: allow TorchScript models (``fid_features``/``fvd_model`` ``.pt``), which run code.
        fid_features: a feature extractor or spec for FID and KID (see
            :func:`holdpose.evaluate.features.load_feature_extractor`).
        fvd_model: path of StyleGAN-V's ``i3d_torchscript.pt`` for FVD.
        clip_model: a local CLIP model folder for CLIP-I (and CLIP-T with ``prompt``).
        prompt: the text prompt, for CLIP-T.
        dino_model: a local DINO ViT folder: VBench subject consistency (``clip_model`` also
            gives background consistency and CLIP similarity between frames).
        videomae_model: a local VideoMAE folder: CD-FVD against the ground truth.
        fid64: FID on 64-d Inception features against the ground truth (as Stable-Pose).
        verdicts: the per-frame verdicts of ``holdpose animate --verify`` or ``holdpose correct``
            (``OUT.verdicts.jsonl``): which frames were made again or corrected, before and after.
        progress: show a progress bar.
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    # 1. Check inputs, and load every model the user asked for, before the long pass.
    if verdicts is not None and not Path(verdicts).is_file():
        raise HoldposeError(f"{verdicts}: no such verdicts file")
    inputs = _check_inputs(output, target, ground_truth, reference, detector, pose_model, det_model, max_people,
                           min_score, dict(lpips=lpips, fid_features=fid_features, fvd_model=fvd_model,
                                           clip_model=clip_model, prompt=prompt, dino_model=dino_model,
                                           videomae_model=videomae_model, fid64=fid64, allow_pickle=allow_pickle))
    seconds["setup"] = time.perf_counter() - clock

    # 2. The streaming pass: per frame, re-detection, temporal and fidelity measurements.
    clock = time.perf_counter()
    frames = _frame_pass(output, ground_truth, inputs, min_score, flow, workers, worst_frames, progress)
    seconds["frames"] = time.perf_counter() - clock

    # 3. Metrics from what the pass measured.
    clock = time.perf_counter()
    num_frames = inputs.source.num_frames
    per_frame, metrics = frames.per_frame, {}
    metrics.update(_fidelity_metrics(per_frame, inputs.compared))
    adherence = None
    if frames.detected is not None and inputs.target is not None:
        adherence = _adherence_metrics(frames.detected, inputs.target, min_score, num_frames, per_frame)
        metrics.update(adherence.metrics)
    metrics.update(_temporal_metrics(per_frame, frames.detected, inputs, min_score))
    if num_frames < 2:
        inputs.skipped["temporal"] = "a single frame has no temporal metrics"
    seconds["metrics"] = time.perf_counter() - clock

    # 4. Learned metrics (second pass, in this process).
    if inputs.learned:
        clock = time.perf_counter()
        learned = _learned_metrics(inputs.learned, output, ground_truth, reference, inputs.source.size,
                                   inputs.compared, num_frames, prompt, progress)
        metrics.update(learned.metrics)
        per_frame.update(learned.per_frame)
        seconds["learned"] = time.perf_counter() - clock

    evaluation = _evaluation(output, ground_truth, reference, inputs, frames, metrics, adherence, min_score, flow,
                             seconds)
    if verdicts is not None:
        from holdpose.evaluate.closed_loop import closed_loop_summary, read_records

        evaluation.closed_loop = closed_loop_summary(read_records(verdicts), num_frames)
        evaluation.inputs["verdicts"] = str(verdicts)
    return evaluation


def _check_inputs(output, target, ground_truth, reference, detector, pose_model, det_model, max_people, min_score,
                  learned_options: dict) -> _Inputs:
    """Step 1: open the sources, fit the target to the output's canvas (once), choose the
    detector and load the learned metrics' models, with notes on what was adapted."""
    from holdpose.evaluate.adherence import choose_detector

    source = FrameSource(output)
    if source.num_frames < 1:
        raise HoldposeError(f"{output}: no frames to evaluate")
    size, num_frames = source.size, source.num_frames
    notes: list[str] = []
    skipped: dict[str, str] = {}
    target_seq = target_label = None
    if target is not None:
        target_label = "poses passed in memory" if isinstance(target, PoseSequence) else str(target)
        if not isinstance(target, PoseSequence):
            from holdpose.io.posefile import load_poses

            target = load_poses(target)
        target_seq, fit_notes = fit_target(target, size)
        notes += fit_notes
        if target_seq.num_frames != num_frames:
            notes.append(f"the video has {num_frames} frames and the target {target_seq.num_frames}; the first "
                         f"{min(num_frames, target_seq.num_frames)} are scored for adherence")
    gt_source = None
    if ground_truth is not None:
        gt_source = FrameSource(ground_truth)
        if gt_source.size != size:
            notes.append(f"ground truth {gt_source.size[0]}x{gt_source.size[1]} resized to the output's "
                         f"{size[0]}x{size[1]}")
        if gt_source.num_frames != num_frames:
            notes.append(f"the video has {num_frames} frames and the ground truth {gt_source.num_frames}; the first "
                         f"{min(num_frames, gt_source.num_frames)} are compared")
    if reference is not None and not Path(reference).exists():
        raise HoldposeError(f"{reference}: no such reference image")
    learned = _load_learned(**learned_options, has_gt=gt_source is not None, has_reference=reference is not None,
                            skipped=skipped)
    config = None
    if detector is not None and detector != "none":
        if max_people is None:
            max_people = 1
            if target_seq is not None:
                counts = ((target_seq.scores > min_score).any(-1) & (target_seq.track_ids >= 0)).sum(-1)
                max_people = max(1, int(counts.max(initial=1)))
        config, note = choose_detector(detector, max_people=max_people, pose_model=pose_model, det_model=det_model,
                                       has_target=target_seq is not None)
        notes.insert(0, note)
    else:
        max_people = max_people or 1
        skipped["adherence"] = "no detector (detector=None)"
    if target_seq is None:
        skipped.setdefault("adherence", "no target poses given (--target)")
    if gt_source is None:
        skipped["fidelity"] = "no ground-truth video given (--ground-truth)"
    return _Inputs(source=source, target=target_seq, target_label=target_label, ground_truth=gt_source,
                   detector=config, max_people=max_people, learned=learned, notes=notes, skipped=skipped)


def _frame_pass(output, ground_truth, inputs: _Inputs, min_score: float, flow: str, workers: int | None,
                worst_frames: int, progress: bool) -> _FramePass:
    """Step 2: the frames cut into chunks, one worker per chunk, merged back in order."""
    source, target_seq, config = inputs.source, inputs.target, inputs.detector
    num_frames = source.num_frames
    chunks = frame_chunks(num_frames, workers)
    gt_frames = inputs.ground_truth.num_frames if inputs.ground_truth is not None else 0
    rank_by = "oks" if (target_seq is not None and config is not None) else \
        "ssim" if inputs.ground_truth is not None else "warp_error"
    jobs = []
    for a, b in chunks:
        tk = ts = None
        if target_seq is not None and config is not None:
            stop = min(b, target_seq.num_frames)
            tk = target_seq.keypoints[a:stop] if stop > a else target_seq.keypoints[:0]
            ts = np.where(target_seq.track_ids[a:stop, :, None] >= 0, target_seq.scores[a:stop], 0) \
                if stop > a else target_seq.scores[:0]
        jobs.append(_Job(output=str(output), ground_truth=str(ground_truth) if ground_truth else None, start=a,
                         stop=b, gt_stop=min(b, gt_frames), detector=config, max_people=inputs.max_people,
                         target_keypoints=tk, target_scores=ts, min_score=min_score, flow=flow,
                         worst=WORST_CANDIDATES * worst_frames, rank_by=rank_by, single_thread=len(chunks) > 1))
    logger.info("%s: %d frames %dx%d, %d worker(s)", output, num_frames, *source.size, len(chunks))
    with progress_bar(total=num_frames, desc="evaluate", enabled=progress) as bar:
        results = run_chunks(_evaluate_chunk, [(job,) for job in jobs], bar)
    per_frame = {key: np.concatenate([r["arrays"][key] for r in results]) for key in results[0]["arrays"]}
    if inputs.ground_truth is None:
        for key in ("ssim", "psnr", "l1", "ground_truth_flicker"):
            del per_frame[key]
    worst = _spread(sorted((item for r in results for item in r["worst"]), key=lambda x: -x[0]),
                    worst_frames, gap=max(1, round(source.fps / 2)))
    detected = None
    if config is not None:
        from holdpose.detect.extract import sequence_from_detections

        detected = sequence_from_detections([d for r in results for d in r["detections"]], size=source.size,
                                            fps=source.fps, max_people=inputs.max_people)
    return _FramePass(per_frame=per_frame, detected=detected, worst=worst, rank_by=rank_by)


def _fidelity_metrics(per_frame: dict[str, np.ndarray], compared: int) -> dict[str, float]:
    """SSIM, PSNR, L1 against the ground truth: means over the frames that have one."""
    if not compared:
        return {}
    return {key: float(np.nanmean(per_frame[key][:compared])) for key in ("ssim", "psnr", "l1")}


def _adherence_metrics(detected: PoseSequence, target: PoseSequence, min_score: float, num_frames: int,
                       per_frame: dict[str, np.ndarray]):
    """Adherence of the re-detected poses to the (already fitted) target; its per-frame
    values join ``per_frame``, padded with NaN past the target's end."""
    from holdpose.evaluate.adherence import score_adherence

    adherence = score_adherence(detected, target, min_score=min_score)
    scored = min(num_frames, target.num_frames)
    for key, values in adherence.per_frame.items():
        padded = np.full(num_frames, np.nan)
        padded[:scored] = values[:scored]
        per_frame[key] = padded
    return adherence


def _temporal_metrics(per_frame: dict[str, np.ndarray], detected: PoseSequence | None, inputs: _Inputs,
                      min_score: float) -> dict[str, float]:
    """Flicker, warping error (and the ground truth's own flicker), keypoint jitter."""
    from holdpose.evaluate.temporal import flicker_score, keypoint_jitter

    metrics: dict[str, float] = {}
    if inputs.source.num_frames > 1:
        metrics["flicker"] = float(np.nanmean(per_frame["flicker"]))
        metrics["flicker_score"] = flicker_score(metrics["flicker"])
        finite = np.isfinite(per_frame["warp_error"])
        metrics["warp_error"] = float(per_frame["warp_error"][finite].mean()) if finite.any() else float("nan")
        if "ground_truth_flicker" in per_frame and np.isfinite(per_frame["ground_truth_flicker"]).any():
            metrics["ground_truth_flicker"] = float(np.nanmean(per_frame["ground_truth_flicker"]))
    if detected is not None:
        body = slice(*PARTS["body"])
        jitter = keypoint_jitter(detected, min_score=min_score, keypoints=body)
        metrics["keypoint_jitter"] = jitter.mean
        per_frame["keypoint_jitter"] = jitter.per_frame
        if inputs.target is not None:
            metrics["keypoint_jitter_target"] = keypoint_jitter(inputs.target, min_score=min_score,
                                                                keypoints=body).mean
    return metrics


def _evaluation(output, ground_truth, reference, inputs: _Inputs, frames: _FramePass, metrics: dict, adherence,
                min_score: float, flow: str, seconds: dict) -> Evaluation:
    """The :class:`Evaluation` record of a run."""
    rank_by, source = frames.rank_by, inputs.source
    worst = [WorstFrame(index=int(t), metric=rank_by, value=-b if rank_by in ("oks", "ssim") else b, output=o,
                        ground_truth=g) for b, t, o, g in frames.worst]
    details = {"output": str(output), "target": inputs.target_label,
               "ground_truth": None if ground_truth is None else str(ground_truth),
               "reference": None if reference is None else str(reference),
               "detector": None if inputs.detector is None else inputs.detector.name, "max_people": inputs.max_people,
               "min_score": min_score, "flow": f"opencv {flow}", "size": list(source.size), "fps": source.fps}
    frame_counts = {"output": source.num_frames}
    if inputs.target is not None:
        frame_counts["target"] = inputs.target.num_frames
    if inputs.ground_truth is not None:
        frame_counts["ground_truth"] = inputs.ground_truth.num_frames
    keypoints = None
    if adherence is not None:
        keypoints = {"error_px": adherence.keypoint_error, "error_rel": adherence.keypoint_error_rel,
                     "count": adherence.keypoint_count, "mean_pose": adherence.mean_pose}
    return Evaluation(metrics=metrics, per_frame=frames.per_frame,
                      per_part=adherence.per_part if adherence is not None else {}, keypoints=keypoints,
                      worst_frames=worst, detected=frames.detected, target=inputs.target, inputs=details,
                      frames=frame_counts, notes=inputs.notes, skipped=inputs.skipped, seconds=seconds)


# --- learned metrics ----------------------------------------------------------------------


def _load_learned(*, lpips, fid_features, fvd_model, clip_model, prompt, dino_model, videomae_model, fid64, has_gt,
                  has_reference, skipped, allow_pickle: bool = False) -> dict:
    """Build the requested models now, so a missing package or weights file fails before the long pass."""
    from holdpose.evaluate import features, video_metrics

    learned = {}
    needs_gt = [name for name, wanted in (("lpips", lpips), ("fid", fid_features), ("fvd", fvd_model),
                                          ("fid64", fid64), ("cd_fvd", videomae_model)) if wanted]
    if needs_gt and not has_gt:
        raise HoldposeError(f"{', '.join(needs_gt)} compare{'s' if len(needs_gt) == 1 else ''} the video with a "
                            "ground truth; pass ground_truth= (CLI: --ground-truth VIDEO)")
    if prompt and not clip_model:
        raise HoldposeError("CLIP-T needs a CLIP model: pass clip_model= (CLI: --clip-model DIR)")
    if clip_model and not (prompt or has_reference or has_gt):
        raise HoldposeError("CLIP metrics need a reference image, a ground truth or a prompt to compare with")
    if lpips:
        learned["lpips"] = features.LpipsMetric()
    if fid_features is not None:
        learned["fid"] = features.load_feature_extractor(fid_features, allow_pickle=allow_pickle)
    if fvd_model is not None:
        learned["fvd"] = features.I3DClipFeatures(fvd_model, allow_pickle=allow_pickle)
    if clip_model is not None:
        learned["clip"] = features.ClipEmbedder(clip_model)
    if dino_model is not None:
        learned["dino"] = video_metrics.HFImageFeatures(dino_model)
    if videomae_model is not None:
        learned["videomae"] = video_metrics.VideoMAEClipFeatures(videomae_model)
    if fid64:
        learned["fid64"] = features.InceptionFeatures(dims=64)
    for name, why in (("lpips", "needs lpips=True and the lpips package with local AlexNet weights"),
                      ("fid", "needs a feature extractor (fid_features=, CLI --fid-features)"),
                      ("fvd", "needs StyleGAN-V's i3d_torchscript.pt (fvd_model=, CLI --fvd-model)"),
                      ("clip", "needs a local CLIP model folder (clip_model=, CLI --clip-model)"),
                      ("dino", "subject consistency needs a local DINO folder (dino_model=, CLI --dino-model)"),
                      ("videomae", "CD-FVD needs a local VideoMAE folder (videomae_model=, CLI --videomae-model)"),
                      ("fid64", "64-d FID needs fid64=True (CLI --fid64) and pytorch-fid's Inception weights")):
        if name not in learned:
            skipped[name] = why
    return learned


@dataclass
class _LearnedPass:
    """The learned metrics' running state over batches of frames (LPIPS and CLIP per frame,
    FID/KID features, FVD clip features)."""

    learned: dict
    num_frames: int
    clip_reference: np.ndarray | None = None
    clip_text: np.ndarray | None = None

    def __post_init__(self):
        self.lpips = np.full(self.num_frames, np.nan)
        self.clip_i = np.full(self.num_frames, np.nan)
        self.clip_t = np.full(self.num_frames, np.nan)
        self.fid_out, self.fid_gt, self.fvd_out, self.fvd_gt = [], [], [], []
        # per-frame features (a few KB a frame) and clip features for the S7 video metrics
        self.clip_features, self.dino_features = [], []
        self.fid64_out, self.fid64_gt, self.cd_out, self.cd_gt = [], [], [], []

    def add(self, start: int, out: np.ndarray, gt: np.ndarray | None) -> None:
        """Frames ``start..`` of the output ``[N, H, W, 3]`` and their ground truth (or None)."""
        from holdpose.evaluate.features import FVD_CLIP_FRAMES

        learned, stop = self.learned, start + len(out)
        if "lpips" in learned and gt is not None:
            self.lpips[start:stop] = learned["lpips"](out, gt)
        if "fid" in learned and gt is not None:
            self.fid_out.append(np.asarray(learned["fid"](out), np.float64))
            self.fid_gt.append(np.asarray(learned["fid"](gt), np.float64))
        if "fvd" in learned and gt is not None and len(out) == FVD_CLIP_FRAMES:
            self.fvd_out.append(learned["fvd"](out[None]))
            self.fvd_gt.append(learned["fvd"](gt[None]))
        if "videomae" in learned and gt is not None and len(out) == FVD_CLIP_FRAMES:
            self.cd_out.append(learned["videomae"](out[None]))
            self.cd_gt.append(learned["videomae"](gt[None]))
        if "fid64" in learned and gt is not None:
            self.fid64_out.append(learned["fid64"](out))
            self.fid64_gt.append(learned["fid64"](gt))
        if "dino" in learned:
            self.dino_features.append(learned["dino"](out))
        clip = learned.get("clip")
        if clip is not None:
            embeddings = clip.images(out)
            self.clip_features.append(embeddings)
            if self.clip_reference is not None:
                self.clip_i[start:stop] = embeddings @ self.clip_reference
            elif gt is not None:
                self.clip_i[start:stop] = (embeddings * clip.images(gt)).sum(-1)
            if self.clip_text is not None:
                self.clip_t[start:stop] = embeddings @ self.clip_text

    def result(self, compared: int) -> "_LearnedResult":
        from holdpose.evaluate.features import FVD_CLIP_FRAMES
        from holdpose.evaluate.fidelity import frechet_distance, kernel_inception_distance

        metrics, per_frame = {}, {}
        if "lpips" in self.learned:
            metrics["lpips"] = float(np.nanmean(self.lpips[:compared]))
            per_frame["lpips"] = self.lpips
        if self.fid_out:
            a, b = np.concatenate(self.fid_out), np.concatenate(self.fid_gt)
            metrics["fid"] = frechet_distance(a, b)
            kid = kernel_inception_distance(a, b)
            metrics["kid"], metrics["kid_std"] = kid.mean, kid.std
        if self.fvd_out:
            if len(self.fvd_out) < 2:
                raise HoldposeError(f"FVD needs at least two {FVD_CLIP_FRAMES}-frame clips; the videos have "
                                    f"{compared} frames in common")
            metrics["fvd"] = frechet_distance(np.concatenate(self.fvd_out), np.concatenate(self.fvd_gt))
        for name, values in (("clip_i", self.clip_i), ("clip_t", self.clip_t)):
            if "clip" in self.learned and np.isfinite(values).any():
                metrics[name] = float(np.nanmean(values))
                per_frame[name] = values
        metrics.update(self._video_metrics(compared))
        return _LearnedResult(metrics, per_frame)

    def _video_metrics(self, compared: int) -> dict[str, float]:
        """The seed papers' video metrics (:mod:`holdpose.evaluate.video_metrics`) from the features kept."""
        from holdpose.evaluate import video_metrics as vm
        from holdpose.evaluate.fidelity import frechet_distance

        metrics = {}
        if len(self.clip_features) and self.num_frames > 1:
            clip = np.concatenate(self.clip_features)
            metrics["clip_temporal"] = vm.clip_temporal(clip)
            metrics["background_consistency"] = vm.vbench_consistency(clip)
        if len(self.dino_features) and self.num_frames > 1:
            metrics["subject_consistency"] = vm.vbench_consistency(np.concatenate(self.dino_features))
        if self.fid64_out:
            metrics["fid64"] = frechet_distance(np.concatenate(self.fid64_out), np.concatenate(self.fid64_gt))
        if self.cd_out:
            if len(self.cd_out) < 2:
                raise HoldposeError(f"CD-FVD needs at least two 16-frame clips; the videos have {compared} frames "
                                    "in common")
            metrics["cd_fvd"] = vm.cd_fvd(np.concatenate(self.cd_out), np.concatenate(self.cd_gt))
        return metrics


@dataclass
class _LearnedResult:
    metrics: dict[str, float]
    per_frame: dict[str, np.ndarray]


def _learned_metrics(learned, output, ground_truth, reference, size, compared, num_frames, prompt,
                     progress) -> _LearnedResult:
    """Step 4: a second pass over the frames in batches (a batch holds frames that all have a
    ground truth, or none that has), fed to the learned metrics' models."""
    import cv2

    from holdpose.evaluate.features import FVD_CLIP_FRAMES
    from holdpose.io.video import read_image

    state = _LearnedPass(learned, num_frames)
    clip = learned.get("clip")
    if clip is not None and reference is not None:
        state.clip_reference = clip.images(read_image(reference)[None])[0]
    if clip is not None and prompt:
        state.clip_text = clip.text(prompt)
    gt_iter = iter(FrameSource(ground_truth, stop=compared)) if ground_truth else iter(())
    batch = FVD_CLIP_FRAMES if ("fvd" in learned or "videomae" in learned) else LEARNED_BATCH
    out_frames, gt_frames, start = [], [], 0
    for t, frame in enumerate(progress_bar(FrameSource(output), total=num_frames, desc="learned metrics",
                                           enabled=progress)):
        if (t == compared and out_frames) or len(out_frames) == batch:
            state.add(start, np.stack(out_frames), np.stack(gt_frames) if len(gt_frames) == len(out_frames) else None)
            start, out_frames, gt_frames = t, [], []
        out_frames.append(frame)
        if t < compared:
            g = next(gt_iter)
            gt_frames.append(g if g.shape == frame.shape else cv2.resize(g, size, interpolation=cv2.INTER_AREA))
    if out_frames:
        state.add(start, np.stack(out_frames), np.stack(gt_frames) if len(gt_frames) == len(out_frames) else None)
    return state.result(compared)


__all__ = ["DEFINITIONS", "Evaluation", "WorstFrame", "evaluate_video"]
