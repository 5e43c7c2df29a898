"""Batched inference at the network's input size: probabilities (with 8-fold TTA) and masks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nuclei_unet.model.preprocess import normalize_images, to_input
from nuclei_unet.model.unet import foreground_logit, head_of, memory_format_for
from nuclei_unet.runtime import autocast

# (quarter turns, horizontal flip first): the 8 symmetries of the square
DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def output_maps(model: nn.Module) -> int:
    """How many probability maps :func:`predict_maps` gives for ``model``: 1 (foreground), or
    2 (foreground, edge) for a model trained with the edge class."""
    return 2 if head_of(model) == "sigmoid" and getattr(model, "out_channels", 1) == 2 else 1


def _probabilities(logits: torch.Tensor, head: str, maps: int) -> torch.Tensor:
    """``(N, C, H, W)`` logits -> ``(N, maps, H, W)`` float32 probabilities."""
    fg = foreground_logit(logits, head)
    both = fg if maps == 1 else torch.cat([fg, logits[:, 1:2]], dim=1)
    return torch.sigmoid(both.float())


@torch.inference_mode()
def predict_maps(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    tta: bool = False,
    normalize: str = "none",
) -> np.ndarray:
    """``(N, H, W, 3) uint8`` -> probabilities ``(N, M, H, W) float32``: the foreground and,
    for an edge model, the edge class (:func:`output_maps`).

    Each image is first brought to the network's range by the model's ``normalize`` rule
    (:func:`..model.preprocess.normalize_images`; callers that tile an image normalise it
    whole beforehand and leave this ``none``). With ``tta``, the probabilities of the 8 flips
    and 90-degree rotations of each image are averaged (each mapped back first).
    """
    images = normalize_images(images, normalize)
    layout = memory_format_for(model)
    model = model.to(device, memory_format=layout).eval()
    head, maps = head_of(model), output_maps(model)
    out = np.empty((len(images), maps, *images.shape[1:3]), dtype=np.float32)
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="predict", unit="batch", disable=not progress):
        x = to_input(torch.from_numpy(images[start : start + batch_size]).to(device))
        x = x.contiguous(memory_format=layout)
        probs = torch.zeros(x.shape[0], maps, *x.shape[2:], device=device)
        views = DIHEDRAL if tta else DIHEDRAL[:1]
        for k, flip in views:
            view = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))
            with autocast(dtype, device):
                logits = model(view)
            back = torch.rot90(_probabilities(logits, head, maps), -k, dims=(-2, -1))
            probs += back.flip(-1) if flip else back
        out[start : start + len(x)] = (probs / len(views)).cpu().numpy()
    return out


def predict_probs(model: nn.Module, images: np.ndarray, batch_size: int, **options) -> np.ndarray:
    """``(N, H, W, 3) uint8`` -> foreground probabilities ``(N, H, W) float32``: the first map
    of :func:`predict_maps`, which takes the same keyword ``options``."""
    return predict_maps(model, images, batch_size, **options)[:, 0]


def threshold(probs: np.ndarray, value: float) -> np.ndarray:
    """Binary masks ``probs > value`` as ``uint8`` 0/1 (the seed's ``preds > 0.5``)."""
    return (probs > value).astype(np.uint8)
