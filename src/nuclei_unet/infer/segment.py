"""Full-resolution segmentation: probabilities, mask and instance labels of whole images.

Shared by the predict stage and the ``nuclei-unet predict`` command, so both write the same
files for the same image and settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nuclei_unet.config.schema import PredictParams
from nuclei_unet.errors import DataError
from nuclei_unet.infer.instances import split_instances
from nuclei_unet.infer.probs import predict_probs
from nuclei_unet.infer.tiling import predict_tiled, resize_float
from nuclei_unet.io.dsb import Sample
from nuclei_unet.io.images import read_image, write_png
from nuclei_unet.io.layout import SUBMISSION_FILE
from nuclei_unet.io.rle import submission_rows, write_submission
from nuclei_unet.transforms.resize import resize_image


def predict_full(
    model: nn.Module, image: np.ndarray, options: PredictParams, input_size: int,
    device: torch.device, dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """Probabilities ``(H, W) float32`` for ``(H, W, 3) uint8`` at its own size.

    ``resize``: predict at the training size, resize the probabilities back. ``tile``:
    :func:`predict_tiled`.
    """
    if options.mode == "tile":
        return predict_tiled(model, image, options, device, dtype)
    small = resize_image(image, input_size)[None]
    probs = predict_probs(model, small, 1, device, dtype, False, options.tta)[0]
    return resize_float(probs, image.shape[:2])


def segment(
    model: nn.Module, image: np.ndarray, options: PredictParams, input_size: int,
    device: torch.device, dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask ``(H, W) uint8`` 0/1 and instance labels ``(H, W)`` of one image: uint16, or
    uint32 past 65,535 nuclei."""
    probs = predict_full(model, image, options, input_size, device, dtype)
    mask = probs > options.threshold
    labels = split_instances(mask, options.instances, options.min_size, options.min_distance)
    wide = labels.max(initial=0) > np.iinfo(np.uint16).max
    return mask.astype(np.uint8), labels.astype(np.uint32 if wide else np.uint16)


def save_segmentation(
    out_dir: Path, stem: str, mask: np.ndarray, labels: np.ndarray, *, write_mask: bool = True,
    write_labels: bool = True,
) -> None:
    """Write ``<stem>_mask.png`` (uint8 0/255) and ``<stem>_labels.png`` (uint16) in ``out_dir``.

    Labels past 65,535 do not fit the PNG: a DataError, never a silently wrapped label map.
    """
    if write_labels and labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise DataError(
            f"{stem}: {int(labels.max())} nuclei do not fit a 16-bit label PNG (the TIFF holds them)"
        )
    if write_mask:
        write_png(out_dir / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
    if write_labels:
        write_png(out_dir / f"{stem}_labels.png", labels.astype(np.uint16))


def predict_full_res(
    model: nn.Module,
    samples: list[Sample],
    options: PredictParams,
    input_size: int,
    out_dir: str | Path,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Segment ``samples`` at their original size into ``out_dir``: masks, instance labels,
    and a Kaggle ``submission.csv`` for them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.to(device).eval()
    rows: list[tuple[str, str]] = []
    for sample in tqdm(samples, desc=f"full resolution ({options.mode})", unit="img"):
        mask, labels = segment(model, read_image(sample.image), options, input_size, device, dtype)
        save_segmentation(out_dir, sample.id, mask, labels)
        rows += submission_rows(sample.id, labels)
    write_submission(out_dir / SUBMISSION_FILE, rows)
