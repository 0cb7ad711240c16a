"""Reports a person can look at: ``metrics.json`` and ``index.html`` with plots beside it.

:func:`write_report` writes, into one folder::

    metrics.json            metric names as keys, then per_frame, per_part, per_keypoint, ...
    index.html              tables, plots and the worst frames; opens offline, no scripts
    plots/per_frame.png     per-frame curves (adherence, fidelity, temporal, people)
    plots/keypoint_error.png  mean error of each keypoint drawn on the target's mean pose
    frames/worst_N.png      the worst frames: output with its re-detected pose, target pose map,
                            ground truth

Plots need matplotlib (not a holdpose dependency); without it the report keeps its tables
and frames and says how to get the plots.
"""

from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path

import numpy as np

from holdpose.io.atomic import atomic_path

logger = logging.getLogger(__name__)

GROUPS = {
    "Pose adherence": ["oks_ap", "oks_ap50", "oks_ap75", "oks_ar", "cap", "cap_ar", "pce", "mse_p", "mse_p_norm",
                       "pck@0.05", "pck@0.1", "pck@0.2", "mean_oks"],
    "Temporal stability": ["flicker", "flicker_score", "ground_truth_flicker", "warp_error", "keypoint_jitter",
                           "keypoint_jitter_target", "clip_temporal", "background_consistency", "subject_consistency"],
    "Fidelity": ["ssim", "psnr", "l1", "lpips", "fid", "fid64", "kid", "kid_std", "fvd", "cd_fvd", "clip_i",
                 "clip_t"],
}
# Which way is better, for the reader.
HIGHER_IS_BETTER = {"oks_ap", "oks_ap50", "oks_ap75", "oks_ar", "cap", "cap_ar", "pck@0.05", "pck@0.1", "pck@0.2",
                    "mean_oks", "flicker_score", "ssim", "psnr", "clip_i", "clip_t", "clip_temporal",
                    "background_consistency", "subject_consistency"}
LOWER_IS_BETTER = {"pce", "mse_p", "mse_p_norm", "flicker", "warp_error", "keypoint_jitter", "l1", "lpips", "fid",
                   "kid", "fvd", "fid64", "cd_fvd"}

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1100px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 4px; } h2 { font-size: 1.15em; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; } td.def { text-align: left; color: #555;
       max-width: 560px; font-size: 0.9em; }
.muted { color: #777; font-size: 0.9em; } .note { background: #fff8e1; border-left: 4px solid #f0c000;
       padding: 6px 10px; margin: 6px 0; font-size: 0.92em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; } figure { margin: 12px 0; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f4f4f4; padding: 1px 4px; }
.strip { display: flex; height: 22px; border: 1px solid #ddd; } .strip .cell { flex: 1 1 0; min-width: 1px; }
.legend .key { margin-right: 14px; white-space: nowrap; font-size: 0.9em; }
.legend .cell { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
table.wide { font-size: 0.82em; } table.wide th { white-space: normal; min-width: 3.5em; }
table.wide th, table.wide td { padding: 3px 6px; } table.wide td.name { word-break: break-all; max-width: 16em; }
"""


def format_value(value) -> str:
    """A metric for a table: 4 significant digits, '–' when missing."""
    if value is None:
        return "–"
    value = float(value)
    if not np.isfinite(value):
        return "–"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}" if abs(value) < 100 else f"{value:.1f}"


def direction(name: str) -> str:
    return "↑" if name in HIGHER_IS_BETTER else "↓" if name in LOWER_IS_BETTER else ""


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, doc) -> None:
    write_text(path, json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def _matplotlib():
    """pyplot with the non-interactive Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# --- plots -----------------------------------------------------------------------------


def plot_per_frame(per_frame: dict[str, np.ndarray], path: Path, *, marks=(), fps: float | None = None,
                   series_labels: list[str] | None = None) -> Path | None:
    """Per-frame curves, one panel per family that has data. ``per_frame`` maps a metric
    to ``[T]`` values, or (for comparisons) to a list of ``[T]`` arrays, one per series."""
    plt = _matplotlib()
    if plt is None:
        return None
    families = [
        ("pose adherence", [("oks", "OKS"), ("pck@0.1", "PCK@0.1")], (0, 1.02)),
        ("fidelity: SSIM", [("ssim", "SSIM")], None),
        ("fidelity: PSNR (dB)", [("psnr", "PSNR")], None),
        ("flicker (0..255)", [("flicker", "output"), ("ground_truth_flicker", "ground truth")], None),
        ("warping error", [("warp_error", "warp error")], None),
        ("keypoint jitter (px/frame²)", [("keypoint_jitter", "jitter")], None),
        ("people", [("num_detected", "detected"), ("num_target", "target")], None),
        ("LPIPS", [("lpips", "LPIPS")], None),
        ("CLIP similarity", [("clip_i", "CLIP-I"), ("clip_t", "CLIP-T")], None),
    ]
    panels = [(title, [(k, lab) for k, lab in series if k in per_frame and _has_data(per_frame[k])], ylim)
              for title, series, ylim in families]
    panels = [p for p in panels if p[1]]
    if "num_detected" in per_frame and "num_target" in per_frame and not isinstance(per_frame["num_detected"], list) \
            and np.array_equal(per_frame["num_detected"], per_frame["num_target"]):
        panels = [p for p in panels if p[0] != "people"]  # every frame has the right count: nothing to see
    if not panels:
        return None
    height = 1.9 * len(panels) + 0.6
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, height), sharex=True, squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.3 / height, bottom=0.5 / height, hspace=0.35 * 1.9 / 1.6)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, series, ylim) in zip(axes[:, 0], panels):
        for s, (key, label) in enumerate(series):
            values = per_frame[key]
            runs = values if isinstance(values, list) else [values]
            for r, run in enumerate(runs):
                name = label if series_labels is None else f"{series_labels[r]}" + (f" {label}" if len(series) > 1 else "")
                style = "-" if s == 0 else "--"
                ax.plot(np.arange(len(run)), run, style, lw=1.2, color=colors[(r if series_labels else s) % len(colors)],
                        label=name)
        for t in marks:
            ax.axvline(t, color="#d62728", alpha=0.35, lw=1)
        ax.set_title(title, fontsize=9, loc="left")
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if len(series) > 1 or series_labels:
            ax.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("frame" + (f" ({fps:g} fps)" if fps else ""), fontsize=9)
    return _save(fig, plt, path)


def _has_data(values) -> bool:
    runs = values if isinstance(values, list) else [values]
    return any(np.isfinite(np.asarray(r, np.float64)).any() for r in runs)


def _save(fig, plt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path


def plot_keypoint_errors(mean_pose: np.ndarray, error: np.ndarray, path: Path, *, count: np.ndarray | None = None,
                         unit: str = "px") -> Path | None:
    """Each keypoint at its place in the target's mean pose (units of person height),
    coloured by its mean error; limbs in grey. Body, feet, hands and face all drawn."""
    plt = _matplotlib()
    if plt is None:
        return None
    from holdpose.skeleton import COCO_WHOLEBODY

    mean_pose = np.asarray(mean_pose, np.float64)
    error = np.asarray(error, np.float64)
    placed = np.isfinite(mean_pose).all(-1)
    scored = placed & np.isfinite(error)
    if not placed.any():
        return None
    fig, ax = plt.subplots(figsize=(6.4, 7.2))
    fig.subplots_adjust(left=0.12, right=0.98, top=0.91, bottom=0.08)
    for a, b in COCO_WHOLEBODY.limbs:
        if placed[a] and placed[b]:
            ax.plot(mean_pose[[a, b], 0], mean_pose[[a, b], 1], color="#bbbbbb", lw=1.5, zorder=1)
    ax.scatter(mean_pose[placed & ~scored, 0], mean_pose[placed & ~scored, 1], s=10, c="#dddddd", zorder=2)
    sizes = np.where(np.arange(len(error)) < 23, 60, 14)  # body and feet big, face and hands small
    points = ax.scatter(mean_pose[scored, 0], mean_pose[scored, 1], s=sizes[scored], c=error[scored], cmap="viridis",
                        vmin=0, vmax=max(float(np.nanpercentile(error[scored], 95)), 1e-9), zorder=3,
                        edgecolors="black", linewidths=0.3)
    # Labels in a column at the top left, each with a leader line to its point: beside the
    # points they piled into one blob (the worst points are often neighbours on a hand).
    for i, k in enumerate(_worst_keypoints(error, scored, 5)):
        ax.annotate(_keypoint_label(k), mean_pose[k], xytext=(0.02, 0.98 - 0.055 * i), textcoords="axes fraction",
                    fontsize=7, va="top", arrowprops=dict(arrowstyle="-", color="#888888", lw=0.6),
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_xlabel("x (person heights from the body box centre)", fontsize=8)
    ax.set_ylabel("y (person heights)", fontsize=8)
    ax.tick_params(labelsize=7)
    bar = fig.colorbar(points, ax=ax, shrink=0.7)
    bar.set_label(f"mean error ({unit})", fontsize=8)
    ax.set_title("mean keypoint error on the target's mean pose\n(the 5 worst named; face and hands by their "
                 "worst point)", fontsize=9, loc="left")
    return _save(fig, plt, path)


def _worst_keypoints(error: np.ndarray, scored: np.ndarray, count: int) -> list[int]:
    """Indices of the ``count`` worst scored keypoints, face and each hand counted once (by
    their worst point), so the names spread over the body."""
    from holdpose.skeleton import COCO_WHOLEBODY

    group_of = np.full(len(error), -1)
    for g, name in enumerate(("face", "left_hand", "right_hand")):
        group_of[COCO_WHOLEBODY.group(name)] = g
    picked, groups = [], set()
    for k in np.argsort(np.where(scored, error, -np.inf))[::-1]:
        if not scored[k] or len(picked) == count:
            break
        if group_of[k] >= 0 and group_of[k] in groups:
            continue
        groups.add(group_of[k])
        picked.append(int(k))
    return picked


def _keypoint_label(k: int) -> str:
    from holdpose.skeleton import COCO_WHOLEBODY

    name = COCO_WHOLEBODY.keypoint_names[k]
    for group in ("face", "left_hand", "right_hand"):
        part = COCO_WHOLEBODY.group(group)
        if part.start <= k < part.stop:
            return f"{group.replace('_', ' ')} ({name})"
    return name.replace("_", " ")


def plot_parts(per_part: dict[str, dict[str, float]], path: Path) -> Path | None:
    """Grouped bars of OKS AP, CAP and PCK@0.1 per body part."""
    plt = _matplotlib()
    if plt is None or not per_part:
        return None
    parts = list(per_part)
    keys = [("oks_ap", "OKS AP"), ("cap", "CAP"), ("pck@0.1", "PCK@0.1")]
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.1)
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(keys):
        values = np.array([per_part[p].get(key, np.nan) for p in parts], np.float64)  # NaN: no bar
        ax.bar(np.arange(len(parts)) + (i - (len(keys) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(np.arange(len(parts)), parts)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=3, loc="lower right")
    ax.set_title("adherence per part", fontsize=9, loc="left")
    return _save(fig, plt, path)


# --- frames ------------------------------------------------------------------------------


def overlay_pose(frame: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int],
                 *, threshold: float = 0.3, alpha: float = 0.75) -> np.ndarray:
    """``frame`` with an OpenPose-style map of people ``[P, 133, 2]`` (pixels of a ``size``
    canvas) drawn over it."""
    from holdpose.render.openpose import overlay_pose_map

    h, w = frame.shape[:2]
    return overlay_pose_map(frame, pose_map(keypoints, scores, size, (w, h), threshold), alpha=alpha)


def pose_map(keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int], out_size: tuple[int, int],
             threshold: float = 0.3) -> np.ndarray:
    """An OpenPose-style pose map of people ``[P, 133, 2]`` (pixels of ``size``) at ``out_size``."""
    from holdpose.render.openpose import PoseMapRenderer

    scale = np.array([out_size[0] / size[0], out_size[1] / size[1]], np.float32)
    return PoseMapRenderer(out_size, "openpose_full", threshold)(np.asarray(keypoints) * scale, scores)


def labelled_row(panels: list[tuple[str, np.ndarray]], *, height: int | None = None) -> np.ndarray:
    """Images side by side at one height, each under a black label bar."""
    import cv2

    height = height or max(p.shape[0] for _, p in panels)
    tiles = []
    for label, image in panels:
        scale = height / image.shape[0]
        tile = cv2.resize(image, (max(1, round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)
        bar = np.zeros((24, tile.shape[1], 3), np.uint8)
        cv2.putText(bar, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([bar, tile], 0))
        tiles.append(np.full((height + 24, 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], 1)


def worst_frame_image(evaluation, worst) -> np.ndarray:
    """Output (with its re-detected pose), target pose map and ground truth of one worst frame."""
    import cv2

    out = worst.output
    h, w = out.shape[:2]
    size = tuple(evaluation.inputs.get("size") or (w, h))
    t = worst.index
    panels = []
    if evaluation.detected is not None and t < evaluation.detected.num_frames:
        d = evaluation.detected
        panels.append(("output + re-detected pose", overlay_pose(out, d.keypoints[t], _slot_scores(d, t), size)))
    else:
        panels.append(("output", out))
    if evaluation.target is not None and t < evaluation.target.num_frames:
        tg = evaluation.target
        panels.append(("target pose", pose_map(tg.keypoints[t], _slot_scores(tg, t), size, (w, h))))
    if worst.ground_truth is not None:
        panels.append(("ground truth", worst.ground_truth))
        if evaluation.target is None:
            diff = cv2.absdiff(out, worst.ground_truth).max(-1)
            heat = cv2.applyColorMap(np.clip(diff.astype(np.float32) * 4, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
            panels.append(("|difference| x4", cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)))
    return labelled_row(panels)


def _slot_scores(seq, t: int) -> np.ndarray:
    return np.where(seq.track_ids[t, :, None] >= 0, seq.scores[t], 0)


# --- the report ------------------------------------------------------------------------------


def metrics_table(metrics: dict[str, float], definitions: dict[str, str]) -> str:
    rows = []
    for group, names in GROUPS.items():
        present = [n for n in names if n in metrics]
        if not present:
            continue
        rows.append(f"<tr><th class=\"name\" colspan=\"3\">{html.escape(group)}</th></tr>")
        for name in present:
            rows.append(f"<tr><td class=\"name\"><code>{html.escape(name)}</code> {direction(name)}</td>"
                        f"<td>{format_value(metrics[name])}</td>"
                        f"<td class=\"def\">{html.escape(definitions.get(name, ''))}</td></tr>")
    others = [n for n in metrics if not any(n in names for names in GROUPS.values())]
    for name in others:
        rows.append(f"<tr><td class=\"name\"><code>{html.escape(name)}</code></td><td>{format_value(metrics[name])}</td>"
                    f"<td class=\"def\">{html.escape(definitions.get(name, ''))}</td></tr>")
    return "<table><tr><th class=\"name\">metric</th><th>value</th><th class=\"name\">definition</th></tr>" \
           + "".join(rows) + "</table>"


def parts_table(per_part: dict[str, dict[str, float]]) -> str:
    if not per_part:
        return ""
    keys = list(dict.fromkeys(k for values in per_part.values() for k in values))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = "".join(f"<tr><td class=\"name\">{html.escape(part)}</td>"
                   + "".join(f"<td>{format_value(values.get(k))}</td>" for k in keys) + "</tr>"
                   for part, values in per_part.items())
    return f"<table><tr><th class=\"name\">part</th>{head}</tr>{rows}</table>"


def write_report(evaluation, output_dir: str | os.PathLike, *, title: str | None = None) -> dict[str, Path]:
    """Write ``metrics.json``, ``index.html``, its plots and worst frames into ``output_dir``.

    Args:
        evaluation: a :class:`holdpose.evaluate.run.Evaluation`.
        output_dir: the report folder (created; files in it are replaced).
        title: the page title (default: the output video's name).

    Returns:
        name -> path of every file written.
    """
    from holdpose.evaluate.run import DEFINITIONS
    from holdpose.io.video import write_image

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    # 1. metrics.json
    files["metrics"] = out / "metrics.json"
    write_json(files["metrics"], evaluation.to_json())

    # 2. plots
    plots_dir = out / "plots"
    fps = evaluation.inputs.get("fps")
    marks = [w.index for w in evaluation.worst_frames]
    made = {"per_frame": plot_per_frame(evaluation.per_frame, plots_dir / "per_frame.png", marks=marks, fps=fps)}
    if evaluation.keypoints is not None:
        made["keypoint_error"] = plot_keypoint_errors(evaluation.keypoints["mean_pose"],
                                                      evaluation.keypoints["error_px"], plots_dir / "keypoint_error.png",
                                                      count=evaluation.keypoints["count"])
    files.update({k: v for k, v in made.items() if v is not None})

    # 3. worst frames
    worst_files = []
    for n, worst in enumerate(evaluation.worst_frames):
        path = out / "frames" / f"worst_{n + 1}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, worst_frame_image(evaluation, worst))
        worst_files.append((path, worst))
        files[f"worst_{n + 1}"] = path

    # 4. index.html
    name = Path(evaluation.inputs.get("output", "output")).name
    title = title or f"holdpose evaluation: {name}"
    body = [f"<h1>{html.escape(title)}</h1>", _inputs_html(evaluation)]
    body += [f"<div class=\"note\">{html.escape(note)}</div>" for note in evaluation.notes]
    body.append("<h2>Metrics</h2>")
    body.append(metrics_table(evaluation.metrics, DEFINITIONS))
    body.append("<p class=\"muted\">↑ higher is better, ↓ lower is better. All values with their per-frame series "
                "are in <a href=\"metrics.json\">metrics.json</a>.</p>")
    if evaluation.skipped:
        body.append("<p class=\"muted\">Not computed: " + "; ".join(
            f"<code>{html.escape(k)}</code> ({html.escape(v)})" for k, v in evaluation.skipped.items()) + "</p>")
    if evaluation.per_part:
        body.append("<h2>Adherence per part</h2>")
        body.append(parts_table(evaluation.per_part))
        body.append("<p class=\"muted\">COCO-WholeBody parts: body 0-16, feet 17-22, face 23-90, hands 91-132 "
                    "(per-part sigmas; CAP for the body only, as the papers report it); – where the target has no "
                    "point of the part.</p>")
    if evaluation.closed_loop is not None:
        body.append("<h2>Closed loop</h2>")
        body.append(closed_loop_strip(evaluation.closed_loop, fps))
    if made.get("per_frame") is None and _matplotlib() is None:
        body.append("<p class=\"note\">Plots need matplotlib: <code>pip install matplotlib</code></p>")
    if "per_frame" in files:
        body.append("<h2>Per frame</h2>")
        body.append(_figure(files["per_frame"], out, "Per-frame metrics; red lines mark the worst frames. Temporal "
                            "metrics compare each frame with the one before."))
    if "keypoint_error" in files:
        body.append("<h2>Where the pose is lost</h2>")
        body.append(_figure(files["keypoint_error"], out, "Each keypoint at its place in the target's mean pose, "
                            "coloured by its mean distance (px) from the re-detected point over the frames where both "
                            "exist; grey points were never re-detected."))
    if worst_files:
        metric = evaluation.worst_frames[0].metric
        body.append(f"<h2>Worst frames (by {html.escape(metric)})</h2>")
        for path, worst in worst_files:
            body.append(_figure(path, out, f"frame {worst.index}: {metric} = {format_value(worst.value)}"))
    body.append("<p class=\"muted\">Timing: " + ", ".join(f"{k} {v:.1f} s" for k, v in evaluation.seconds.items())
                + "</p>")
    files["html"] = out / "index.html"
    write_text(files["html"], page(title, "\n".join(body)))
    return files


def closed_loop_strip(closed_loop: dict, fps: float | None) -> str:
    """A timeline strip, one cell per frame coloured by its state (held, made again, corrected,
    still drifting), with a legend of counts and, per cell, its tries and PCK before and after."""
    from holdpose.evaluate.closed_loop import STATES

    frames = closed_loop["per_frame"]
    cells = []
    for index, state in enumerate(frames["state"]):
        tip = f"frame {index}"
        if fps:
            tip += f" ({index / fps:.2f} s)"
        tip += f": {STATES[state][1]}"
        if frames["tries"][index]:
            tip += f", {frames['tries'][index]} tr{'y' if frames['tries'][index] == 1 else 'ies'}"
        if frames["pck_before"][index] is not None:
            tip += f", PCK@0.05 {format_value(frames['pck_before'][index])}"
            if frames["pck_after"][index] != frames["pck_before"][index]:
                tip += f" -> {format_value(frames['pck_after'][index])}"
        cells.append(f"<span class=\"cell\" style=\"background:{STATES[state][0]}\" title=\"{html.escape(tip)}\"></span>")
    legend = " ".join(f"<span class=\"key\"><span class=\"cell\" style=\"background:{colour}\"></span>"
                      f"{html.escape(meaning)}: {closed_loop['counts'][name]}</span>"
                      for name, (colour, meaning) in STATES.items() if closed_loop["counts"][name])
    return (f"<div class=\"strip\">{''.join(cells)}</div><p class=\"legend\">{legend}</p>"
            "<p class=\"muted\">One cell per frame, in order (hover for its tries and PCK@0.05 before and after). "
            "Per-frame values are under <code>closed_loop</code> in metrics.json.</p>")


def _figure(path: Path, root: Path, caption: str) -> str:
    rel = path.relative_to(root).as_posix()
    return (f"<figure><img src=\"{html.escape(rel)}\" alt=\"{html.escape(caption)}\">"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _inputs_html(evaluation) -> str:
    i = evaluation.inputs
    rows = [("output", i.get("output")), ("target poses", i.get("target")), ("ground truth", i.get("ground_truth")),
            ("reference", i.get("reference")), ("detector", i.get("detector")),
            ("frames", ", ".join(f"{k} {v}" for k, v in evaluation.frames.items())),
            ("size", "x".join(str(v) for v in i.get("size", []))), ("fps", format_value(i.get("fps")))]
    cells = "".join(f"<tr><td class=\"name\">{html.escape(k)}</td><td class=\"name\">{html.escape(str(v))}</td></tr>"
                    for k, v in rows if v not in (None, ""))
    return f"<table>{cells}</table>"


__all__ = ["format_value", "labelled_row", "overlay_pose", "plot_keypoint_errors", "plot_parts", "plot_per_frame",
           "pose_map", "write_report"]
