"""The DSB2018 folder layout: ``<id>/images/<id>.png`` and ``<id>/masks/<k>.png``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nuclei_unet.errors import DataError
from nuclei_unet.io.images import IMAGE_SUFFIXES, read_image, read_mask_rows


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image of a DSB-layout dataset and its per-nucleus mask files."""

    id: str
    image: Path
    masks: tuple[Path, ...]


def _find_image(folder: Path, sample_id: str) -> Path:
    images = folder / "images"
    for suffix in IMAGE_SUFFIXES:
        candidate = images / f"{sample_id}{suffix}"
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: no image found (expected images/{sample_id}.png)")


def list_samples(root: str | Path) -> list[Sample]:
    """List the samples of a DSB-layout folder, sorted by id; layout problems are DataErrors."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    ids = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not ids:
        raise DataError(f"{root}: no image folders (expected <id>/images/<id>.png)")
    samples = []
    for sample_id in ids:
        folder = root / sample_id
        image = _find_image(folder, sample_id)
        mask_dir = folder / "masks"
        if not mask_dir.is_dir():
            raise DataError(f"{folder}: no masks/ folder")
        masks = tuple(
            sorted(p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        )
        samples.append(Sample(sample_id, image, masks))
    return samples


def load_instances(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Decode a sample once: image ``(H, W, 3) uint8`` and instance labels ``(H, W) uint16``.

    Label k (1-based) is the k-th mask file in sorted order; 0 is background. Masks must match
    the image size and must not overlap (the DSB format promises both).
    """
    image = read_image(sample.image)
    shape = image.shape[:2]
    if len(sample.masks) > np.iinfo(np.uint16).max:
        raise DataError(f"{sample.image.parent.parent}: more than 65535 masks")
    labels = np.zeros(shape, dtype=np.uint16)
    for k, (mask_path, mask) in enumerate(zip(sample.masks, read_mask_rows(sample.masks)), start=1):
        if mask.size != shape:
            raise DataError(
                f"{mask_path}: mask is {mask.size[1]}x{mask.size[0]} but its image is "
                f"{shape[1]}x{shape[0]}"
            )
        window = labels[mask.top : mask.top + len(mask.rows)]
        if window[mask.rows].any():
            raise DataError(f"{mask_path}: mask overlaps an earlier mask of the same image")
        window[mask.rows] = k
    return image, labels
