"""Batched inference: probabilities and thresholded masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .errors import DataError
from .io import atomic_path
from .model import foreground_logit
from .runtime import autocast

PREDICTIONS_FILE = "predictions.npz"
# (quarter turns, horizontal flip first): the 8 symmetries of the square
DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    tta: bool = False,
) -> np.ndarray:
    """``(N, H, W, 3) uint8`` -> foreground probabilities ``(N, H, W) float32``.

    With ``tta``, the probabilities of the 8 flips and 90-degree rotations of each image are
    averaged (each mapped back first).
    """
    model = model.to(device, memory_format=torch.channels_last).eval()
    out = np.empty(images.shape[:3], dtype=np.float32)
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="predict", unit="batch", disable=not progress):
        chunk = torch.from_numpy(images[start : start + batch_size]).to(device)
        x = chunk.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)
        probs = torch.zeros(x.shape[0], 1, *x.shape[2:], device=device)
        views = DIHEDRAL if tta else DIHEDRAL[:1]
        for k, flip in views:
            view = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))
            with autocast(dtype, device):
                logits = foreground_logit(model(view)).float()
            back = torch.rot90(torch.sigmoid(logits), -k, dims=(-2, -1))
            probs += back.flip(-1) if flip else back
        out[start : start + len(chunk)] = (probs / len(views))[:, 0].cpu().numpy()
    return out


def threshold(probs: np.ndarray, value: float) -> np.ndarray:
    """Binary masks ``probs > value`` as ``uint8`` 0/1 (the seed's ``preds > 0.5``)."""
    return (probs > value).astype(np.uint8)


def save_predictions(path: str | Path, ids: list[str], probs: np.ndarray, masks: np.ndarray) -> None:
    """Write ``ids``, ``probs (N, H, W) float16`` and ``masks (N, H, W) uint8`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, ids=np.array(ids), probs=probs.astype(np.float16), masks=masks)


def load_predictions(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read what :func:`save_predictions` wrote: ``ids``, ``probs``, ``masks``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions not found (run the predict stage)")
    with np.load(path) as z:
        return [str(i) for i in z["ids"]], z["probs"].astype(np.float32), z["masks"]

