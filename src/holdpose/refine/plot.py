"""A plot a person can look at: one keypoint's raw and refined track over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.io.atomic import atomic_path
from holdpose.sequence import PoseSequence


def plot_tracks(raw: PoseSequence, refined: PoseSequence, path: str | Path, *, keypoint: str = "right_wrist",
                person: int = 0) -> Path:
    """Save a PNG with x and y (pixels) of ``keypoint`` against time (seconds), raw and refined;
    missing points are gaps in the line, interpolated ones are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        k = raw.layout.index(keypoint)
    except KeyError as err:
        raise HoldposeError(str(err)) from err
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for seq, label, style in ((raw, "raw", dict(color="0.6", lw=1)), (refined, "refined", dict(color="C0", lw=1.6))):
        t = np.arange(seq.num_frames) / seq.fps
        present = seq.scores[:, person, k] > 0
        for axis, name, ax in ((0, "x", axes[0]), (1, "y", axes[1])):
            values = np.where(present, seq.keypoints[:, person, k, axis], np.nan)
            ax.plot(t, values, label=label, **style)
            filled = seq.interpolated[:, person, k] & present
            if filled.any():
                ax.plot(t[filled], values[filled], "o", ms=3, color="C1", label=f"{label}: filled")
            ax.set_ylabel(f"{name} (px)")
    axes[0].set_title(f"{keypoint}, person {person}")
    axes[1].set_xlabel("time (s)")
    axes[1].invert_yaxis()  # image y grows downwards
    axes[0].legend(loc="upper right", fontsize=8)
    return save_figure(fig, path, dpi=110)


def save_figure(fig, path: str | Path, *, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it as a PNG at ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
