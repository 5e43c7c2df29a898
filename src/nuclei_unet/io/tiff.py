"""Label images as TIFF for Fiji, napari, QuPath and CellProfiler, with the pixel size kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tifffile

from nuclei_unet.errors import DataError
from nuclei_unet.io.files import atomic_path

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


def read_pixel_size(path: str | Path) -> PixelSize | None:
    """The pixel size a TIFF records (ImageJ's ``unit`` or the resolution unit), in µm; None
    for other files, or a TIFF without a physical one."""
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        return _pixel_size(path)
    except (tifffile.TiffFileError, OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the TIFF tags ({exc})") from exc


def _pixel_size(path: str | Path) -> PixelSize | None:
    with tifffile.TiffFile(path) as tif:
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
