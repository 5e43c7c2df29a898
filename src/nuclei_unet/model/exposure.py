"""The exposures a model trained on, and fitting another camera's image into them.

A model trained with ``model.normalize: none`` learns stage1_train's exposures: an image
recorded at a fifth of the gain, or a fluorescence image on a raised background, can come out
with no nucleus found (README, "Other cameras"). The train stage records the range of its
training images of each kind (:class:`IntensityRange`, in the model file); with
``predict.exposure: fit`` an image outside its kind's range is brought into it before the
network sees it (:func:`fit_exposure`), and an image inside it is left exactly as it is, so
nothing changes for images like the training ones.

Each image is summed up by two figures of its gray values (the mean of its channels): its
99.9th percentile (``top``: a fluorescence image's brightest nuclei, a stained image's light)
and its median (``background``: a fluorescence image's dark background; a stained image's
median is its tissue, so only fluorescence images have a background to subtract).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nuclei_unet.data.kinds import FLUORESCENCE, KINDS, image_kind

TOP_PERCENTILE = 99.9
# how far an image's structure must stand out of its pixel noise to be fitted: camera noise
# alone spans about 6 (:func:`signal_to_noise`), stage1_train's 670 images 95 or more and 18
# or more at a twentieth of their exposure; an empty field fitted became hundreds of nuclei
# of noise
SIGNAL_MARGIN = 12.0
_BLOCK = 4  # side of the blocks whose means carry the structure (a nucleus spans several)
log = logging.getLogger(__name__)


def intensity_stats(image: np.ndarray) -> tuple[float, float]:
    """``(H, W, C) uint8`` -> ``(top, background)``: the 99.9th percentile and the median of
    its gray values (the channel mean).

    >>> image = np.full((100, 100, 3), 10, np.uint8)
    >>> image[:5, :10] = 200  # 50 of 10,000 pixels: more than the top 0.1 %
    >>> intensity_stats(image)
    (200.0, 10.0)
    """
    gray = image.mean(axis=2, dtype=np.float32)
    top, background = np.percentile(gray, [TOP_PERCENTILE, 50.0])
    return float(top), float(background)


def signal_to_noise(image: np.ndarray) -> float:
    """``(H, W, C) uint8`` -> how far its structure stands out of its pixel noise: the spread of
    its gray values' 4x4 block means (0.1st to 99.9th percentile) in units of the noise of a
    block mean, estimated from neighbouring pixels' differences (their standard deviation over
    sqrt 2 is a pixel's; a mean of 16 has a quarter of it), with the pixels above the 99.9th
    percentile (hot pixels) first brought down to it. 0 for a flat image.

    Noise alone spans about 6 units (3.1 either side, whatever the image's size), nuclei far
    more, even dim ones:

    >>> rng = np.random.default_rng(0)
    >>> empty = rng.poisson(2.0, (256, 256, 1)).astype(np.uint8)  # an empty field's camera noise
    >>> round(signal_to_noise(empty))
    6
    >>> cells = empty.copy()
    >>> cells[40:60, 40:60] += 5; cells[150:170, 100:120] += 5  # two nuclei 5 levels above it
    >>> signal_to_noise(cells) > SIGNAL_MARGIN
    True
    >>> signal_to_noise(np.zeros((5, 5, 3), np.uint8))
    0.0
    """
    gray = image.mean(axis=2, dtype=np.float32)
    # hot pixels (under 0.1 %) clipped to the top, as they are no structure
    np.minimum(gray, np.percentile(gray, TOP_PERCENTILE), out=gray)
    block = min(_BLOCK, *gray.shape)
    h, w = (gray.shape[0] // block) * block, (gray.shape[1] // block) * block
    means = gray[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))
    low, high = np.percentile(means, [100.0 - TOP_PERCENTILE, TOP_PERCENTILE])
    spread = float(high - low)
    steps = [np.diff(gray, axis=a).ravel() for a in (0, 1)]
    count = sum(d.size for d in steps)
    if spread == 0.0 or count == 0:
        return 0.0
    mean = sum(d.sum(dtype=np.float64) for d in steps) / count
    var = sum(np.square(d - mean).sum(dtype=np.float64) for d in steps) / count
    noise = float(np.sqrt(var / 2.0)) / block
    return spread / max(noise, 1e-9)  # the floor: a perfect ramp's steps are all equal


@dataclasses.dataclass(frozen=True)
class IntensityRange:
    """What a model's training images of one kind spanned, in gray levels: the dimmest
    image's ``top`` and the median ``top``, the brightest ``background`` and the median
    ``background`` (:func:`intensity_stats`)."""

    top_min: float
    top_median: float
    background_max: float
    background_median: float

    def to_dict(self) -> dict[str, float]:
        """The model file's form: plain floats by name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IntensityRange:
        """The inverse of :meth:`to_dict`; a missing or non-number field raises ValueError."""
        try:
            return cls(**{f.name: float(values[f.name]) for f in dataclasses.fields(cls)})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an intensity range: {values!r}") from exc


Ranges = Mapping[str, IntensityRange]  # by image kind (:data:`..data.kinds.KINDS`)


def intensity_ranges(
    images: Iterable[np.ndarray], kinds: Iterable[str] | None = None
) -> dict[str, IntensityRange]:
    """The :class:`IntensityRange` of each kind among ``(H, W, 3) uint8`` ``images``, by
    kind; a kind with no image has none. ``kinds``: each image's kind as already known (the
    native set stores the kind of the original image, which is what predict will see); None:
    :func:`..data.kinds.image_kind` of each image."""
    images = list(images)
    kinds = [image_kind(image) for image in images] if kinds is None else list(kinds)
    if len(kinds) != len(images):
        raise ValueError(f"{len(kinds)} kinds for {len(images)} images")
    stats: dict[str, list[tuple[float, float]]] = {}
    for image, kind in zip(images, kinds):
        if kind not in KINDS:
            raise ValueError(f"not an image kind {KINDS}: {kind!r}")
        stats.setdefault(kind, []).append(intensity_stats(image))
    ranges = {}
    for kind, values in stats.items():
        top, background = np.array(values, dtype=np.float64).T
        ranges[kind] = IntensityRange(
            float(top.min()), float(np.median(top)), float(background.max()),
            float(np.median(background)),
        )
    return ranges


def ranges_to_dict(ranges: Ranges) -> dict[str, dict[str, float]]:
    """The model file's form of :func:`intensity_ranges`."""
    return {kind: r.to_dict() for kind, r in ranges.items()}


def ranges_from_dict(values: Any) -> dict[str, IntensityRange]:
    """The inverse of :func:`ranges_to_dict`; an unknown kind or a malformed range raises
    ValueError."""
    if not isinstance(values, dict) or not set(values) <= set(KINDS):
        raise ValueError(f"not intensity ranges by kind {KINDS}: {values!r}")
    return {kind: IntensityRange.from_dict(r) for kind, r in values.items()}


def fit_exposure(image: np.ndarray, trained: Ranges, name: str = "image") -> np.ndarray:
    """``(H, W, 3) uint8`` brought into the ``trained`` range of its kind, as ``(H, W, 3)
    uint8``; what is done is logged under ``name`` (the file or id), so a user sees which of
    their images were fitted.

    A fluorescence image whose background is brighter than any training image's first has
    the excess over the median background subtracted. An image of either kind whose top is
    then dimmer than any training image's of its kind is scaled so that its top is their
    median top. Either is done only when something in the image stands out of its noise
    (:func:`signal_to_noise` at least ``SIGNAL_MARGIN``): an empty field's noise, lowered onto
    a dark background or scaled up, would become nuclei. Any other image, and any image of a
    kind with no range, is returned unchanged (the same array).

    >>> trained = {"fluorescence": IntensityRange(top_min=30.0, top_median=100.0,
    ...                                           background_max=40.0, background_median=5.0)}
    >>> dim = np.full((100, 100, 3), 2, np.uint8); dim[:5, :10] = 20
    >>> intensity_stats(fit_exposure(dim, trained))  # top 20 < 30: times 5
    (100.0, 10.0)
    >>> raised = dim + np.uint8(50)  # background 52 > 40: minus 47, then top 23 < 30: times 100 / 23
    >>> intensity_stats(fit_exposure(raised, trained))
    (100.0, 22.0)
    >>> typical = dim * np.uint8(4)  # top 80, background 8: inside the range
    >>> fit_exposure(typical, trained) is typical
    True
    """
    kind = image_kind(image)
    if kind not in trained:
        return image
    limits = trained[kind]
    top, background = intensity_stats(image)
    raised = kind == FLUORESCENCE and background > limits.background_max
    if not raised and top >= limits.top_min:
        return image
    if (snr := signal_to_noise(image)) < SIGNAL_MARGIN:
        log.info(
            "%s: %s image outside the trained range (top %.0f, background %.0f), but nothing in "
            "it stands out of its noise (%.1f noise units, %.0f needed): left as it is",
            name, kind, top, background, snr, SIGNAL_MARGIN,
        )
        return image
    x = image.astype(np.float32)
    if raised:
        log.info(
            "%s: background %.0f is brighter than any training image's (%.0f): %.0f subtracted",
            name, background, limits.background_max, background - limits.background_median,
        )
        x -= np.float32(background - limits.background_median)
        top, _ = intensity_stats(np.clip(x, 0, 255))
    if top < limits.top_min:
        gain = limits.top_median / max(top, 1.0)
        log.info(
            "%s: %s image's top at %.0f, dimmer than any training image's (%.0f): scaled x%.2f",
            name, kind, top, limits.top_min, gain,
        )
        x *= np.float32(gain)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def fit_exposures(
    images: np.ndarray, trained: Ranges, names: Sequence[str] | None = None
) -> np.ndarray:
    """``(N, H, W, 3) uint8``, each image by :func:`fit_exposure` (logged under its name in
    ``names``, or its index): the same array when no image leaves its range, else a new one."""
    views = list(images)  # one view per image: fit_exposure returns it when unchanged
    if names is None:
        names = [f"image {i}" for i in range(len(views))]
    if len(names) != len(views):
        raise ValueError(f"{len(names)} names for {len(views)} images")
    fitted = [fit_exposure(view, trained, name) for view, name in zip(views, names)]
    if all(f is view for f, view in zip(fitted, views)):
        return images
    return np.stack(fitted)
