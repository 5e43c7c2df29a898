"""A table of segmented nuclei: one row per object with its size, place and intensity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from skimage.measure import regionprops

from nuclei_unet.io.tables import write_table

FIELDS = (
    "image", "label", "area", "centroid_y", "centroid_x",
    "bbox_top", "bbox_left", "bbox_bottom", "bbox_right", "mean_intensity",
)


class ObjectsTable:
    """Collects object rows image by image; written once at the end."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    @property
    def count(self) -> int:
        return len(self.rows)

    def add(self, image_name: str, labels: np.ndarray, image: np.ndarray) -> None:
        """Add the objects of ``labels (H, W)`` measured on ``image (H, W, 3) uint8`` (its
        gray level, the mean of the channels, 0..255)."""
        gray = image.astype(np.float32).mean(axis=2)
        for region in regionprops(labels.astype(np.int32), intensity_image=gray):
            top, left, bottom, right = region.bbox
            cy, cx = region.centroid
            self.rows.append({
                "image": image_name, "label": region.label, "area": int(region.area),
                "centroid_y": round(cy, 2), "centroid_x": round(cx, 2),
                "bbox_top": top, "bbox_left": left, "bbox_bottom": bottom, "bbox_right": right,
                "mean_intensity": round(float(region.intensity_mean), 2),
            })

    def write(self, path: str | Path) -> None:
        """Write the table as CSV, atomically."""
        write_table(path, self.frame())

    def frame(self) -> pd.DataFrame:
        """The objects as a DataFrame, one row each, columns :data:`FIELDS`."""
        return pd.DataFrame(self.rows, columns=list(FIELDS))
