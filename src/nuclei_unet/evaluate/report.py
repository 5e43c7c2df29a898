"""The evaluate stage's work: scores per split, a per-image table, the DSB curve and figures.

``metrics/evaluate.json`` keeps the headline figures of each split (:data:`HEADLINE`), the
ones ``dvc exp show`` compares; every other figure (background IoU/Dice, pooled values,
confusion fractions, object counts) goes to a details file beside it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nuclei_unet.config.schema import EvaluateParams
from nuclei_unet.data.kinds import KINDS, image_kind
from nuclei_unet.evaluate.plots import (
    confusion_figure,
    instance_figure,
    overlay,
    samples_figure,
    save_figure,
)
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.io.files import atomic_path, write_json
from nuclei_unet.io.images import read_image, read_labels, write_png
from nuclei_unet.io.layout import LABELS_SUFFIX, MASK_SUFFIX
from nuclei_unet.io.predictions import Predictions
from nuclei_unet.io.prepared import PreparedDataset, positions
from nuclei_unet.io.tables import write_table
from nuclei_unet.metrics.dsb import (
    ERROR_KINDS,
    THRESHOLDS,
    f1_score,
    image_scores,
    match_labels,
)
from nuclei_unet.metrics.pixel import per_image_iou_dice, summarize

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# the metrics files list val first: `dvc exp show` shows the leftmost columns when space is short
REPORT_ORDER = ("val", "test", "train")
# per split, in this order; the full-resolution ones only for splits predicted there
HEADLINE = (
    "iou_fg", "dice_fg", "dsb_map", "f1_50", "dsb_map_fluorescence", "dsb_map_stained",
    "iou_mean", "dice_mean",
)
# per image, at original resolution, for the splits predicted there
FULL_RES_FIELDS = (
    "kind", "dsb_score", "f1_50", "n_true", "n_pred", "fullres_iou_fg", "fullres_dice_fg",
    *ERROR_KINDS,  # why nuclei go unmatched (metrics.dsb.error_counts); summed per split, kind
)
CSV_FIELDS = (
    "id", "split", "iou_fg", "dice_fg", "iou_bg", "dice_bg", "true_fg", "pred_fg",
    *FULL_RES_FIELDS,
)


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Where the evaluate stage writes (the paths dvc.yaml declares)."""

    metrics: Path  # headline JSON (a DVC metric)
    details: Path  # every other figure, JSON
    csv: Path  # one row per image
    curve: Path  # DSB score against the IoU threshold, one column per split
    plots: Path  # figures folder


@dataclasses.dataclass
class SplitScores:
    """Everything computed for one split."""

    figures: dict[str, float]  # summary figures, headline and details
    rows: pd.DataFrame  # one row per image, columns CSV_FIELDS
    curve: list[float] | None  # mean DSB score per IoU threshold (full-resolution splits)


def per_image_rows(
    split: str, ids: list[str], pred: np.ndarray, true: np.ndarray, smooth: float
) -> pd.DataFrame:
    """One row per image with its seed-style IoU and Dice and foreground fractions."""
    iou_fg, dice_fg = per_image_iou_dice(pred, true, smooth)
    iou_bg, dice_bg = per_image_iou_dice(pred == 0, true == 0, smooth)
    rows = pd.DataFrame({
        "id": ids, "split": split, "iou_fg": iou_fg, "dice_fg": dice_fg, "iou_bg": iou_bg,
        "dice_bg": dice_bg, "true_fg": true.reshape(len(ids), -1).mean(axis=1),
        "pred_fg": pred.reshape(len(ids), -1).mean(axis=1),
    })
    return rows.round(6)


def _object_summary(table: pd.DataFrame, suffix: str = "") -> dict[str, float]:
    """Mean DSB score, pooled precision, recall and F1 at IoU 0.5, and the summed
    :data:`ERROR_KINDS` of per-image rows."""
    tp, fp, fn = (int(table[f"{c}_50"].sum()) for c in ("tp", "fp", "fn"))
    return {
        f"dsb_map{suffix}": float(table["dsb_score"].mean()),
        f"precision_50{suffix}": tp / (tp + fp) if tp + fp else 0.0,
        f"recall_50{suffix}": tp / (tp + fn) if tp + fn else 0.0,
        f"f1_50{suffix}": f1_score(tp, fp, fn),
        f"tp_50{suffix}": tp, f"fp_50{suffix}": fp, f"fn_50{suffix}": fn,
        f"images{suffix}": len(table),
        **{f"{k}{suffix}": int(table[k].sum()) for k in ERROR_KINDS},
    }


def full_res_scores(
    ids: list[str], truth_dir: Path, pred_dir: Path, smooth: float, kinds: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, float], list[float]]:
    """DSB metric and foreground IoU/Dice at original resolution for ``ids``.

    Returns per-image figures (indexed by id), the split summary (mean DSB score, pooled
    counts, precision, recall and F1 at 0.5, mean full-resolution IoU/Dice, and the object
    figures again per image kind of ``kinds``, :mod:`nuclei_unet.data.kinds`) and the mean
    score per IoU threshold.
    """
    per_image = []
    for k in ids:
        true = read_labels(truth_dir / f"{k}.png")
        pred = read_labels(pred_dir / f"{k}{LABELS_SUFFIX}")
        mask = read_labels(pred_dir / f"{k}{MASK_SUFFIX}") > 0
        scores = image_scores(true, pred)
        iou, dice = per_image_iou_dice(mask, true > 0, smooth)
        per_image.append({
            **scores, "kind": kinds[k], "fullres_iou_fg": float(iou[0]),
            "fullres_dice_fg": float(dice[0]),
        })
    table = pd.DataFrame(per_image, index=ids)
    summary = _object_summary(table)
    del summary["images"]
    summary["fullres_iou_fg"] = float(table["fullres_iou_fg"].mean())
    summary["fullres_dice_fg"] = float(table["fullres_dice_fg"].mean())
    for kind in KINDS:  # a kind the split lacks gets no figures rather than a made-up 0
        if (table["kind"] == kind).any():
            summary.update(_object_summary(table[table["kind"] == kind], f"_{kind}"))
    curve = [float(table[f"score_{t:.2f}"].mean()) for t in THRESHOLDS]
    return table, summary, curve


def score_split(
    split: str, ids: list[str], pred: np.ndarray, true: np.ndarray, params: EvaluateParams,
    truth_dir: Path, full_dir: Path, image_paths: dict[str, Path],
) -> SplitScores:
    """Pixel figures at training size for ``pred``/``true`` ``(N, S, S) bool``, and the object
    figures at original size, overall and per kind of the original images (``image_paths``),
    when every image of the split was predicted there."""
    figures: dict[str, float] = {**summarize(pred, true, params.smooth), "images": len(ids)}
    rows = per_image_rows(split, ids, pred, true, params.smooth)
    curve = None
    if all((full_dir / f"{k}{LABELS_SUFFIX}").is_file() for k in ids):
        kinds = image_kinds(ids, image_paths)
        per_image, summary, curve = full_res_scores(ids, truth_dir, full_dir, params.smooth, kinds)
        figures.update(summary)
        full = per_image.loc[ids, list(FULL_RES_FIELDS)].round(6)
        rows = rows.join(full.reset_index(drop=True))
        log.info(
            "%s at full resolution: DSB mAP %.4f  F1@0.5 %.4f  IoU fg %.4f",
            split, summary["dsb_map"], summary["f1_50"], summary["fullres_iou_fg"],
        )
    log.info(
        "%s (%d images): IoU fg %.4f  Dice fg %.4f  IoU mean %.4f  Dice mean %.4f",
        split, len(ids), figures["iou_fg"], figures["dice_fg"], figures["iou_mean"],
        figures["dice_mean"],
    )
    return SplitScores(figures, rows.reindex(columns=list(CSV_FIELDS)), curve)


def image_kinds(ids: list[str], image_paths: dict[str, Path]) -> dict[str, str]:
    """The kind (:func:`nuclei_unet.data.kinds.image_kind`) of each original image of ``ids``."""
    return {k: image_kind(read_image(image_paths[k])) for k in ids}


def pick_samples(ids: list[str], n: int) -> list[int]:
    """``n`` positions spread evenly over ``ids`` (all of them when there are fewer)."""
    if n >= len(ids):
        return list(range(len(ids)))
    return [int(i) for i in np.linspace(0, len(ids) - 1, n).round()]


def split_figures(
    split: str, ids: list[str], picks: list[int], images: np.ndarray, pred: np.ndarray,
    true: np.ndarray, confusion: dict[str, float],
) -> tuple[dict[str, Figure], dict[str, np.ndarray]]:
    """The samples panel (of ``picks``, positions in ``ids``) and confusion matrix of a split,
    and an overlay per sample image (``images (N, S, S, 3) uint8`` of ``ids``)."""
    figures: dict[str, Figure] = {}
    overlays: dict[str, np.ndarray] = {}
    if picks:
        panel = [(ids[i], images[i], true[i], pred[i]) for i in picks]
        figures[f"samples_{split}.png"] = samples_figure(panel, f"{split}: samples")
        for i in picks:
            overlays[f"{split}_{ids[i][:16]}.png"] = overlay(images[i], true[i], pred[i])
    figures[f"confusion_{split}.png"] = confusion_figure(
        confusion, f"{split}: pixel confusion (fractions)"
    )
    return figures, overlays


def instance_panels(
    split: str, ids: list[str], image_paths: dict[str, Path], truth_dir: Path, full_dir: Path,
    rows: pd.DataFrame,
) -> dict[str, Figure]:
    """For each of ``ids`` (predicted at full resolution), the image at its own size with the
    predicted nuclei outlined by their match at IoU 0.5 and the missed ones, its DSB score in
    the title: ``instances/<split>_<id>.png``."""
    scores = rows.set_index("id")["dsb_score"]
    figures = {}
    for k in ids:
        true = read_labels(truth_dir / f"{k}.png")
        pred = read_labels(full_dir / f"{k}{LABELS_SUFFIX}")
        match = match_labels(true, pred)
        title = (
            f"{split} {k[:16]}: DSB score {scores[k]:.3f}\nmatched {len(match[0])} (cyan), "
            f"false positive {len(match[1])} (magenta), missed {len(match[2])} (yellow)"
        )
        figures[f"instances/{split}_{k[:16]}.png"] = instance_figure(
            read_image(image_paths[k]), true, pred, match, title
        )
    return figures


def write_plots(folder: Path, figures: dict[str, Figure], overlays: dict[str, np.ndarray]) -> None:
    """The figures and ``overlays/`` in ``folder``, replaced as a whole."""
    with atomic_path(folder) as tmp:
        (tmp / "overlays").mkdir(parents=True)
        (tmp / "instances").mkdir()
        for name, fig in figures.items():
            save_figure(fig, tmp / name)
        for name, image in overlays.items():
            write_png(tmp / "overlays" / name, image)


def curve_table(curves: dict[str, list[float]]) -> pd.DataFrame:
    """The DSB score against the IoU threshold: ``threshold`` and one column per split."""
    table = pd.DataFrame({"threshold": [f"{t:.2f}" for t in THRESHOLDS]})
    for split, curve in curves.items():
        table[split] = np.round(curve, 6)
    return table


def evaluate(
    data: PreparedDataset, splits: dict[str, list[str]], predictions: Predictions,
    params: EvaluateParams, *, raw_dir: Path, truth_dir: Path, full_dir: Path, outputs: Outputs,
) -> dict[str, SplitScores]:
    """Score every split and write :class:`Outputs`.

    Splits whose images were predicted at full resolution (``full_dir``) also get the DSB
    metric against the original instance labels (``truth_dir``), and their sample images
    (from ``raw_dir``) an instance panel each.
    """
    scores: dict[str, SplitScores] = {}
    figures: dict[str, Figure] = {}
    overlays: dict[str, np.ndarray] = {}
    image_paths = {s.id: s.image for s in list_samples(raw_dir)}
    predicted = set(predictions.ids)
    for split in SPLITS:
        ids = splits.get(split, [])
        if not ids:
            continue
        if not predicted.intersection(ids):
            # a native-scale model is scored only where it predicted whole images
            log.info("%s: not predicted (add it to predict.full_res_splits to score it)", split)
            continue
        true = data.masks[data.index(ids)].astype(bool)
        where = positions(predictions.ids, ids, "prediction for image")
        pred = predictions.masks[where].astype(bool)
        scores[split] = score_split(
            split, ids, pred, true, params, truth_dir, full_dir, image_paths
        )
        if split not in ("val", "test"):
            continue
        picks = pick_samples(ids, params.n_samples if split == "val" else len(ids))
        more = split_figures(
            split, ids, picks, data.images[data.index(ids)], pred, true, scores[split].figures
        )
        figures.update(more[0])
        overlays.update(more[1])
        if scores[split].curve is not None:  # predicted at full resolution
            figures.update(instance_panels(
                split, [ids[i] for i in picks], image_paths, truth_dir, full_dir, scores[split].rows
            ))
    write_outputs(outputs, scores)
    write_plots(outputs.plots, figures, overlays)
    return scores


def write_outputs(outputs: Outputs, scores: dict[str, SplitScores]) -> None:
    """The headline metrics, the details, the per-image table and the DSB curve."""
    ordered = [(split, scores[split]) for split in REPORT_ORDER if split in scores]
    headline = {split: {k: s.figures[k] for k in HEADLINE if k in s.figures} for split, s in ordered}
    details = {split: {k: v for k, v in s.figures.items() if k not in HEADLINE} for split, s in ordered}
    write_json(outputs.metrics, headline)
    write_json(outputs.details, details)
    rows = pd.concat([s.rows for s in scores.values()], ignore_index=True)
    for column in ("n_true", "n_pred", *ERROR_KINDS):  # counts stay integers next to empty cells
        rows[column] = rows[column].astype("Int64")
    write_table(outputs.csv, rows)
    curves = {split: s.curve for split, s in scores.items() if s.curve is not None}
    write_table(outputs.curve, curve_table(curves))
