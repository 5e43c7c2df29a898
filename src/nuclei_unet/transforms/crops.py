"""Random crops of the native set, zoomed a little, for training at a common nucleus size.

Every epoch draws ``crops_per_image`` crops per training image on average (stained images drawn
``oversample_stained`` times as often, and each image in proportion to its area to the power
``area_power``; the total unchanged), each from a random place (or, for
a ``foreground`` share of them, around a random nucleus pixel: nnU-Net's foreground
oversampling, so that large sparse images do not give mostly empty crops) and at a random
zoom, then augmented like the resized set (:func:`..augment.augment`), with loss weights
on the pixels between touching nuclei when asked for. Seeded per (seed, epoch, draw), so any
number of DataLoader workers gives the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from nuclei_unet.config.schema import AugmentParams
from nuclei_unet.data.native import CONTACT, EDGE, GAP, NativeSample
from nuclei_unet.model.preprocess import DIVIDE_BY
from nuclei_unet.transforms.augment import augment

# foreground crops: at most this many nucleus pixels kept per image to centre crops on (evenly
# spaced in raster order, so every nucleus of a large image keeps some)
MAX_FOREGROUND_POINTS = 4096


def nucleus_mask(target: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: the nucleus pixels (body, edge, contact) of ``(H, W) uint8`` targets
    (:func:`..data.native.edge_targets`); gap pixels, between nuclei, are background."""
    return (target > 0) & (target != GAP)


def target_channels(target: np.ndarray, edge: bool) -> np.ndarray:
    """``(H, W) uint8`` targets (:func:`..data.native.edge_targets`) -> ``(C, H, W) float32``:
    the foreground, then (with ``edge``) the edge class (edge and contact pixels)."""
    fg = nucleus_mask(target).astype(np.float32)
    if not edge:
        return fg[None]
    return np.stack([fg, ((target == EDGE) | (target == CONTACT)).astype(np.float32)])


def contact_weights(target: np.ndarray, weight: float) -> np.ndarray:
    """``(1, H, W) float32`` loss weights: ``weight`` on contact and gap pixels, where touching
    nuclei are told apart, 1 elsewhere."""
    where = (target == CONTACT) | (target == GAP)
    return np.where(where, np.float32(weight), np.float32(1.0))[None]


def foreground_points(target: np.ndarray, limit: int = MAX_FOREGROUND_POINTS) -> np.ndarray:
    """``(N, 2) int32`` (row, column) of up to ``limit`` nucleus pixels (:func:`nucleus_mask`)
    of ``(H, W) uint8`` targets, evenly spaced in raster order; ``(0, 2)`` when none.

    >>> foreground_points(np.array([[0, 1], [4, 2]], np.uint8)).tolist()
    [[0, 1], [1, 1]]
    """
    flat = np.flatnonzero(nucleus_mask(target))
    if len(flat) > limit:
        flat = flat[np.linspace(0, len(flat) - 1, limit).round().astype(np.int64)]
    return np.stack(np.unravel_index(flat, target.shape), axis=1).astype(np.int32)


def padded_region(array: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """``array[top:top+side, left:left+side]`` of an ``(H, W, ...)`` array, mirrored past its
    borders where the image is smaller than ``side``."""
    h, w = array.shape[:2]
    pad_h, pad_w = max(0, side - h), max(0, side - w)
    if pad_h or pad_w:
        pads = [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)]
        pads += [(0, 0)] * (array.ndim - 2)
        array = np.pad(array, pads, mode="symmetric")  # numpy repeats the mirror as needed
    return array[top : top + side, left : left + side]


def crop_tensors(
    sample: NativeSample, top: int, left: int, side: int, size: int, edge: bool,
    contact_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The ``side``-px region of ``sample`` at (top, left), resized to ``size``: image
    ``(3, size, size)`` float32 in [0, 1] (bilinear, antialiased), targets ``(C, size, size)``
    float32 0/1 and, when ``contact_weight`` is not 1, loss weights ``(1, size, size)`` (both
    nearest)."""
    image = torch.from_numpy(np.ascontiguousarray(padded_region(sample.image, top, left, side)))
    region = padded_region(sample.target, top, left, side)
    target = torch.from_numpy(target_channels(region, edge))
    weight = None if contact_weight == 1.0 else torch.from_numpy(contact_weights(region, contact_weight))
    image = image.permute(2, 0, 1).float().div_(DIVIDE_BY)
    if side != size:
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp_(0.0, 1.0)
        target = F.interpolate(target[None], size=(size, size), mode="nearest")[0]
        if weight is not None:
            weight = F.interpolate(weight[None], size=(size, size), mode="nearest")[0]
    return image, target, weight


def draw_weights(
    samples: Sequence[NativeSample], oversample_stained: float, area_power: float,
) -> np.ndarray:
    """``(n,) float64`` probabilities, summing to 1, of drawing each sample for a crop:
    ``oversample_stained`` for a stained sample (1 for the others) times its area to the power
    ``area_power`` (0: every image alike; 1: every pixel alike; the unit cancels out).

    >>> def sample(side, stained):
    ...     return NativeSample(np.zeros((side, side, 3), np.uint8),
    ...                         np.zeros((side, side), np.uint8), 1.0, stained, None)
    >>> large, small = sample(512, False), sample(128, True)  # areas 16 : 1
    >>> draw_weights([large, small], 1.0, 0.0).tolist()
    [0.5, 0.5]
    >>> draw_weights([large, small], 1.0, 0.5).tolist()  # sqrt(16) : sqrt(1)
    [0.8, 0.2]
    >>> draw_weights([large, small], 4.0, 1.0).tolist()  # 16 : 4 x 1
    [0.8, 0.2]
    """
    areas = np.array([s.image.shape[0] * s.image.shape[1] for s in samples], dtype=np.float64)
    weights = np.array([oversample_stained if s.stained else 1.0 for s in samples])
    weights = weights * areas**area_power
    return weights / weights.sum()


class CropSet(Dataset):
    """Random zoomed crops of native samples; call ``set_epoch`` before each epoch."""

    def __init__(
        self, samples: Sequence[NativeSample], size: int, crops_per_image: int, jitter: float,
        augment_params: AugmentParams, edge: bool, oversample_stained: float, seed: int,
        contact_weight: float = 1.0, foreground: float = 0.0, exposure_stained: bool = True,
        area_power: float = 0.0,
    ) -> None:
        self.samples, self.size, self.jitter = list(samples), size, jitter
        self.foreground = foreground
        # nucleus pixels to centre crops on, per sample (not needed at share 0)
        self.points = [foreground_points(s.target) for s in self.samples] if foreground > 0 else []
        self.contact_weight = contact_weight
        self.params, self.edge, self.seed = augment_params, edge, seed
        # the stained images' augmentation: without the exposure change unless exposure_stained
        self.stained_params = augment_params if exposure_stained else augment_params.model_copy(
            update={"gain": 0.0, "offset": 0.0}
        )
        self.n = crops_per_image * len(self.samples)
        self.p = draw_weights(self.samples, oversample_stained, area_power)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw which image each of this epoch's crops comes from."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch, 7])
        self.order = rng.choice(len(self.samples), size=self.n, p=self.p)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        state = np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(state))
        sample = self.samples[self.order[i]]
        zoom = math.exp(
            float(torch.empty(1).uniform_(-1, 1, generator=generator)) * math.log1p(self.jitter)
        )
        side = max(8, round(self.size / zoom))
        h, w = sample.image.shape[:2]
        top = int(torch.randint(0, max(1, h - side + 1), (1,), generator=generator))
        left = int(torch.randint(0, max(1, w - side + 1), (1,), generator=generator))
        if self.foreground > 0:  # share 0 draws nothing more: the crops stay as they were
            top, left = self._around_nucleus(self.order[i], side, top, left, generator)
        image, target, weight = crop_tensors(
            sample, top, left, side, self.size, self.edge, self.contact_weight
        )
        params = self.stained_params if sample.stained else self.params
        image, target, weight = augment(image, target, weight, params, generator)
        return (image, target) if weight is None else (image, target, weight)

    def _around_nucleus(
        self, index: int, side: int, top: int, left: int, generator: torch.Generator
    ) -> tuple[int, int]:
        """With probability ``foreground``, the corner of a ``side``-px crop of sample
        ``index`` holding a random nucleus pixel, within the middle half of the crop (kept
        inside the image); else (or when the image has no nucleus) ``(top, left)`` as drawn."""
        points = self.points[index]
        if float(torch.rand(1, generator=generator)) >= self.foreground or not len(points):
            return top, left
        row, col = points[int(torch.randint(0, len(points), (1,), generator=generator))]
        shift = torch.randint(-(side // 4), side // 4 + 1, (2,), generator=generator).tolist()
        h, w = self.samples[index].image.shape[:2]
        top = min(max(int(row) - side // 2 + shift[0], 0), max(0, h - side))
        left = min(max(int(col) - side // 2 + shift[1], 0), max(0, w - side))
        return top, left


def val_crops(
    samples: Sequence[NativeSample], size: int, edge: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed validation crops, no zoom: each image's four corners (fewer when it is small):
    ``(N, 3, size, size)`` float32 in [0, 1] (channels_last) and ``(N, C, size, size)``."""
    images, targets = [], []
    for sample in samples:
        h, w = sample.image.shape[:2]
        corners = {(t, l) for t in (0, max(0, h - size)) for l in (0, max(0, w - size))}
        for top, left in sorted(corners):
            image, target, _ = crop_tensors(sample, top, left, size, size, edge)
            images.append(image)
            targets.append(target)
    x = torch.stack(images).contiguous(memory_format=torch.channels_last)
    return x, torch.stack(targets)
