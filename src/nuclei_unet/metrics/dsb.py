"""The 2018 Data Science Bowl metric: objects matched by IoU, averaged over thresholds.

Score of one image: for each IoU threshold t in 0.50, 0.55, ..., 0.95, ``TP / (TP + FP + FN)``
where a predicted nucleus matches a true one when their IoU exceeds t (above 0.5 a match is
unique), averaged over the thresholds. The dataset score is the mean over images.
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def iou_matrix(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every true object with every predicted one: ``(n_true, n_pred) float64``.

    ``true`` and ``pred`` are ``(H, W)`` integer label maps (0 is background; labels need not
    be consecutive).
    """
    if true.shape != pred.shape:
        raise ValueError(f"truth {true.shape} and prediction {pred.shape} differ in shape")
    t_ids, t = np.unique(true, return_inverse=True)
    p_ids, p = np.unique(pred, return_inverse=True)
    # contingency table by one bincount over pixel pairs
    inter = np.bincount(t.ravel() * len(p_ids) + p.ravel(), minlength=len(t_ids) * len(p_ids))
    inter = inter.reshape(len(t_ids), len(p_ids)).astype(np.float64)
    area_t, area_p = inter.sum(axis=1), inter.sum(axis=0)
    union = area_t[:, None] + area_p[None, :] - inter
    iou = inter / np.maximum(union, 1)
    keep_t, keep_p = t_ids != 0, p_ids != 0
    return iou[np.ix_(keep_t, keep_p)]


def match_counts(iou: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """TP, FP, FN at ``IoU > threshold`` (threshold >= 0.5, so matches are one-to-one)."""
    matches = iou > threshold
    tp = int(matches.sum())
    return tp, iou.shape[1] - tp, iou.shape[0] - tp


def f1_score(tp: float, fp: float, fn: float) -> float:
    """F1 at one IoU threshold from match counts (summed over images, or weighted): 1.0 when
    there was nothing to find and nothing was found.

    >>> f1_score(8, 2, 2), f1_score(0, 0, 0)
    (0.8, 1.0)
    """
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def image_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The DSB score of one image, its score per threshold, and counts and F1 at 0.5.

    Both empty scores 1.0 (nothing to find, nothing found); one empty scores 0.0.
    """
    iou = iou_matrix(true, pred)
    n_true, n_pred = iou.shape
    per_t = []
    for t in THRESHOLDS:
        tp, fp, fn = match_counts(iou, float(t))
        per_t.append(1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn))
    tp, fp, fn = match_counts(iou, 0.5)
    precision = tp / n_pred if n_pred else float(n_true == 0)
    recall = tp / n_true if n_true else float(n_pred == 0)
    f1 = f1_score(tp, fp, fn)
    out = {"dsb_score": float(np.mean(per_t)), "tp_50": tp, "fp_50": fp, "fn_50": fn,
           "precision_50": precision, "recall_50": recall, "f1_50": f1,
           "n_true": n_true, "n_pred": n_pred}
    out.update({f"score_{t:.2f}": float(s) for t, s in zip(THRESHOLDS, per_t)})
    return out


def match_labels(
    true: np.ndarray, pred: np.ndarray, threshold: float = 0.5
) -> tuple[list[int], list[int], list[int]]:
    """Objects by their match at ``IoU > threshold`` (>= 0.5: one-to-one): the predicted labels
    matched, the predicted labels unmatched (false positives), the true labels missed.

    >>> true = np.array([[1, 1, 0, 2]]); pred = np.array([[5, 5, 7, 0]])
    >>> match_labels(true, pred)
    ([5], [7], [2])
    """
    t_ids, p_ids = (np.unique(a) for a in (true, pred))
    t_ids, p_ids = t_ids[t_ids != 0], p_ids[p_ids != 0]
    hit = iou_matrix(true, pred) > threshold  # rows t_ids, columns p_ids, both in sorted order
    return (
        p_ids[hit.any(axis=0)].tolist(), p_ids[~hit.any(axis=0)].tolist(),
        t_ids[~hit.any(axis=1)].tolist(),
    )
