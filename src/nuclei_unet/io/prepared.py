"""The prepare stage's output as arrays: ``dataset.npz`` written and read back by id."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nuclei_unet.errors import DataError
from nuclei_unet.io.layout import DATASET_FILE


def positions(known: Sequence[str], ids: Sequence[str], what: str = "image") -> np.ndarray:
    """``(len(ids),) int64`` positions of ``ids`` in ``known``; a KeyError names a missing one."""
    where = {k: i for i, k in enumerate(known)}
    missing = [k for k in ids if k not in where]
    if missing:
        raise KeyError(f"no {what} {missing[0]} ({len(missing)} missing)")
    return np.array([where[k] for k in ids], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """The arrays of ``dataset.npz``: ``ids (N,)``, ``images (N, S, S, 3) uint8``, ``masks
    (N, S, S) uint8`` 0/1, ``shapes (N, 2) int32`` (original H, W), ``n_nuclei (N,) int32`` and,
    when prepared with the weight map, ``weights (N, S, S) float32``."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    shapes: np.ndarray
    n_nuclei: np.ndarray
    weights: np.ndarray | None = None

    def index(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of ``ids`` in this dataset."""
        return positions(self.ids, ids)


def save_prepared(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (the fields of :class:`PreparedDataset`) as ``folder/dataset.npz``."""
    np.savez(folder / DATASET_FILE, **arrays)


def load_prepared(prepared_dir: str | Path) -> PreparedDataset:
    """Load ``dataset.npz`` written by :func:`save_prepared`."""
    path = Path(prepared_dir) / DATASET_FILE
    if not path.is_file():
        raise DataError(f"{path}: prepared dataset not found (run the prepare stage)")
    with np.load(path) as z:
        return PreparedDataset(
            ids=[str(i) for i in z["ids"]],
            images=z["images"],
            masks=z["masks"],
            shapes=z["shapes"],
            n_nuclei=z["n_nuclei"],
            weights=z["weights"] if "weights" in z.files else None,
        )
