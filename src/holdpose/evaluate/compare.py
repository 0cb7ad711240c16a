"""Compare several generated videos of the same target motion: one side-by-side video and one table.

:func:`compare` evaluates every video against the same target (and ground truth, when
given) with :func:`holdpose.evaluate.run.evaluate_video`, then writes into one folder::

    compare.mp4     target pose map | video 1 + its re-detected pose | video 2 + ... (labelled)
    metrics.json    {"videos": [{"label", "path", metric: value, ..., "per_part", "per_frame"}], ...}
    index.html      one table of metrics (best of each column in bold), per-frame curves, a still
    plots/, still.png
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.evaluate import report as rep
from holdpose.sequence import PoseSequence

logger = logging.getLogger(__name__)

LABEL_BAR = 28
COLUMNS = ["oks_ap", "oks_ar", "cap", "pce", "mse_p", "pck@0.05", "pck@0.1", "pck@0.2", "flicker", "flicker_score",
           "warp_error", "keypoint_jitter", "ssim", "psnr", "l1", "lpips", "fid", "kid", "fvd", "clip_i", "clip_t"]


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def _warn_when_sizes_differ(videos, sources, target: PoseSequence) -> None:
    """Each video is scored against the target fitted to its own canvas: videos of different
    shapes are then not scored against the same poses, and their figures are not comparable."""
    shapes = {round(s.size[0] / s.size[1], 2) for s in sources}
    if len(shapes) > 1 or shapes != {round(target.size[0] / target.size[1], 2)}:
        sizes = ", ".join(f"{v.name} {s.size[0]}x{s.size[1]}" for v, s in zip(videos, sources))
        logger.warning("the videos' shapes differ from each other or from the target's %dx%d canvas (%s); each is "
                       "scored against the target fitted to its own frame, so their adherence figures are not "
                       "directly comparable", target.size[0], target.size[1], sizes)


def compare(videos: list[str | os.PathLike], target: PoseSequence | str | os.PathLike, output: str | os.PathLike, *,
            labels: list[str] | None = None, ground_truth: str | os.PathLike | None = None, detector="auto",
            pose_model=None, det_model=None, max_people: int | None = None, workers: int | None = None,
            tile_height: int | None = None, progress: bool = True, **evaluate_options) -> dict[str, Path]:
    """Evaluate ``videos`` against ``target`` and write a side-by-side video and one metrics table.

    Args:
        videos: the generated videos (one or more).
        target: the driving poses (PoseSequence or pose file) they should all hold.
        output: the folder to write (created).
        labels: one name per video (default: the file names, made unique).
        ground_truth: a ground-truth video for the fidelity metrics.
        detector, pose_model, det_model, max_people, workers: as :func:`evaluate_video`.
        tile_height: height of each tile of the side-by-side video (default: the
            smallest video height, at most 512).
        evaluate_options: passed on to :func:`evaluate_video` (e.g. ``lpips=True``).

    Returns:
        name -> path of the files written (``video``, ``metrics``, ``html``, ...).
    """
    from holdpose.evaluate.run import DEFINITIONS, evaluate_video
    from holdpose.io.posefile import load_poses
    from holdpose.io.video import FrameSource

    # 1. Check inputs.
    videos = [Path(v) for v in videos]
    if not videos:
        raise HoldposeError("compare needs at least one video")
    for v in videos:
        if not v.exists():
            raise HoldposeError(f"{v}: no such video")
    if labels is None:
        labels = [v.stem for v in videos]
        if len(set(labels)) != len(labels):
            labels = [f"{i + 1}: {label}" for i, label in enumerate(labels)]
    if len(labels) != len(videos):
        raise HoldposeError(f"{len(labels)} labels for {len(videos)} videos; give one label per video")
    target_label = "poses passed in memory" if isinstance(target, PoseSequence) else str(target)
    if not isinstance(target, PoseSequence):
        target = load_poses(target)
    sources = [FrameSource(v) for v in videos]
    _warn_when_sizes_differ(videos, sources, target)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)

    # 2. Evaluate each video.
    evaluations = []
    for video, label in zip(videos, labels):
        logger.info("evaluating %s (%s)", video, label)
        evaluations.append(evaluate_video(video, target=target, ground_truth=ground_truth, detector=detector,
                                          pose_model=pose_model, det_model=det_model, max_people=max_people,
                                          workers=workers, worst_frames=0, progress=progress, **evaluate_options))

    # 3. The side-by-side video.
    height = _even(tile_height or min(512, min(s.size[1] for s in sources)))
    num_frames = min([s.num_frames for s in sources] + [target.num_frames])
    fps = sources[0].fps
    files = {"video": out / "compare.mp4", "still": out / "still.png"}
    _write_side_by_side(files["video"], files["still"], sources, evaluations, target, labels, height, num_frames, fps,
                        progress)

    # 4. metrics.json and index.html.
    columns = [c for c in COLUMNS if any(c in e.metrics for e in evaluations)]
    doc = {"videos": [], "target": target_label, "ground_truth": None if ground_truth is None else str(ground_truth),
           "columns": columns, "frames": num_frames,
           "definitions": {c: DEFINITIONS[c] for c in columns if c in DEFINITIONS}}
    for video, label, ev in zip(videos, labels, evaluations):
        entry = ev.to_json()
        doc["videos"].append({"label": label, "path": str(video),
                              **{k: entry[k] for k in ev.metrics},
                              "per_part": entry["per_part"], "per_frame": entry["per_frame"],
                              "notes": entry["notes"], "frames": entry["frames"]})
    files["metrics"] = out / "metrics.json"
    rep.write_json(files["metrics"], doc)
    per_frame = {}
    for key in ("oks", "pck@0.1", "ssim", "psnr", "flicker", "warp_error", "keypoint_jitter", "num_detected"):
        if all(key in e.per_frame for e in evaluations):
            per_frame[key] = [e.per_frame[key] for e in evaluations]
    plot = rep.plot_per_frame(per_frame, out / "plots" / "per_frame.png", fps=fps, series_labels=labels)
    if plot is not None:
        files["per_frame"] = plot
    files["html"] = out / "index.html"
    rep.write_text(files["html"], _compare_html(labels, videos, evaluations, columns, target_label, ground_truth,
                                                files, out, DEFINITIONS))
    return files


def _write_side_by_side(path, still_path, sources, evaluations, target, labels, height, num_frames, fps,
                        progress) -> None:
    import cv2

    from holdpose.evaluate.adherence import fit_target
    from holdpose.io.video import VideoWriter, write_image
    from holdpose.progress import progress_bar
    from holdpose.render.openpose import PoseMapRenderer

    # Tile sizes: each video at `height`, aspect kept; the target on its own canvas' aspect.
    target_size = (_even(height * target.size[0] / target.size[1]), height)
    tiles = [target_size] + [(_even(height * s.size[0] / s.size[1]), height) for s in sources]
    names = ["target pose"] + list(labels)
    width = sum(w for w, _ in tiles) + 4 * (len(tiles) - 1)
    target_on_tile, _ = fit_target(target, target_size)
    target_renderer = PoseMapRenderer(target_size, "openpose_full")
    renderers = [PoseMapRenderer(size, "openpose_full") for size in tiles[1:]]
    detected = [None if e.detected is None else fit_target(e.detected, size)[0]
                for e, size in zip(evaluations, tiles[1:])]
    header = np.zeros((LABEL_BAR, width, 3), np.uint8)
    x = 0
    for (w, _), name in zip(tiles, names):
        cv2.putText(header, _fit_label(name, w - 12), (x + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                    cv2.LINE_AA)
        x += w + 4
    iterators = [iter(s) for s in sources]
    with VideoWriter(path, fps=fps, size=(width, height + LABEL_BAR)) as writer:
        for t in progress_bar(range(num_frames), total=num_frames, desc="compare video", enabled=progress):
            canvas = np.full((height + LABEL_BAR, width, 3), 255, np.uint8)
            canvas[:LABEL_BAR] = header
            scores = np.where(target_on_tile.track_ids[t, :, None] >= 0, target_on_tile.scores[t], 0)
            panels = [target_renderer(target_on_tile.keypoints[t], scores)]
            for it, size, renderer, seq in zip(iterators, tiles[1:], renderers, detected):
                frame = next(it)
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                if seq is not None and t < seq.num_frames:
                    s = np.where(seq.track_ids[t, :, None] >= 0, seq.scores[t], 0)
                    pose = renderer(seq.keypoints[t], s)
                    drawn = pose.any(-1)
                    frame = frame.copy()
                    frame[drawn] = (0.75 * pose[drawn] + 0.25 * frame[drawn]).astype(np.uint8)
                panels.append(frame)
            x = 0
            for panel, (w, _) in zip(panels, tiles):
                canvas[LABEL_BAR:, x:x + w] = panel
                x += w + 4
            writer.write(canvas)
            if t == num_frames // 2:
                write_image(still_path, canvas)


def _compare_html(labels, videos, evaluations, columns, target_label, ground_truth, files, out, definitions) -> str:
    head = "".join(f"<th title=\"{html.escape(definitions.get(c, ''))}\">{html.escape(c)} {rep.direction(c)}</th>"
                   for c in columns)
    best = {}
    for c in columns:
        values = np.array([e.metrics.get(c, np.nan) for e in evaluations], np.float64)
        if np.isfinite(values).sum() > 1 and (c in rep.HIGHER_IS_BETTER or c in rep.LOWER_IS_BETTER):
            pick = np.nanargmax(values) if c in rep.HIGHER_IS_BETTER else np.nanargmin(values)
            best[c] = values[pick]
    rows = []
    for label, video, ev in zip(labels, videos, evaluations):
        cells = []
        for c in columns:
            value = ev.metrics.get(c)
            text = rep.format_value(value)
            if c in best and value is not None and np.isfinite(value) and value == best[c]:
                text = f"<b>{text}</b>"
            cells.append(f"<td>{text}</td>")
        rows.append(f"<tr><td class=\"name\">{html.escape(label)}<br><span class=\"muted\">{html.escape(str(video))}"
                    f"</span></td>{''.join(cells)}</tr>")
    body = ["<h1>holdpose comparison</h1>",
            f"<p>target poses: <code>{html.escape(target_label)}</code>"
            + (f"; ground truth: <code>{html.escape(str(ground_truth))}</code>" if ground_truth else "") + "</p>"]
    notes = sorted({n for e in evaluations for n in e.notes})
    body += [f"<div class=\"note\">{html.escape(n)}</div>" for n in notes]
    body.append("<h2>Metrics</h2>")
    body.append(f"<div style=\"overflow-x:auto\"><table class=\"wide\"><tr><th class=\"name\">video</th>{head}</tr>"
                f"{''.join(rows)}</table></div>")
    body.append("<p class=\"muted\">↑ higher is better, ↓ lower is better; the best of each column is bold. "
                "Hover a column name for its definition; everything is in <a href=\"metrics.json\">metrics.json</a>."
                "</p>")
    body.append("<h2>Side by side</h2>")
    # One picture of the frames: the video, whose poster is the still (a separate still figure
    # showed the same frame twice).
    body.append("<figure><video controls loop muted src=\"compare.mp4\" poster=\"still.png\" "
                "style=\"max-width:100%\"></video><figcaption>before playing: the middle frame; the target pose "
                "map, then each video with the pose re-detected on it (<a href=\"still.png\">still.png</a>)"
                "</figcaption></figure>")
    if "per_frame" in files:
        body.append("<h2>Per frame</h2>")
        body.append(rep._figure(files["per_frame"], out, "per-frame metrics of each video"))
    return rep.page("holdpose comparison", "\n".join(body))



def _fit_label(name: str, width: int) -> str:
    """``name`` shortened from the middle ("anim…one-3") to fit ``width`` pixels of the label font."""
    import cv2

    def fits(text):
        return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)[0][0] <= width

    if fits(name):
        return name
    keep = len(name)
    while keep > 2 and not fits(name[:(keep + 1) // 2] + ".." + name[len(name) - keep // 2:]):
        keep -= 1
    return name[:(keep + 1) // 2] + ".." + name[len(name) - keep // 2:]

__all__ = ["compare"]
