"""Overlap-tile prediction of a whole image of any size (the U-Net paper's strategy)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from nuclei_unet.config.schema import PredictParams
from nuclei_unet.data.native import rescale_image, rescaled_shape
from nuclei_unet.infer.memory import TILING_BYTES, require_memory
from nuclei_unet.infer.probs import output_maps, predict_maps


def resize_float(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(h, w) float32`` to ``shape`` (PIL, float mode)."""
    image = Image.fromarray(array.astype(np.float32))
    return np.asarray(image.resize((shape[1], shape[0]), resample=Image.Resampling.BILINEAR))


def blend_window(size: int, overlap: int) -> np.ndarray:
    """``(size, size) float32`` weights: 1 inside, ramping down over ``overlap`` px at the
    edges, never 0 (so every pixel of every tile counts a little)."""
    ramp = max(overlap, 1)
    pos = np.arange(size) + 0.5
    w1 = np.clip(np.minimum(pos, size - pos) / ramp, 1e-3, 1.0)
    return np.outer(w1, w1).astype(np.float32)


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` px every ``stride`` px."""
    if length <= tile:
        return [0]
    n = int(np.ceil((length - tile) / stride)) + 1
    return [min(i * stride, length - tile) for i in range(n)]


def tiled_maps(
    model: nn.Module, image: np.ndarray, options: PredictParams, device: torch.device,
    dtype: torch.dtype, scale: float, tta: bool,
) -> np.ndarray:
    """Overlap-tile prediction at ``scale``: ``(H, W, 3) uint8`` -> ``(M, h, w) float32`` maps
    (:func:`..probs.predict_maps`) of the image rescaled by ``scale`` (``h = round(H * scale)``).

    The rescaled image is mirrored at its borders by half the overlap (the paper's
    overlap-tile), cut into overlapping tiles, and the tiles' maps are blended with
    :func:`blend_window`. Tiles go through the network ``options.batch_size`` at a time and
    are blended as they come, so memory grows with the image (about 21 bytes per rescaled
    pixel for an edge model, measured), not with its tiles' maps (which overlap, about 3x that). An image
    whose rescaled size would not fit in the available memory is refused first
    (:func:`..memory.require_memory`, a TooLargeError).
    """
    sh, sw = rescaled_shape(image.shape, scale)  # rescale_image's own rule
    require_memory((sh, sw), TILING_BYTES, f"overlap-tiling at {scale:.2f}x")
    scaled = rescale_image(image, scale)
    tile, margin = options.tile_size, options.tile_overlap // 2
    # mirror so border pixels see context, and so the padded image holds at least one tile
    pad_h, pad_w = max(tile - sh - 2 * margin, 0), max(tile - sw - 2 * margin, 0)
    padded = np.pad(
        scaled, ((margin, margin + pad_h), (margin, margin + pad_w), (0, 0)), mode="symmetric"
    )
    del scaled
    stride = tile - options.tile_overlap
    origins = [
        (y, x)
        for y in tile_origins(padded.shape[0], tile, stride)
        for x in tile_origins(padded.shape[1], tile, stride)
    ]
    window = blend_window(tile, options.tile_overlap)
    acc = np.zeros((output_maps(model), *padded.shape[:2]), np.float32)
    weight = np.zeros(padded.shape[:2], np.float32)
    for start in range(0, len(origins), options.batch_size):
        batch = origins[start : start + options.batch_size]
        tiles = np.stack([padded[y : y + tile, x : x + tile] for y, x in batch])
        maps = predict_maps(model, tiles, options.batch_size, device, dtype, False, tta)
        for (y, x), m in zip(batch, maps):
            acc[:, y : y + tile, x : x + tile] += m * window
            weight[y : y + tile, x : x + tile] += window
    acc /= weight
    return acc[:, margin : margin + sh, margin : margin + sw]


def resize_maps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(M, h, w) float32`` -> ``(M, *shape)``, each bilinear (:func:`resize_float`)."""
    if maps.shape[1:] == tuple(shape):
        return maps
    return np.stack([resize_float(m, shape) for m in maps])

