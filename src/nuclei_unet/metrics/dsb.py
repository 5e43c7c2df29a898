"""The 2018 Data Science Bowl metric: objects matched by IoU, averaged over thresholds.

Score of one image: for each IoU threshold t in 0.50, 0.55, ..., 0.95, ``TP / (TP + FP + FN)``
where a predicted nucleus matches a true one when their IoU exceeds t (above 0.5 a match is
unique), averaged over the thresholds. The dataset score is the mean over images.
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)
# the kinds of error error_counts tells apart, in the order it returns them
ERROR_KINDS = ("missed", "merged", "oversplit", "extra")


def _overlaps(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pixels shared by every true and every predicted object, background first:
    ``(1 + n_true, 1 + n_pred) float64``, rows and columns in label order (row and column 0 are
    the background, all zeros when a map has none).

    ``true`` and ``pred`` are ``(H, W)`` non-negative integer label maps (0 is background;
    labels need not be consecutive).
    """
    if true.shape != pred.shape:
        raise ValueError(f"truth {true.shape} and prediction {pred.shape} differ in shape")
    codes = []
    for labels in (true, pred):
        ids, code = np.unique(labels, return_inverse=True)
        if not len(ids) or ids[0] != 0:  # no background pixel: index 0 stays the background
            ids, code = np.concatenate(([0], ids)), code + 1
        codes.append((len(ids), code.ravel()))
    (n_t, t), (n_p, p) = codes
    # contingency table by one bincount over pixel pairs
    return np.bincount(t * n_p + p, minlength=n_t * n_p).reshape(n_t, n_p).astype(np.float64)


def iou_matrix(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every true object with every predicted one: ``(n_true, n_pred) float64``.

    ``true`` and ``pred`` are ``(H, W)`` integer label maps (0 is background; labels need not
    be consecutive).
    """
    return _iou(_overlaps(true, pred))


def _iou(inter: np.ndarray) -> np.ndarray:
    """The objects' IoU from their :func:`_overlaps`: ``(n_true, n_pred) float64``."""
    area_t, area_p = inter.sum(axis=1), inter.sum(axis=0)
    union = area_t[:, None] + area_p[None, :] - inter
    return (inter / np.maximum(union, 1))[1:, 1:]


def error_counts(true: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Why nuclei go unmatched: the four kinds of error named by Caicedo et al. 2019
    (Cytometry A 95:952), told apart by the rule below.

    Each true nucleus goes to the predicted object that covers most of it, each predicted one to
    the true object that covers most of it; the background counts as an object, and wins ties.
    Then, among the true nuclei:

    - ``missed``: mostly on predicted background;
    - ``merged``: its predicted object is also the one of another true nucleus;
    - ``oversplit``: two or more predicted objects go to it;

    and ``extra``: predicted objects mostly on true background. A nucleus can be both merged
    and oversplit; one predicted well is neither.

    >>> true = np.array([[1, 1, 0, 2, 2, 2, 0, 3, 3, 4, 4, 0]])
    >>> pred = np.array([[0, 0, 0, 5, 5, 6, 0, 8, 8, 8, 8, 7]])
    >>> error_counts(true, pred)
    {'missed': 1, 'merged': 2, 'oversplit': 1, 'extra': 1}
    """
    return _errors(_overlaps(true, pred))


def _errors(inter: np.ndarray) -> dict[str, int]:
    """:func:`error_counts` from the objects' :func:`_overlaps`."""
    true_to = inter[1:].argmax(axis=1)  # column of each true nucleus; 0 = background
    pred_to = inter[:, 1:].argmax(axis=0)  # row of each predicted object; 0 = background
    claims = np.bincount(true_to, minlength=inter.shape[1])
    claims[0] = 0
    pieces = np.bincount(pred_to, minlength=inter.shape[0])
    counts = (true_to == 0, claims[true_to] >= 2, pieces[1:] >= 2, pred_to == 0)
    return {kind: int(hits.sum()) for kind, hits in zip(ERROR_KINDS, counts)}


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
    """The DSB score of one image, its score per threshold, counts and F1 at 0.5, and the
    :func:`error_counts`.

    Both empty scores 1.0 (nothing to find, nothing found); one empty scores 0.0.
    """
    inter = _overlaps(true, pred)
    iou = _iou(inter)
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
           "n_true": n_true, "n_pred": n_pred, **_errors(inter)}
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
