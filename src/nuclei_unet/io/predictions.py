"""The predict stage's arrays at training size: ``predictions.npz`` written and read back."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from nuclei_unet.errors import DataError
from nuclei_unet.io.files import atomic_path


class Predictions(NamedTuple):
    """What the predict stage wrote at training size, by image id."""

    ids: list[str]
    probs: np.ndarray  # (N, H, W) float32
    masks: np.ndarray  # (N, H, W) uint8 0/1


def save_predictions(path: str | Path, ids: list[str], probs: np.ndarray, masks: np.ndarray) -> None:
    """Write ``ids``, ``probs (N, H, W) float16`` and ``masks (N, H, W) uint8`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, ids=np.array(ids), probs=probs.astype(np.float16), masks=masks)


def load_predictions(path: str | Path) -> Predictions:
    """Read what :func:`save_predictions` wrote."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions not found (run the predict stage)")
    with np.load(path) as z:
        return Predictions([str(i) for i in z["ids"]], z["probs"].astype(np.float32), z["masks"])
