"""Figures: TP/FP/FN overlays in the seed's colours, sample panels, the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nuclei_unet.evaluate.outlines import FALSE_POSITIVE, MATCHED, MISSED, draw_outlines  # noqa: E402
from nuclei_unet.io.files import atomic_path  # noqa: E402

# the seed notebook's colours: cyan, magenta, yellow
COLORS = {"tp": MATCHED, "fp": FALSE_POSITIVE, "fn": MISSED}


def overlay(image: np.ndarray, true: np.ndarray, pred: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend ``(H, W, 3) uint8`` with TP cyan, FP magenta, FN yellow (TN black), like the seed's
    ``addWeighted(image, alpha, colour_mask, 1 - alpha)``. Returns ``(H, W, 3) uint8``."""
    t, p = true.astype(bool), pred.astype(bool)
    colour = np.zeros_like(image)
    colour[t & p] = COLORS["tp"]
    colour[~t & p] = COLORS["fp"]
    colour[t & ~p] = COLORS["fn"]
    blended = alpha * image.astype(np.float32) + (1 - alpha) * colour.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def save_figure(fig: Figure, path: str | Path) -> None:
    """Save a figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def samples_figure(
    rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str
) -> Figure:
    """One row per ``(id, image, truth, prediction)``: image | truth | prediction | overlay."""
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3 * len(rows)), squeeze=False)
    for ax_row, (sample_id, image, true, pred) in zip(axes, rows):
        panels = (image, true, pred, overlay(image, true, pred))
        names = ("image", "truth", "prediction", "TP cyan / FP magenta / FN yellow")
        for ax, panel, name in zip(ax_row, panels, names):
            if panel.ndim == 2:
                ax.imshow(panel, cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(panel)
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        ax_row[0].set_title(f"image {sample_id[:12]}", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_figure(cm: dict[str, float], title: str) -> Figure:
    """The normalised 2x2 pixel confusion matrix (rows: truth, columns: prediction)."""
    grid = np.array([[cm["tp"], cm["fn"]], [cm["fp"], cm["tn"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=1)
    names = (("TP", "FN"), ("FP", "TN"))
    for i in range(2):
        for j in range(2):
            colour = "white" if grid[i, j] > 0.5 else "black"
            ax.text(j, i, f"{names[i][j]}\n{grid[i, j]:.4f}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], ["nucleus", "background"])
    ax.set_yticks([0, 1], ["nucleus", "background"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def instance_figure(
    image: np.ndarray, true: np.ndarray, pred: np.ndarray, match: tuple[list, list, list],
    title: str,
) -> Figure:
    """One image at its own resolution with each predicted nucleus outlined by its match at
    IoU 0.5: matched cyan, false positive magenta, and each missed true nucleus yellow.

    ``image (H, W, 3) uint8``, ``true`` and ``pred`` ``(H, W)`` labels; ``match`` is
    ``(matched predicted labels, false-positive predicted labels, missed true labels)``.
    """
    matched, false_pos, missed = match
    drawn = draw_outlines(image, pred, {**{k: MATCHED for k in matched}, **{k: FALSE_POSITIVE for k in false_pos}})
    drawn = draw_outlines(drawn, true, {k: MISSED for k in missed})
    h, w = image.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100 + 0.4), dpi=100)
    ax = fig.add_axes((0, 0, 1, h / (h + 40)))
    ax.imshow(drawn, interpolation="nearest")
    ax.axis("off")
    fig.suptitle(title, fontsize=9, y=0.995, va="top")
    return fig
