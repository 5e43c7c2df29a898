"""The full-resolution training set: every image at a common nucleus size, with its targets.

The 128-px set squeezes a 1,040x1,388 image as much as a 256x256 one, so nuclei reach the
network at sizes that differ 10-fold. Here each image is instead rescaled so that its median
nucleus (equivalent diameter, from its own instance labels) is ``diameter`` pixels, as
Cellpose does; predict estimates that size on images it has no labels for. Targets: 0
background, 1 nucleus body, 2 edge (nucleus pixels within ``edge_width`` px of the background),
3 contact (nucleus pixels within ``edge_width`` px of another nucleus), 4 gap (background
pixels within ``edge_width`` px of two nuclei). Edge and contact together are the edge class,
so that seeds can come from "nucleus minus edge" and touching nuclei keep a gap between their
seeds; contact and gap pixels, where touching nuclei are told apart, can weigh more in the
loss (``train.contact_weight``, the U-Net paper's idea).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from nuclei_unet.config.schema import NativeParams
from nuclei_unet.data.kinds import STAINED, image_kind
from nuclei_unet.errors import DataError

NATIVE_DIR = "native"  # inside the prepared folder: <id>.npz per image
BACKGROUND, BODY, EDGE, CONTACT, GAP = 0, 1, 2, 3, 4
# no rescale beyond these: a mislabelled image must not become 40,000 px wide
MIN_SCALE, MAX_SCALE = 0.125, 4.0


def median_diameter(labels: np.ndarray) -> float | None:
    """Median equivalent diameter ``2 sqrt(area / pi)`` of the objects of ``(H, W)`` integer
    ``labels`` in pixels; None when there are none.

    >>> labels = np.zeros((20, 20), np.int32); labels[:10, :10] = 1; labels[12:, 12:] = 2
    >>> round(median_diameter(labels), 3)  # areas 100 and 64
    10.155
    """
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    if not len(areas):
        return None
    return float(np.median(2.0 * np.sqrt(areas / np.pi)))


def scale_for(diameter_px: float | None, target: float | None) -> float:
    """The rescale factor that brings nuclei of ``diameter_px`` to ``target`` px (1 when either
    is unknown), clipped to [MIN_SCALE, MAX_SCALE]."""
    if diameter_px is None or target is None:
        return 1.0
    return float(np.clip(target / diameter_px, MIN_SCALE, MAX_SCALE))


def rescaled_shape(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """The ``(h, w)`` of an image of ``shape`` rescaled by ``scale``: rounded, at least 1 px.

    >>> rescaled_shape((100, 30, 3), 0.25), rescaled_shape((2, 2), 0.1)
    ((25, 8), (1, 1))
    """
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def rescale_image(image: np.ndarray, scale: float) -> np.ndarray:
    """``(H, W, C) uint8`` rescaled by ``scale`` to :func:`rescaled_shape` (PIL bilinear,
    which averages when shrinking)."""
    if scale == 1.0:
        return image
    h, w = rescaled_shape(image.shape, scale)
    size = (w, h)
    channels = [
        np.asarray(Image.fromarray(image[..., c]).resize(size, Image.Resampling.BILINEAR))
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=-1)


def rescale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``(H, W)`` integer labels to ``shape``, as int32."""
    if labels.shape == shape:
        return labels.astype(np.int32)
    rows = ((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(np.int64)
    cols = ((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(np.int64)
    return labels[rows[:, None], cols[None, :]].astype(np.int32)


def edge_targets(labels: np.ndarray, edge_width: int) -> np.ndarray:
    """``(H, W)`` instance labels -> ``(H, W) uint8`` targets: 0 background, 1 body, 2 edge,
    3 contact, 4 gap (see the module's docstring).

    Within ``edge_width`` px (chessboard distance) of a nucleus pixel lies another nucleus
    (contact) or else the background (edge); of a background pixel, two nuclei (gap).

    >>> touching = np.array([[0, 1, 1, 1, 2, 2, 2, 0, 0]])
    >>> edge_targets(touching, 1).tolist()
    [[0, 2, 1, 3, 3, 1, 2, 0, 0]]
    >>> apart = np.array([[0, 1, 1, 1, 0, 2, 2, 2, 0]])
    >>> edge_targets(apart, 1).tolist()
    [[0, 2, 1, 2, 4, 2, 1, 2, 0]]
    """
    size = 2 * edge_width + 1
    labels = labels.astype(np.int64)
    none = int(labels.max()) + 1
    # the smallest and largest nucleus label nearby (none: no nucleus nearby)
    low = ndimage.minimum_filter(np.where(labels > 0, labels, none), size=size, mode="nearest")
    high = ndimage.maximum_filter(labels, size=size, mode="nearest")
    has_background = ndimage.minimum_filter(labels, size=size, mode="nearest") == 0
    nucleus = labels > 0
    contact = nucleus & ((low != labels) | (high != labels))
    edge = nucleus & has_background & ~contact
    gap = ~nucleus & (high > 0) & (low != high)
    target = np.where(nucleus, BODY, BACKGROUND)
    target[edge], target[contact], target[gap] = EDGE, CONTACT, GAP
    return target.astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class NativeSample:
    """One image of the native set: ``image (h, w, 3) uint8``, ``target (h, w) uint8`` (0/1/2),
    the rescale factor from the original, whether it is a stained/brightfield image, and the
    nucleus diameter the set was rescaled to (None: native scale)."""

    image: np.ndarray
    target: np.ndarray
    scale: float
    stained: bool
    diameter: float | None


def native_sample(image: np.ndarray, labels: np.ndarray, params: NativeParams) -> NativeSample:
    """Rescale ``image (H, W, 3) uint8`` and its ``labels (H, W)`` to ``params.diameter``."""
    scale = scale_for(median_diameter(labels), params.diameter)
    small = rescale_image(image, scale)
    target = edge_targets(rescale_labels(labels, small.shape[:2]), params.edge_width)
    return NativeSample(small, target, scale, image_kind(image) == STAINED, params.diameter)


def save_native(folder: Path, sample_id: str, sample: NativeSample) -> None:
    """Write ``folder/<id>.npz`` (compressed: the targets are mostly runs)."""
    np.savez_compressed(
        folder / f"{sample_id}.npz", image=sample.image, target=sample.target,
        scale=np.float64(sample.scale), stained=np.bool_(sample.stained),
        diameter=np.float64(np.nan if sample.diameter is None else sample.diameter),
    )


def load_native(prepared_dir: str | Path, ids: list[str]) -> list[NativeSample]:
    """The native samples of ``ids`` from ``prepared_dir/native``; a missing set is a DataError
    that says which param writes it."""
    folder = Path(prepared_dir) / NATIVE_DIR
    if not folder.is_dir():
        raise DataError(
            f"{folder}: no native training set (set prepare.native.enabled: true for train.input: crops)"
        )
    samples = []
    for k in ids:
        path = folder / f"{k}.npz"
        if not path.is_file():
            raise DataError(f"{path}: missing from the native set (rerun the prepare stage)")
        with np.load(path) as z:
            diameter = float(z["diameter"])
            samples.append(NativeSample(
                z["image"], z["target"], float(z["scale"]), bool(z["stained"]),
                None if np.isnan(diameter) else diameter,
            ))
    return samples
