"""The evaluate stage's work: metrics per split, a per-image table and the figures."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .io import atomic_path, write_json, write_png
from .metrics import per_image_iou_dice, summarize
from .params import EvaluateParams
from .plots import confusion_figure, overlay, samples_figure, save_figure
from .prepare import PreparedDataset

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CSV_FIELDS = ("id", "split", "iou_fg", "dice_fg", "iou_bg", "dice_bg", "true_fg", "pred_fg")


def align(pred_ids: list[str], pred_masks: np.ndarray, ids: list[str]) -> np.ndarray:
    """Predicted masks of ``ids``, in that order, from predictions listed as ``pred_ids``."""
    where = {k: i for i, k in enumerate(pred_ids)}
    missing = [k for k in ids if k not in where]
    if missing:
        raise KeyError(f"no prediction for image {missing[0]} ({len(missing)} missing)")
    return pred_masks[[where[k] for k in ids]]


def per_image_rows(
    split: str, ids: list[str], pred: np.ndarray, true: np.ndarray, smooth: float
) -> list[dict]:
    """One CSV row per image with its seed-style IoU and Dice and foreground fractions."""
    iou_fg, dice_fg = per_image_iou_dice(pred, true, smooth)
    iou_bg, dice_bg = per_image_iou_dice(pred == 0, true == 0, smooth)
    return [
        {
            "id": k,
            "split": split,
            "iou_fg": round(float(iou_fg[i]), 6),
            "dice_fg": round(float(dice_fg[i]), 6),
            "iou_bg": round(float(iou_bg[i]), 6),
            "dice_bg": round(float(dice_bg[i]), 6),
            "true_fg": round(float(true[i].mean()), 6),
            "pred_fg": round(float(pred[i].mean()), 6),
        }
        for i, k in enumerate(ids)
    ]


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Write ``rows`` with :data:`CSV_FIELDS` as columns, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)


def pick_samples(ids: list[str], n: int) -> list[int]:
    """``n`` positions spread evenly over ``ids`` (all of them when there are fewer)."""
    if n >= len(ids):
        return list(range(len(ids)))
    return [int(i) for i in np.linspace(0, len(ids) - 1, n).round()]


def evaluate(
    data: PreparedDataset,
    splits: dict[str, list[str]],
    pred_ids: list[str],
    pred_masks: np.ndarray,
    params: EvaluateParams,
    metrics_path: str | Path,
    csv_path: str | Path,
    plots_dir: str | Path,
) -> dict[str, dict[str, float]]:
    """Score every split, write the metrics JSON, the per-image CSV and the figures."""
    plots_dir = Path(plots_dir)
    metrics: dict[str, dict[str, float]] = {}
    rows: list[dict] = []
    figures: dict[str, Figure] = {}
    overlays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        ids = splits.get(split, [])
        if not ids:
            continue
        true = data.masks[data.index(ids)].astype(bool)
        pred = align(pred_ids, pred_masks, ids).astype(bool)
        metrics[split] = summarize(pred, true, params.smooth)
        metrics[split]["images"] = len(ids)
        rows += per_image_rows(split, ids, pred, true, params.smooth)
        log.info(
            "%s (%d images): IoU fg %.4f  Dice fg %.4f  IoU mean %.4f  Dice mean %.4f",
            split, len(ids), metrics[split]["iou_fg"], metrics[split]["dice_fg"],
            metrics[split]["iou_mean"], metrics[split]["dice_mean"],
        )
        if split in ("val", "test"):
            n = params.n_samples if split == "val" else len(ids)
            picks = pick_samples(ids, n)
            if picks:
                images = data.images[data.index([ids[i] for i in picks])]
                panel = [(ids[i], images[j], true[i], pred[i]) for j, i in enumerate(picks)]
                figures[f"samples_{split}.png"] = samples_figure(panel, f"{split}: samples")
                for j, i in enumerate(picks):
                    overlays[f"{split}_{ids[i][:16]}.png"] = overlay(
                        images[j], true[i], pred[i]
                    )
            figures[f"confusion_{split}.png"] = confusion_figure(
                metrics[split], f"{split}: pixel confusion (fractions)"
            )
    write_json(metrics_path, metrics)
    write_csv(csv_path, rows)
    with atomic_path(plots_dir) as tmp:
        (tmp / "overlays").mkdir(parents=True)
        for name, fig in figures.items():
            save_figure(fig, tmp / name)
        for name, image in overlays.items():
            write_png(tmp / "overlays" / name, image)
    return metrics
