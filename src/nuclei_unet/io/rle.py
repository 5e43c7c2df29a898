"""Kaggle's run-length encoding of masks, and DSB2018 submission tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nuclei_unet.io.tables import write_table

SUBMISSION_COLUMNS = ("ImageId", "EncodedPixels")


def rle_encode(mask: np.ndarray) -> str:
    """Kaggle run-length encoding of ``(H, W) bool``: 1-based starts, column-major, 'start length' pairs."""
    pixels = np.asarray(mask, dtype=bool).flatten(order="F")
    padded = np.concatenate([[False], pixels, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends))


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`rle_encode`: ``(H, W) bool``."""
    flat = np.zeros(shape[0] * shape[1], dtype=bool)
    numbers = [int(x) for x in rle.split()]
    for start, length in zip(numbers[0::2], numbers[1::2]):
        flat[start - 1 : start - 1 + length] = True
    return flat.reshape(shape, order="F")


def submission_rows(image_id: str, labels: np.ndarray) -> list[tuple[str, str]]:
    """``(ImageId, EncodedPixels)`` rows for one image: one per nucleus, or one empty row."""
    ids = [k for k in np.unique(labels) if k != 0]
    if not ids:
        return [(image_id, "")]
    return [(image_id, rle_encode(labels == k)) for k in ids]


def write_submission(path: str | Path, rows: list[tuple[str, str]]) -> None:
    """A Kaggle DSB2018 submission: ``ImageId,EncodedPixels``, one row per nucleus."""
    write_table(path, pd.DataFrame(rows, columns=list(SUBMISSION_COLUMNS)))
