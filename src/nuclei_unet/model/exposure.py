"""The exposures a model trained on, and fitting another camera's image into them.

A model trained with ``model.normalize: none`` learns stage1_train's exposures: a fluorescence
image recorded at a fifth of the gain, or on a raised background, can come out with no nucleus
found (README, "Other cameras"). The train stage records the range of its fluorescence
training images (:class:`IntensityRange`, in the model file); with ``predict.exposure: fit``
an image outside that range is brought into it before the network sees it
(:func:`fit_exposure`), and an image inside it is left exactly as it is, so nothing changes for
images like the training ones.

Each image is summed up by two figures of its gray values (the mean of its channels): its
99.9th percentile (``top``: its brightest nuclei) and its median (``background``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from nuclei_unet.data.kinds import FLUORESCENCE, image_kind

TOP_PERCENTILE = 99.9


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


@dataclasses.dataclass(frozen=True)
class IntensityRange:
    """What a model's fluorescence training images spanned, in gray levels: the dimmest
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


def intensity_range(images: Iterable[np.ndarray]) -> IntensityRange | None:
    """The :class:`IntensityRange` of the fluorescence images among ``(H, W, 3) uint8``
    ``images`` (stained and brightfield ones are skipped: their exposure is their white
    background); None when there is none."""
    stats = [intensity_stats(image) for image in images if image_kind(image) == FLUORESCENCE]
    if not stats:
        return None
    top, background = np.array(stats, dtype=np.float64).T
    return IntensityRange(
        float(top.min()), float(np.median(top)), float(background.max()),
        float(np.median(background)),
    )


def fit_exposure(image: np.ndarray, trained: IntensityRange) -> np.ndarray:
    """``(H, W, 3) uint8`` brought into the ``trained`` range, as ``(H, W, 3) uint8``.

    A fluorescence image whose background is brighter than any training image's first has
    the excess over the median background subtracted; one whose top is then dimmer than any
    training image's is scaled so that its top is the median top. Any other image, and every
    stained or brightfield image, is returned unchanged (the same array).

    >>> trained = IntensityRange(top_min=30.0, top_median=100.0, background_max=40.0,
    ...                          background_median=5.0)
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
    if image_kind(image) != FLUORESCENCE:
        return image
    top, background = intensity_stats(image)
    if background <= trained.background_max and top >= trained.top_min:
        return image
    x = image.astype(np.float32)
    if background > trained.background_max:
        x -= np.float32(background - trained.background_median)
        top, _ = intensity_stats(np.clip(x, 0, 255))
    if top < trained.top_min:
        # a black image has no top to scale: it stays black
        x *= np.float32(trained.top_median / max(top, 1.0))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def fit_exposures(images: np.ndarray, trained: IntensityRange | None) -> np.ndarray:
    """``(N, H, W, 3) uint8``, each image by :func:`fit_exposure`: the same array when
    ``trained`` is None or no image leaves the range, else a new one."""
    if trained is None:
        return images
    views = list(images)  # one view per image: fit_exposure returns it when unchanged
    fitted = [fit_exposure(view, trained) for view in views]
    if all(f is view for f, view in zip(fitted, views)):
        return images
    return np.stack(fitted)
