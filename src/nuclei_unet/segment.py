"""Full-resolution segmentation of one image: probabilities, mask and instance labels.

Shared by the predict stage and the ``nuclei-unet predict`` command.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from .dataset import Sample
from .dsb import submission_rows
from .instances import split_instances
from .io import read_image, write_csv, write_png
from .params import PredictParams
from .predict import predict_probs
from .resize import resize_image

FULL_DIR = "full"
SUBMISSION_FILE = "submission.csv"


@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    """How to segment at full resolution (the ``predict`` params)."""

    mode: str = "resize"  # resize | tile
    threshold: float = 0.5
    tile_size: int = 128
    tile_overlap: int = 32
    tile_scale: float = 0.5
    instances: str = "watershed"  # watershed | components
    min_size: int = 10
    min_distance: int = 5
    batch_size: int = 16
    tta: bool = False

    @classmethod
    def from_params(cls, params: PredictParams) -> SegmentOptions:
        """The options that the ``predict`` section of params.yaml sets."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dataclasses.asdict(params).items() if k in names})


def _resize_float(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
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


def predict_tiled(
    model: nn.Module, image: np.ndarray, options: SegmentOptions, device: torch.device,
    dtype: torch.dtype,
) -> np.ndarray:
    """Overlap-tile prediction: ``(H, W, 3) uint8`` -> ``(H, W) float32`` probabilities.

    The image is rescaled by ``tile_scale``, mirrored at its borders by half the overlap (the
    paper's overlap-tile), cut into overlapping tiles, and the tiles' probabilities are blended
    with :func:`blend_window`; the result is resized back to the image's size.
    """
    h, w = image.shape[:2]
    sh, sw = max(1, round(h * options.tile_scale)), max(1, round(w * options.tile_scale))
    scaled = resize_image(image, (sh, sw)) if (sh, sw) != (h, w) else image
    tile, margin = options.tile_size, options.tile_overlap // 2
    # mirror so border pixels see context, and so the padded image holds at least one tile
    pad_h, pad_w = max(tile - sh - 2 * margin, 0), max(tile - sw - 2 * margin, 0)
    padded = np.pad(
        scaled, ((margin, margin + pad_h), (margin, margin + pad_w), (0, 0)), mode="symmetric"
    )
    stride = tile - options.tile_overlap
    ys = tile_origins(padded.shape[0], tile, stride)
    xs = tile_origins(padded.shape[1], tile, stride)
    tiles = np.stack([padded[y : y + tile, x : x + tile] for y in ys for x in xs])
    probs = predict_probs(model, tiles, options.batch_size, device, dtype, False, options.tta)
    window = blend_window(tile, options.tile_overlap)
    acc = np.zeros(padded.shape[:2], np.float32)
    weight = np.zeros(padded.shape[:2], np.float32)
    for (y, x), p in zip(((y, x) for y in ys for x in xs), probs):
        acc[y : y + tile, x : x + tile] += p * window
        weight[y : y + tile, x : x + tile] += window
    full = (acc / weight)[margin : margin + sh, margin : margin + sw]
    return _resize_float(full, (h, w)) if (sh, sw) != (h, w) else full


def predict_full(
    model: nn.Module, image: np.ndarray, options: SegmentOptions, input_size: int,
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
    return _resize_float(probs, image.shape[:2])


def segment(
    model: nn.Module, image: np.ndarray, options: SegmentOptions, input_size: int,
    device: torch.device, dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask ``(H, W) uint8`` 0/1 and instance labels ``(H, W) uint16`` of one image."""
    probs = predict_full(model, image, options, input_size, device, dtype)
    mask = probs > options.threshold
    labels = split_instances(mask, options.instances, options.min_size, options.min_distance)
    if labels.max() > np.iinfo(np.uint16).max:
        raise ValueError("more than 65535 nuclei in one image")
    return mask.astype(np.uint8), labels.astype(np.uint16)


def save_segmentation(out_dir: Path, stem: str, mask: np.ndarray, labels: np.ndarray) -> None:
    """Write ``<stem>_mask.png`` (uint8 0/255) and ``<stem>_labels.png`` (uint16) in ``out_dir``."""
    write_png(out_dir / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
    write_png(out_dir / f"{stem}_labels.png", labels.astype(np.uint16))


def write_submission(path: str | Path, rows: list[tuple[str, str]]) -> None:
    """A Kaggle DSB2018 submission: ``ImageId,EncodedPixels``, one row per nucleus."""
    write_csv(path, ["ImageId", "EncodedPixels"], rows)


def predict_full_res(
    model: nn.Module,
    samples: list[Sample],
    options: SegmentOptions,
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
