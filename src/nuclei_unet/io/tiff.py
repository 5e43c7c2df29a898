"""TIFF in and out: which plane of a multi-channel input to read, and label images as TIFF
for Fiji, napari, QuPath and CellProfiler, with the pixel size kept."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile

from nuclei_unet.errors import DataError
from nuclei_unet.io.files import atomic_path

log = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
# TIFF ResolutionUnit values: 2 inch, 3 centimetre (1 none); micrometres per unit
_MICRONS_PER_UNIT = {2: 25400.0, 3: 10000.0}


@dataclasses.dataclass(frozen=True)
class PixelSize:
    """The side of one pixel: ``x`` and ``y`` in micrometres."""

    x: float
    y: float


def _resolution(tag: tifffile.TiffTag | None) -> float | None:
    """A rational resolution tag (pixels per unit) as a float; None when absent or zero."""
    if tag is None:
        return None
    num, den = tag.value
    return num / den if num and den else None


def _pixel_size(tif: tifffile.TiffFile) -> PixelSize | None:
    """The pixel size an open TIFF records (ImageJ's ``unit`` or the resolution unit), in µm;
    None without a physical one."""
    page = tif.pages.first
    xres, yres = _resolution(page.tags.get("XResolution")), _resolution(page.tags.get("YResolution"))
    if xres is None or yres is None:
        return None
    unit = (tif.imagej_metadata or {}).get("unit")
    if unit in ("micron", "um", "µm", "\\u00B5m"):
        per_unit = 1.0
    else:
        per_unit = _MICRONS_PER_UNIT.get(int(page.tags["ResolutionUnit"].value), 0.0) \
            if "ResolutionUnit" in page.tags else 0.0
    if not per_unit:
        return None
    return PixelSize(per_unit / xres, per_unit / yres)


def _recorded_pixel_size(path: str | Path, tif: tifffile.TiffFile) -> PixelSize | None:
    """:func:`_pixel_size`, or None with a warning naming ``path`` when the resolution tags
    are malformed: the pixels are still worth segmenting, only without a physical size."""
    try:
        return _pixel_size(tif)
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("%s: malformed resolution tags (%s): the pixel size is not known", path, exc)
        return None


# tifffile's axis letters: C is a channel; Q (unknown) and I (image sequence) are the pages of
# a TIFF that names no axes, as often channels as not. The rest (Z, T, ...) stack planes of
# one channel, of which the model segments only one.
_CHANNEL_AXES = "CQI"
_PLANE_AXES = "YXS"


@dataclasses.dataclass(frozen=True)
class TiffPlane:
    """The plane :func:`read_tiff` read: ``pixels``, ``(H, W)`` or ``(H, W, S)`` values as
    stored; the ``sample`` of it to segment (None: all); the file's ``pixel_size`` (None: none
    recorded), read from the same open file."""

    pixels: np.ndarray
    sample: int | None
    pixel_size: PixelSize | None


def read_tiff(path: str | Path, data: bytes, channel: int | None) -> TiffPlane:
    """The plane of the TIFF ``path`` (its bytes: ``data``) to segment, decoded by tifffile as
    stored (16-bit colour kept 16-bit, where PIL keeps the high byte), the sample of it that
    ``channel`` picks, and the pixel size its tags record.

    The plane is found from the first series' axes (size-1 axes dropped). One plane (``YX``,
    or ``YXS`` in colour) is read whole; ``channel`` then picks a sample of a colour plane.
    Several channels (``CYX``, or pages without axis names) need ``channel``, the 0-based
    index of the nuclear stain: guessing would segment the wrong stain without a word; so do
    the samples of a gray page but its alpha (``YXS`` of two or four stains). Stacks
    (``Z``, ``T``, ...) are refused: the model segments one 2-D plane. Palette images come back
    as their colours, min-is-white ones inverted. Every refusal is a DataError naming ``path``,
    its axes and its shape.
    """
    if not data:
        raise DataError(f"{path}: cannot read the TIFF (the file is empty)")
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            index, sample = _plane(path, series.axes, tuple(series.shape), channel)
            page = series.pages[index]
            pixels = _pixels(page.keyframe, page.asarray())
            n = _gray_samples(page.keyframe)
            if n > 1 and (channel is None or sample is not None):  # not spent on a page
                described = f"{n} gray samples of one page, shape {_dims(pixels.shape)}"
                pixels, sample = pixels[:, :, _pick(path, n, channel, described)], None
            return TiffPlane(pixels, sample, _recorded_pixel_size(path, tif))
    except (tifffile.TiffFileError, IndexError, ValueError, KeyError, OSError) as exc:
        raise DataError(f"{path}: cannot read the TIFF ({exc})") from exc


def _dims(sizes: Iterable[int]) -> str:
    """Sizes as a user reads them: ``(2, 3, 4)`` -> ``'2x3x4'``."""
    return "x".join(str(n) for n in sizes)


def _plane(
    path: str | Path, axes: str, shape: tuple[int, ...], channel: int | None
) -> tuple[int, int | None]:
    """:func:`read_tiff`'s choice: the index of the plane's page in its series, and the sample."""
    described = f"axes {axes}, shape {_dims(shape)}"
    planes = {axis: n for axis, n in zip(axes, shape) if axis not in _PLANE_AXES and n > 1}
    if len(planes) > 1 or any(axis not in _CHANNEL_AXES for axis in planes):
        raise DataError(
            f"{path}: a stack of {_dims(planes.values())} planes ({described});"
            " the model segments one 2-D image: save the plane to segment as its own file"
        )
    if not planes:
        return 0, channel
    (n,) = planes.values()
    # tifffile's series keep one page per plane of the YX(S) axes
    return _pick(path, n, channel, described), None


def _pick(path: str | Path, n: int, channel: int | None, described: str) -> int:
    """``channel`` of the ``n`` channels of ``path``, or a DataError naming them."""
    if channel is None:
        raise DataError(
            f"{path}: {n} channels ({described}); pick the nuclear stain's with "
            f"nuclei-unet predict --channel (0 to {n - 1})"
        )
    if channel >= n:
        raise DataError(f"{path}: no channel {channel}: it has {n} ({described})")
    return channel


def _gray_samples(key: tifffile.TiffPage) -> int:
    """How many channels a page's samples hold: a gray page's samples but its alpha are each
    a channel of their own (two or four stains in one page); colour samples are one image."""
    if key.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE):
        return 1
    alpha = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)
    return key.samplesperpixel - sum(extra in alpha for extra in key.extrasamples)


def _pixels(key: tifffile.TiffPage, arr: np.ndarray) -> np.ndarray:
    """A decoded page ``arr`` as ``(H, W)`` or ``(H, W, S)`` values that look as the file
    means them: samples last, a palette's indices as its colours, min-is-white inverted."""
    if arr.ndim == 3 and key.axes.startswith("S"):  # planar: samples stored plane by plane
        arr = np.moveaxis(arr, 0, -1)
    if key.photometric == tifffile.PHOTOMETRIC.PALETTE:
        return np.moveaxis(key.colormap[:, arr], 0, -1)  # (3, H, W) uint16 -> (H, W, 3)
    if key.photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        if arr.dtype == bool:
            return ~arr
        if arr.dtype.kind == "u":
            return np.iinfo(arr.dtype).max - arr
    return arr


def write_labels_tif(path: str | Path, labels: np.ndarray, pixel_size: PixelSize | None) -> None:
    """Write ``(H, W)`` instance labels as a zlib-compressed TIFF, atomically.

    uint16 (ImageJ's format, with the pixel size in µm when known) up to 65,535 nuclei,
    uint32 beyond (a plain TIFF, which Bio-Formats, napari and QuPath read).
    """
    wide = int(labels.max(initial=0)) > np.iinfo(np.uint16).max
    data = labels.astype(np.uint32 if wide else np.uint16)
    kwargs: dict = {"compression": "zlib", "imagej": not wide}
    if pixel_size is not None:
        kwargs["resolution"] = (1.0 / pixel_size.x, 1.0 / pixel_size.y)
        if wide:
            kwargs["resolutionunit"] = "CENTIMETER"
            kwargs["resolution"] = (1e4 / pixel_size.x, 1e4 / pixel_size.y)
        else:
            kwargs["metadata"] = {"unit": "um"}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)
