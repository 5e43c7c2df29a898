"""The evaluate stage's work: metrics per split, a per-image table and the figures."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .dsb import THRESHOLDS, image_scores
from . import io
from .io import atomic_path, read_labels, write_json, write_png
from .metrics import per_image_iou_dice, summarize
from .params import EvaluateParams
from .plots import confusion_figure, overlay, samples_figure, save_figure
from .prepare import PreparedDataset

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# at original resolution, for the splits predicted there
FULL_RES_FIELDS = ("dsb_score", "f1_50", "n_true", "n_pred", "fullres_iou_fg", "fullres_dice_fg")
CSV_FIELDS = (
    "id", "split", "iou_fg", "dice_fg", "iou_bg", "dice_bg", "true_fg", "pred_fg",
    *FULL_RES_FIELDS,
)


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
    io.write_csv(path, CSV_FIELDS, rows)


def full_res_scores(
    ids: list[str], truth_dir: Path, pred_dir: Path, smooth: float
) -> tuple[dict[str, dict], dict[str, float], list[float]]:
    """DSB metric and foreground IoU/Dice at original resolution for ``ids``.

    Returns per-image figures, the split summary (mean DSB score, pooled counts, precision,
    recall and F1 at 0.5, mean full-resolution IoU/Dice) and the mean score per IoU threshold.
    """
    per_image: dict[str, dict] = {}
    for k in ids:
        true = read_labels(truth_dir / f"{k}.png")
        pred = read_labels(pred_dir / f"{k}_labels.png")
        mask = read_labels(pred_dir / f"{k}_mask.png") > 0
        scores = image_scores(true, pred)
        iou, dice = per_image_iou_dice(mask, true > 0, smooth)
        scores.update(fullres_iou_fg=float(iou[0]), fullres_dice_fg=float(dice[0]))
        per_image[k] = scores
    rows = list(per_image.values())
    tp, fp, fn = (sum(r[f"{c}_50"] for r in rows) for c in ("tp", "fp", "fn"))
    summary = {
        "dsb_map": float(np.mean([r["dsb_score"] for r in rows])),
        "precision_50": tp / (tp + fp) if tp + fp else 0.0,
        "recall_50": tp / (tp + fn) if tp + fn else 0.0,
        "f1_50": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        "tp_50": tp, "fp_50": fp, "fn_50": fn,
        "fullres_iou_fg": float(np.mean([r["fullres_iou_fg"] for r in rows])),
        "fullres_dice_fg": float(np.mean([r["fullres_dice_fg"] for r in rows])),
    }
    curve = [float(np.mean([r[f"score_{t:.2f}"] for r in rows])) for t in THRESHOLDS]
    return per_image, summary, curve


def write_curve(path: str | Path, curves: dict[str, list[float]]) -> None:
    """The DSB score against the IoU threshold, one column per split, as CSV."""
    rows = [
        [f"{t:.2f}", *(round(c[i], 6) for c in curves.values())] for i, t in enumerate(THRESHOLDS)
    ]
    io.write_csv(path, ["threshold", *curves], rows)


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
    truth_labels_dir: str | Path,
    full_res_dir: str | Path,
    outputs: dict[str, str | Path],
) -> dict[str, dict[str, float]]:
    """Score every split; write ``outputs["metrics"]`` (JSON), ``outputs["csv"]`` (per image),
    ``outputs["curve"]`` (DSB score per IoU threshold) and the figures in ``outputs["plots"]``.

    Splits whose images were predicted at full resolution (in ``full_res_dir``) also get the
    DSB metric against the original instance labels (in ``truth_labels_dir``).
    """
    plots_dir = Path(outputs["plots"])
    curves: dict[str, list[float]] = {}
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
        log.info(
            "%s (%d images): IoU fg %.4f  Dice fg %.4f  IoU mean %.4f  Dice mean %.4f",
            split, len(ids), metrics[split]["iou_fg"], metrics[split]["dice_fg"],
            metrics[split]["iou_mean"], metrics[split]["dice_mean"],
        )
        split_rows = per_image_rows(split, ids, pred, true, params.smooth)
        if all((Path(full_res_dir) / f"{k}_labels.png").is_file() for k in ids):
            per_image, summary, curves[split] = full_res_scores(
                ids, Path(truth_labels_dir), Path(full_res_dir), params.smooth
            )
            metrics[split].update(summary)
            for row in split_rows:
                row.update({c: round(per_image[row["id"]][c], 6) for c in FULL_RES_FIELDS})
            log.info(
                "%s at full resolution: DSB mAP %.4f  F1@0.5 %.4f  IoU fg %.4f",
                split, summary["dsb_map"], summary["f1_50"], summary["fullres_iou_fg"],
            )
        rows += split_rows
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
    write_json(outputs["metrics"], metrics)
    write_csv(outputs["csv"], rows)
    write_curve(outputs["curve"], curves)
    with atomic_path(plots_dir) as tmp:
        (tmp / "overlays").mkdir(parents=True)
        for name, fig in figures.items():
            save_figure(fig, tmp / name)
        for name, image in overlays.items():
            write_png(tmp / "overlays" / name, image)
    return metrics
