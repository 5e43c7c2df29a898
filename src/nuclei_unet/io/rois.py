"""Nuclei as ImageJ ROIs: one polygon per label, in a zip that Fiji's ROI Manager opens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import roifile
from skimage.measure import approximate_polygon, find_contours, regionprops

from nuclei_unet.io.files import atomic_path


def outline(mask: np.ndarray) -> np.ndarray:
    """The outer contour of a ``(h, w) bool`` object as ``(N, 2) float`` (x, y) vertices in
    ImageJ's pixel-corner coordinates (pixel (r, c) spans x in [c, c + 1), y in [r, r + 1)).

    Marching squares on the mask upsampled 2x put the vertices on pixel edges; only convex
    corners are cut, by an eighth of a pixel each.
    """
    padded = np.pad(mask, 1).repeat(2, axis=0).repeat(2, axis=1).astype(np.float32)
    contours = find_contours(padded, 0.5)
    longest = max(contours, key=len)  # the outer boundary (holes give shorter inner ones)
    corners = (longest + 0.5) / 2.0 - 1.0  # upsampled pixel index -> corner coordinate
    corners = approximate_polygon(corners, tolerance=0.01)[:-1]  # closed: last == first
    return corners[:, ::-1]  # (row, col) -> (x, y)


def label_rois(labels: np.ndarray) -> list[roifile.ImagejRoi]:
    """One polygon ROI per nucleus of ``(H, W)`` integer labels, named by its label."""
    rois = []
    for region in regionprops(labels):
        top, left = region.bbox[:2]
        points = outline(region.image) + (left, top)
        roi = roifile.ImagejRoi.frompoints(points, name=str(region.label))
        roi.roitype = roifile.ROI_TYPE.POLYGON
        rois.append(roi)
    return rois


def write_rois(path: str | Path, labels: np.ndarray) -> int:
    """Write the ROIs of ``labels`` as an ImageJ ROI zip (``path`` ends in .zip), atomically;
    returns their number (an image without nuclei gets an empty zip)."""
    rois = label_rois(labels)
    with atomic_path(path) as tmp:
        roifile.roiwrite(tmp, rois)
    return len(rois)
