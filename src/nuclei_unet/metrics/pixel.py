"""Segmentation metrics on binary masks: the seed's per-image IoU/Dice and pooled figures.

All functions take boolean (or 0/1) arrays of shape ``(N, H, W)`` (or ``(H, W)`` for one image)
and never threshold probabilities themselves: thresholding belongs to prediction.
"""

from __future__ import annotations

import numpy as np

SEED_SMOOTH = 1e-3


def _as_batch(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask).astype(bool, copy=False)
    return mask[None] if mask.ndim == 2 else mask


def per_image_iou_dice(
    pred: np.ndarray, true: np.ndarray, smooth: float = SEED_SMOOTH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image smoothed IoU and Dice of the foreground, as in the seed notebook.

    ``iou = (I + s) / (U + s)`` exactly as the seed; ``dice = (2I + s) / (|P| + |T| + s)``.
    The seed wrote ``2 (I + s) / (|P| + |T| + s)``, which scores 2.0 when both masks are empty;
    ours scores 1.0 there and differs from the seed's by ``s / (|P| + |T| + s)`` (under 1e-5
    once the masks hold 100 pixels). Both masks empty scores 1.0 for any ``smooth``. Returns two ``(N,) float64``
    arrays.
    """
    p, t = _as_batch(pred), _as_batch(true)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    axes = (1, 2)
    inter = np.logical_and(p, t).sum(axis=axes, dtype=np.float64)
    union = np.logical_or(p, t).sum(axis=axes, dtype=np.float64)
    total = p.sum(axis=axes, dtype=np.float64) + t.sum(axis=axes, dtype=np.float64)
    # both masks empty: 1.0 whatever the smoothing (0/0 with smooth = 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union == 0, 1.0, (inter + smooth) / (union + smooth))
        dice = np.where(total == 0, 1.0, (2.0 * inter + smooth) / (total + smooth))
    return iou, dice


def confusion_fractions(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Pixel confusion matrix as fractions of all pixels: ``tp``, ``fp``, ``fn``, ``tn``."""
    p, t = _as_batch(pred), _as_batch(true)
    n = p.size
    tp = np.logical_and(p, t).sum()
    fp = np.logical_and(p, ~t).sum()
    fn = np.logical_and(~p, t).sum()
    return {"tp": tp / n, "fp": fp / n, "fn": fn / n, "tn": (n - tp - fp - fn) / n}


def _ratio(num: float, den: float) -> float:
    # both masks empty: a perfect (and trivial) agreement
    return 1.0 if den == 0 else num / den


def summarize(pred: np.ndarray, true: np.ndarray, smooth: float = SEED_SMOOTH) -> dict[str, float]:
    """All figures for one split: the seed's per-image means (foreground, background, their
    mean), pooled IoU/Dice over all pixels, pixel accuracy and the normalised confusion matrix.
    """
    p, t = _as_batch(pred), _as_batch(true)
    iou_fg, dice_fg = per_image_iou_dice(p, t, smooth)
    iou_bg, dice_bg = per_image_iou_dice(~p, ~t, smooth)
    cm = confusion_fractions(p, t)
    out = {
        "iou_fg": float(iou_fg.mean()),
        "dice_fg": float(dice_fg.mean()),
        "iou_bg": float(iou_bg.mean()),
        "dice_bg": float(dice_bg.mean()),
        "iou_mean": float((iou_fg.mean() + iou_bg.mean()) / 2),
        "dice_mean": float((dice_fg.mean() + dice_bg.mean()) / 2),
        "pooled_iou_fg": _ratio(cm["tp"], cm["tp"] + cm["fp"] + cm["fn"]),
        "pooled_dice_fg": _ratio(2 * cm["tp"], 2 * cm["tp"] + cm["fp"] + cm["fn"]),
        "accuracy": float(cm["tp"] + cm["tn"]),
    }
    out.update({k: float(v) for k, v in cm.items()})
    return out
