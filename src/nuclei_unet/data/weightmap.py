"""The U-Net paper's weight map, ``w(x) = w_c(x) + w0 exp(-(d1(x) + d2(x))^2 / (2 sigma^2))``.

``d1`` and ``d2`` are the distances to the nearest and second-nearest nucleus; ``w_c`` balances
the class frequencies of the image (each class gets half of the total weight).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def class_weights(mask: np.ndarray) -> np.ndarray:
    """``w_c``: ``(H, W) float32`` equal to ``1 / (2 f_c)`` for a pixel of class c of frequency
    ``f_c``, so the map averages to 1; 1 everywhere when only one class is present."""
    fg = mask.astype(bool)
    frac = fg.mean()
    if frac in (0.0, 1.0):
        return np.ones(mask.shape, np.float32)
    return np.where(fg, 0.5 / frac, 0.5 / (1.0 - frac)).astype(np.float32)


def weight_map(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """Weight map ``(H, W) float32`` of instance labels ``(H, W)`` (0 = background)."""
    wc = class_weights(labels > 0)
    ids = [k for k in np.unique(labels) if k != 0]
    if len(ids) < 2:
        return wc
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    for k in ids:
        # distance of every pixel to nucleus k (0 inside it)
        dist = ndimage.distance_transform_edt(labels != k)
        d2 = np.minimum(d2, np.maximum(d1, dist))
        d1 = np.minimum(d1, dist)
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
    return (wc + border).astype(np.float32)
