"""The per-image files ``nuclei-unet predict`` writes, in the formats field tools open."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np

from nuclei_unet.evaluate.outlines import numbered_overlay
from nuclei_unet.infer.segment import save_segmentation
from nuclei_unet.io.images import write_png
from nuclei_unet.io.layout import LABELS_SUFFIX, MASK_SUFFIX
from nuclei_unet.io.rois import write_rois
from nuclei_unet.io.tiff import PixelSize, write_labels_tif

log = logging.getLogger(__name__)

# name -> the file it writes, <stem> + suffix
FORMATS = {
    "mask": MASK_SUFFIX,  # uint8 0/255 (the predict stage writes the same two)
    "labels": LABELS_SUFFIX,  # uint16 instance labels
    "tif": "_labels.tif",  # uint16 (uint32 past 65,535 nuclei) TIFF with the pixel size
    "rois": "_rois.zip",  # one ImageJ polygon ROI per nucleus
    "overlay": "_overlay.png",  # the image with numbered, coloured outlines
}
# one row per nucleus of every image segmented, beside the per-image files
OBJECTS_TABLE = "objects.csv"


def output_paths(out_dir: Path, stem: str, formats: Collection[str]) -> list[Path]:
    """The files :func:`write_formats` may write for one image, in ``formats``' order.

    >>> [p.name for p in output_paths(Path("out"), "cells", ["mask", "tif"])]
    ['cells_mask.png', 'cells_labels.tif']
    """
    return [out_dir / f"{stem}{FORMATS[name]}" for name in formats]


def write_formats(
    out_dir: Path, stem: str, image: np.ndarray, mask: np.ndarray, labels: np.ndarray,
    formats: Collection[str], pixel_size: PixelSize | None = None,
) -> None:
    """Write ``formats`` (keys of :data:`FORMATS`) for one image: ``image (H, W, 3) uint8``,
    ``mask (H, W)`` 0/1, ``labels (H, W)`` uint16 or uint32."""
    png_labels = "labels" in formats and labels.dtype == np.uint16
    if "labels" in formats and not png_labels:
        log.warning("%s: over 65,535 nuclei do not fit a 16-bit PNG: see %s%s", stem, stem,
                    FORMATS["tif"])
    if "mask" in formats or png_labels:
        save_segmentation(
            out_dir, stem, mask, labels, write_mask="mask" in formats, write_labels=png_labels
        )
    paths = dict(zip(formats, output_paths(out_dir, stem, formats)))
    if "tif" in formats:
        write_labels_tif(paths["tif"], labels, pixel_size)
    if "rois" in formats:
        write_rois(paths["rois"], labels)
    if "overlay" in formats:
        write_png(paths["overlay"], numbered_overlay(image, labels))
