"""Images, masks and label maps: decoding any input to known dtypes, writing PNGs atomically."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyspng
from PIL import Image, UnidentifiedImageError

from nuclei_unet.errors import DataError
from nuclei_unet.io.files import atomic_path, read_bytes
from nuclei_unet.io.png import (
    PALETTE,
    Band,
    depth_and_color,
    encode_gray,
    gray8_band,
    unfilter_bands,
)
from nuclei_unet.io.tiff import TIFF_SUFFIXES, PixelSize, read_tiff

log = logging.getLogger(__name__)

# the files a folder of inputs is read for, PNG first (a DSB sample's image is found in this order)
IMAGE_SUFFIXES = (".png", *TIFF_SUFFIXES, ".jpg", ".jpeg")


def _load(path: Path, data: bytes | None = None) -> Image.Image:
    """Open and fully decode an image (from ``data``, its bytes, when already read); missing,
    corrupt or truncated files are DataErrors naming ``path``."""
    if data is not None and not data:
        raise DataError(f"{path}: cannot decode image (the file is empty)")
    try:
        im = Image.open(path if data is None else io.BytesIO(data))
        im.load()  # decodes now (truncation shows here); PIL then closes the file it opened
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except UnidentifiedImageError as exc:  # its message names the buffer, not the file
        raise DataError(f"{path}: cannot decode image (not an image file: PNG, TIF or JPG expected)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc
    return im


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale pixel values (any shape; bool, integer or finite float) to uint8.

    bool becomes 0/255; integers deeper than 8 bits are scaled by their bit depth, taken as the
    smallest number of bits, 8 or more, that holds the maximum (so 12-bit data in a 16-bit file
    is not dark, and 24-bit counts in a 32-bit file are not clipped); floats are read as [0, 1]
    when their maximum is at most 1, else as the integers they round to (a 32-bit float image
    of 12-bit counts reads as the 12-bit image does). Negative values read as 0.

    >>> to_uint8(np.array([0, 4095], np.uint16))
    array([  0, 255], dtype=uint8)
    >>> to_uint8(np.array([0, 70000, 131071], np.uint32))
    array([  0, 136, 255], dtype=uint8)
    >>> to_uint8(np.array([0.0, 0.5, 1.0], np.float32))
    array([  0, 128, 255], dtype=uint8)
    >>> to_uint8(np.array([-3.0, 1000.0, 4095.0], np.float32))
    array([  0,  62, 255], dtype=uint8)
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind not in "uif":
        raise DataError(f"unsupported pixel type {arr.dtype}")
    top = arr.max(initial=0)
    if arr.dtype.kind == "f" and top <= 1.0:
        scale = 255.0
    else:
        scale = 255.0 / (2 ** max(8, int(np.rint(top)).bit_length()) - 1)
    return np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def finite_pixels(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` with NaN and infinite values read as 0, with a warning naming ``path`` (a
    registered or masked float image has them at its borders); a DataError when none is finite.
    Integer and bool arrays are returned as they are."""
    if arr.dtype.kind != "f":
        return arr
    bad = ~np.isfinite(arr)
    if not bad.any():
        return arr
    if bad.all():
        raise DataError(f"{path}: no pixel has a finite value (all NaN or infinite)")
    log.warning("%s: %d of %d values are NaN or infinite: read as 0", path, int(bad.sum()), bad.size)
    return np.where(bad, 0, arr)


# PIL modes that np.asarray turns into pixel values; others (palette, CMYK, ...) are converted
_ARRAY_MODES = {"1", "L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F"}


def read_image(path: str | Path, channel: int | None = None) -> np.ndarray:
    """Read an image as ``(H, W, 3) uint8`` RGB: alpha dropped, gray expanded, 16-bit scaled.

    ``channel`` (0-based) reads one channel of a multi-channel image as gray: a TIFF's channel
    (see :func:`~nuclei_unet.io.tiff.read_tiff`, which also refuses stacks, and TIFFs of
    several channels when ``channel`` is None), or R, G or B of a colour image. TIFFs are
    decoded by tifffile; PNGs with 8-bit samples (every DSB image) read whole by libspng,
    straight to RGB, in half the time PIL takes; any other file by PIL.
    """
    return read_image_and_pixel_size(path, channel)[0]


def read_image_and_pixel_size(
    path: str | Path, channel: int | None = None
) -> tuple[np.ndarray, PixelSize | None]:
    """:func:`read_image`, and the pixel size a TIFF records (None for other files, or a TIFF
    without one), from one read of the file."""
    path = Path(path)
    data = read_bytes(path)
    sample, pixel_size = channel, None
    if path.suffix.lower() in TIFF_SUFFIXES:
        plane = read_tiff(path, data, channel)
        arr, sample, pixel_size = plane.pixels, plane.sample, plane.pixel_size
    else:
        if channel is None:
            kind = depth_and_color(data)
            if kind is not None and (kind[0] == 8 or kind[1] == PALETTE):
                try:
                    return pyspng.load(data, format="RGB"), None
                except RuntimeError as exc:  # pyspng reports every decoding problem so
                    raise DataError(f"{path}: cannot decode image ({exc})") from exc
        im = _load(path, data)
        if im.mode not in _ARRAY_MODES:
            im = im.convert("RGB")  # a palette's indices are not pixel values
        arr = np.asarray(im)
    if sample is not None:
        arr = _sample(arr, sample, path)
    arr = finite_pixels(arr, path)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (1, 2):
        # gray (+ alpha): keep the gray channel
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[:, :, :3]
    else:
        raise DataError(f"{path}: unexpected image shape {arr.shape}")
    try:
        return np.ascontiguousarray(to_uint8(arr)), pixel_size
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _sample(arr: np.ndarray, channel: int, path: Path) -> np.ndarray:
    """Channel ``channel`` of ``arr``, ``(H, W)`` or ``(H, W, S)``, as ``(H, W)``; alpha is
    not a channel (gray + alpha has one, RGB(A) three)."""
    count = 1 if arr.ndim == 2 else (1 if arr.shape[2] <= 2 else 3)
    if channel >= count:
        raise DataError(f"{path}: no channel {channel}: it has {count}")
    return arr if arr.ndim == 2 else arr[:, :, channel]


def read_labels(path: str | Path) -> np.ndarray:
    """Read an instance label map written by :func:`write_png`: ``(H, W)`` integer labels."""
    arr = np.asarray(_load(Path(path)))
    if arr.ndim != 2:
        raise DataError(f"{path}: a label map must have one channel, got shape {arr.shape}")
    return arr


@dataclasses.dataclass(frozen=True)
class MaskRows:
    """A single-nucleus mask as the band of rows that holds its pixels.

    ``rows`` is ``(h, W) bool``, the mask's rows ``top .. top + h``; every pixel outside them is
    background (``h`` is 0 for an empty mask).
    """

    size: tuple[int, int]  # (H, W) of the whole mask
    top: int
    rows: np.ndarray


def _pil_mask_rows(path: Path, data: bytes) -> MaskRows:
    """:func:`read_mask_rows` for a mask (``data``, its bytes) that is not an 8-bit gray PNG."""
    im = _load(path, data)
    if im.mode not in ("1", "L", "I;16", "I"):
        im = im.convert("L")  # RGB(A) or palette masks: any non-black pixel is the nucleus
    box = im.getbbox()  # bounding box of the non-zero pixels, computed in C
    size = (im.height, im.width)
    if box is None:
        return MaskRows(size, 0, np.zeros((0, im.width), bool))
    _, top, _, bottom = box
    return MaskRows(size, top, np.asarray(im.crop((0, top, im.width, bottom))) > 0)


def read_mask_rows(paths: Sequence[str | Path]) -> list[MaskRows]:
    """Read single-nucleus masks as the bands of rows that hold their pixels, in order.

    8-bit gray PNGs (nearly every DSB mask) go through the fast decoder in :mod:`.png`, the masks
    of one width decoded together; any other file through PIL. Either way no full-image array
    is made per mask (a large image can have hundreds of masks, each as big as the image).
    """
    out: dict[int, MaskRows] = {}  # by position in paths
    bands: dict[int, list[tuple[int, Band]]] = {}  # by width: (position in paths, band)
    for i, path in enumerate(paths):  # no Path() per mask: parsing 29,461 paths costs 0.5 s
        data = read_bytes(path)
        try:
            band = gray8_band(data)
        except ValueError as exc:
            raise DataError(f"{path}: cannot decode image ({exc})") from exc
        if band is None:
            out[i] = _pil_mask_rows(Path(path), data)
        else:
            bands.setdefault(band.size[1], []).append((i, band))
    for group in bands.values():
        decoded, starts = unfilter_bands([band for _, band in group])
        for (i, band), start in zip(group, starts.tolist()):
            out[i] = MaskRows(band.size, band.top, decoded[start : start + band.height] > 0)
    return [out[i] for i in range(len(paths))]


def write_png(path: str | Path, arr: np.ndarray, compress_level: int = 1) -> None:
    """Write ``(H, W)`` uint8/uint16 or ``(H, W, 3|4)`` uint8 as PNG, atomically."""
    with atomic_path(path) as tmp:
        if arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16):
            tmp.write_bytes(encode_gray(arr, compress_level))
        else:
            Image.fromarray(arr).save(tmp, format="PNG", compress_level=compress_level)
