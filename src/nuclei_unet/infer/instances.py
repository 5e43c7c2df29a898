"""From a binary mask to one label per nucleus: connected components or marker watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.measure import label
from skimage.segmentation import relabel_sequential, watershed


def edge_seeds(body: np.ndarray, components: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Markers: 4-connected regions of ``body > level`` inside ``components`` (``(H, W)``)."""
    return label((body > level) & (components > 0), connectivity=1).astype(np.int32)


def keep_orphans(labels: np.ndarray, components: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``labels`` of a seeded watershed, plus every component of ``mask`` that got no seed
    (too thin for a peak, no body above the threshold) under its own new label, rather than
    vanishing."""
    orphans = components * ((labels == 0) & mask)
    return np.where(orphans > 0, orphans + labels.max(), labels)


def split_instances(
    mask: np.ndarray, method: str = "watershed", min_size: int = 0, min_distance: int = 3,
    edge: np.ndarray | None = None, fg: np.ndarray | None = None, seed_threshold: float = 0.5,
) -> np.ndarray:
    """Label the nuclei of ``(H, W) bool`` ``mask``; returns ``(H, W) int32`` labels 0..n.

    ``components``: 4-connected components. ``watershed``: one marker per peak of the distance
    transform (peaks at least ``min_distance`` px apart, inside each component), then a
    watershed on the negated distance: touching round nuclei are cut at their waist. ``edge``:
    the markers are the regions where the nucleus body probability ``fg * (1 - edge)`` (both
    ``(H, W) float32`` maps of an edge model) is above ``seed_threshold``, flooded over the
    mask along the body probability: the learned edge keeps touching nuclei's seeds apart.
    Objects smaller than ``min_size`` pixels are dropped.
    """
    mask = np.asarray(mask, dtype=bool)
    components = label(mask, connectivity=1)
    if method == "components":
        labels = components
    elif method == "edge":
        if edge is None or fg is None:
            raise ValueError("instances 'edge' needs a model trained with the edge class (train.edge)")
        body = fg * (1.0 - edge)
        labels = keep_orphans(
            watershed(-body, edge_seeds(body, components, seed_threshold), mask=mask),
            components, mask,
        )
    elif method == "watershed":
        distance = ndimage.distance_transform_edt(mask)
        # a little smoothing keeps one peak per nucleus on jagged outlines
        smooth = ndimage.gaussian_filter(distance, 1.0)
        peaks = peak_local_max(
            smooth, min_distance=min_distance, labels=components, exclude_border=False
        )
        markers = np.zeros(mask.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        labels = keep_orphans(watershed(-smooth, markers, mask=mask), components, mask)
    else:
        raise ValueError(f"unknown instance method {method!r}")
    if min_size > 0:
        small = np.bincount(labels.ravel()) < min_size  # the background's entry maps 0 to 0
        labels = np.where(small[labels], 0, labels)
    # labels 1..n in order of value, 0 stays 0
    return relabel_sequential(labels)[0].astype(np.int32)
