"""Full-resolution segmentation: probabilities, mask and instance labels of whole images.

Shared by the predict stage and the ``nuclei-unet predict`` command, so both write the same
files for the same image and settings.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nuclei_unet.config.schema import PredictParams
from nuclei_unet.data.native import MAX_SCALE, median_diameter, scale_for
from nuclei_unet.errors import DataError, TooLargeError
from nuclei_unet.infer.instances import split_instances
from nuclei_unet.infer.memory import LABELLING_BYTES, require_memory
from nuclei_unet.infer.probs import predict_maps
from nuclei_unet.data.prepare import box_coverage
from nuclei_unet.infer.tiling import resize_maps, tiled_maps
from nuclei_unet.io.dsb import Sample
from nuclei_unet.io.images import read_image, write_png
from nuclei_unet.io.layout import LABELS_SUFFIX, MASK_SUFFIX, SUBMISSION_FILE
from nuclei_unet.io.rle import submission_rows, write_submission
from nuclei_unet.model.checkpoint import Scale
from nuclei_unet.model.exposure import fit_exposure
from nuclei_unet.model.preprocess import normalize_image
from nuclei_unet.transforms.resize import resize_image


def kept_min_size(min_size: int, diameter: float | None, factor: float | None) -> float:
    """The smallest object, in px at the image's own size, kept in an image that was
    predicted at ``factor`` by a model trained on nuclei of ``diameter`` px: ``min_size``, but
    at most half the area of such a nucleus at the image's size, ``pi / 8 (diameter /
    factor)^2``, so that the small nuclei of a low-magnification image are not all dropped.
    With the default 20-px diameter and min size 25, the cap bites only past factor 2.5
    (nuclei under 8 px).

    >>> kept_min_size(25, 20.0, 1.0), kept_min_size(25, None, None)
    (25, 25)
    >>> round(kept_min_size(25, 20.0, 4.0), 2)  # 5-px nuclei of 19.6 px area
    9.82
    """
    if diameter is None or factor is None:
        return min_size
    return min(min_size, math.pi / 8.0 * (diameter / factor) ** 2)


def label_nuclei(
    maps: np.ndarray, options: PredictParams, diameter: float | None = None,
    factor: float | None = None, mask: np.ndarray | None = None,
) -> np.ndarray:
    """``(M, H, W)`` maps -> ``(H, W)`` instance labels by ``options.instances``, dropping
    objects under :func:`kept_min_size` px (maps predicted at ``factor`` by a model of nucleus
    ``diameter``; either None: ``options.min_size``): uint16, or uint32 past 65,535 nuclei.
    ``mask``: the ``(H, W) bool`` pixels to split (None: ``maps[0] > options.threshold``)."""
    edge = maps[1] if len(maps) > 1 else None
    if options.instances == "edge" and edge is None:
        raise DataError("predict.instances 'edge' needs a model trained with train.edge: true")
    require_memory(maps.shape[1:], LABELLING_BYTES, "splitting the nuclei")
    labels = split_instances(
        maps[0] > options.threshold if mask is None else mask, options.instances,
        kept_min_size(options.min_size, diameter, factor), options.min_distance,
        edge=edge, fg=maps[0], seed_threshold=options.seed_threshold,
    )
    wide = labels.max(initial=0) > np.iinfo(np.uint16).max
    return labels.astype(np.uint32 if wide else np.uint16)


# the fewest objects a coarse pass must find to be trusted: a median of one or a few objects,
# as a coarse pass sees in a small low-magnification image (clumps), is noise
COARSE_MIN_NUCLEI = 8


def _found_nuclei(
    model: nn.Module, image: np.ndarray, options: PredictParams, scale: float,
    device: torch.device, dtype: torch.dtype,
) -> tuple[float | None, int]:
    """The median diameter, in px at ``scale`` (None when there are none), and the number of
    the objects one pass (no TTA) finds in ``image`` rescaled by ``scale``."""
    labels = label_nuclei(tiled_maps(model, image, options, device, dtype, scale, tta=False), options)
    return median_diameter(labels), int(labels.max(initial=0))


def estimate_scale(
    model: nn.Module, image: np.ndarray, options: PredictParams, diameter: float,
    device: torch.device, dtype: torch.dtype,
) -> float:
    """The factor that brings ``image``'s nuclei to ``diameter`` px, estimated from the
    model's own objects: predict (no TTA) at the current guess, measure the median nucleus,
    rescale; start at 1 and stop when a pass moves the guess by less than 20 % or after
    ``options.scale_passes - 1`` passes. Until a pass has found an object (the nuclei may be
    too small for ``min_size`` at that scale), a pass that finds none zooms in 2x for the
    next; after one has, such a pass ends the search at the last guess. 1 when no pass found
    any.

    A first, coarse pass at ``options.scale_start`` (below 1) comes before: the model splits
    nuclei twice its training size or more into fragments, whose small median would send the
    guess further up, while such nuclei shrunk by half are found whole. When the coarse pass
    finds at least :data:`COARSE_MIN_NUCLEI` objects and they are larger than ``diameter``
    (its guess is below 1), the search goes on from its guess and the coarse pass counts as
    one; otherwise it is dropped (at low magnification it sees clumps, not nuclei) and the
    search starts at 1.
    """
    scale, seen, passes = 1.0, False, options.scale_passes - 1
    if options.scale_start < 1.0 and passes > 0:
        found, count = _found_nuclei(model, image, options, options.scale_start, device, dtype)
        if found is not None and count >= COARSE_MIN_NUCLEI:
            guess = scale_for(found / options.scale_start, diameter)
            if guess < 1.0:
                scale, seen, passes = guess, True, passes - 1
    for _ in range(passes):
        found, _count = _found_nuclei(model, image, options, scale, device, dtype)
        if found is None and seen:
            break
        if found is None:
            scale = min(2.0 * scale, MAX_SCALE)
            continue
        seen = True
        guess = scale_for(found / scale, diameter)
        settled = abs(math.log(guess / scale)) < math.log(1.2)
        scale = guess
        if settled:
            break
    return scale if seen else 1.0


def predict_full(
    model: nn.Module, image: np.ndarray, options: PredictParams, input_size: int,
    device: torch.device, dtype: torch.dtype = torch.float32, scale: Scale = Scale(),
    name: str = "image",
) -> tuple[np.ndarray, float | None]:
    """Probability maps ``(M, H, W) float32`` for ``(H, W, 3) uint8`` at its own size (the
    foreground and, for an edge model, the edge class), and the factor the image was rescaled
    by to bring its nuclei to the model's size (``scaled`` mode; None for the others).

    With ``options.exposure`` ``fit``, an image outside the exposures the model trained on is
    first brought into them (:func:`..model.exposure.fit_exposure`, logged under ``name``).
    ``resize``: predict at the training size, resize back. ``tile``: overlap-tile at
    ``options.tile_scale``. ``scaled``: overlap-tile at the scale that brings the nuclei to the
    model's training size (:func:`estimate_scale`; the image's own scale for a model trained at
    native scale).
    """
    factor = None
    if options.exposure == "fit":
        image = fit_exposure(image, scale.intensity, name)
    if options.mode == "resize":
        # normalised at the training size, as the training images were
        small = resize_image(image, input_size)[None]
        maps = predict_maps(model, small, 1, device, dtype, False, options.tta, scale.normalize)[0]
        return resize_maps(maps, image.shape[:2]), factor
    # the whole image at once: every tile and every scale pass sees the same stretch
    image = normalize_image(image, scale.normalize)
    if options.mode == "tile":
        maps = tiled_maps(model, image, options, device, dtype, options.tile_scale, options.tta)
    else:
        if not scale.native:
            raise DataError(
                "predict.mode 'scaled' needs a model trained on native crops (train.input: crops)"
            )
        factor = 1.0
        if scale.diameter is not None:
            factor = estimate_scale(model, image, options, scale.diameter, device, dtype)
        # multi-scale TTA: each zoom's maps brought to the image's size, then averaged
        zoomed = [
            resize_maps(
                tiled_maps(model, image, options, device, dtype, factor * zoom, options.tta),
                image.shape[:2],
            )
            for zoom in options.scales
        ]
        # already at the image's size
        return zoomed[0] if len(zoomed) == 1 else np.mean(zoomed, axis=0, dtype=np.float32), factor
    return resize_maps(maps, image.shape[:2]), factor


def segment(
    model: nn.Module, image: np.ndarray, options: PredictParams, input_size: int,
    device: torch.device, dtype: torch.dtype = torch.float32, scale: Scale = Scale(),
    name: str = "image",
) -> tuple[np.ndarray, np.ndarray]:
    """Mask ``(H, W) uint8`` 0/1 and instance labels ``(H, W)`` of one image (``name`` in the
    log): uint16, or uint32 past 65,535 nuclei. Objects under :func:`kept_min_size` px are
    dropped."""
    maps, factor = predict_full(model, image, options, input_size, device, dtype, scale, name)
    labels = label_nuclei(maps, options, scale.diameter, factor)
    return (maps[0] > options.threshold).astype(np.uint8), labels


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
        write_png(out_dir / f"{stem}{MASK_SUFFIX}", mask.astype(np.uint8) * 255)
    if write_labels:
        write_png(out_dir / f"{stem}{LABELS_SUFFIX}", labels.astype(np.uint16))


def predict_full_res(
    model: nn.Module,
    samples: list[Sample],
    options: PredictParams,
    input_size: int,
    out_dir: str | Path,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    scale: Scale = Scale(),
    small_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Segment ``samples`` at their original size into ``out_dir``: masks, instance labels,
    and a Kaggle ``submission.csv`` for them. With ``small_size``, also returns, by id, the
    fraction of each ``(small_size, small_size)`` pixel that the full-size mask covers: the
    prepare stage's masks are this fraction of the true nuclei, at least half (``HALF``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.to(device).eval()
    rows: list[tuple[str, str]] = []
    small: dict[str, np.ndarray] = {}
    for sample in tqdm(samples, desc=f"full resolution ({options.mode})", unit="img"):
        try:
            mask, labels = segment(
                model, read_image(sample.image), options, input_size, device, dtype, scale,
                sample.id,
            )
        except TooLargeError as exc:  # the stage needs every image: stop, naming this one
            raise TooLargeError(f"{sample.image}: {exc}") from None
        save_segmentation(out_dir, sample.id, mask, labels)
        rows += submission_rows(sample.id, labels)
        if small_size is not None:
            small[sample.id] = box_coverage(mask.astype(bool), small_size)
    write_submission(out_dir / SUBMISSION_FILE, rows)
    return small
