"""Slow, obvious methods that the fast code is tested against (and that the prepare benchmark
times as the seed notebook's method)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage.transform import resize

from nuclei_unet.data.prepare import HALF, box_coverage
from nuclei_unet.io.dsb import Sample


def read_mask(path: str | Path) -> np.ndarray:
    """A single-nucleus mask file as ``(H, W) bool`` (any non-zero pixel), decoded whole by PIL."""
    arr = np.asarray(Image.open(path))
    if arr.ndim == 3:
        arr = arr[:, :, :3].max(axis=2)
    return arr > 0


def seed_mask(sample: Sample, size: int, rule: str = "any") -> np.ndarray:
    """The seed's mask loop, mask by mask: ``(size, size) bool``.

    ``any``: the seed's own loop (resize each mask, take the maximum, cast to bool). ``area``:
    the same loop under area semantics (area-resize each mask, add the coverages, ``>= 0.5``).
    """
    total = np.zeros((size, size), dtype=np.float64)
    for path in sample.masks:
        one = read_mask(path)
        if rule == "any":
            one = resize(one.astype(np.uint8) * 255, (size, size), mode="constant", preserve_range=True)
            total = np.maximum(total, one)
        else:
            total += box_coverage(one, size)
    return total > 0 if rule == "any" else total >= HALF
