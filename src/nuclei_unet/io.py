"""File helpers: atomic writes, image/mask reading with clear errors, JSON."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyspng
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .png import PALETTE, Band, depth_and_color, encode_gray, gray8_band, unfilter_bands


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success move it onto ``dest``.

    Works for files and folders. On an exception the temporary is removed and ``dest`` is left
    as it was, so an interrupted stage never leaves a half-written output.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    target = tmp / dest.name
    try:
        yield target
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(target, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence | dict]) -> None:
    """Write a CSV with ``header`` atomically; dict rows are matched to the header by key
    (missing keys are left empty)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for row in rows:
                writer.writerow([row.get(k, "") for k in header] if isinstance(row, dict) else row)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or malformed file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def _read_bytes(path: str | Path) -> bytes:
    """A whole file's bytes, with fewer system calls than ``open().read()`` (the 29,461 DSB
    masks are small files, and this is a third faster on them). A missing or unreadable file
    is a DataError naming it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size)
        while len(data) < size:  # a short read, which POSIX allows: ask for the rest
            more = os.read(fd, size - len(data))
            if not more:
                break  # the file shrank meanwhile: the decoder then reports it truncated
            data += more
        return data
    except OSError as exc:  # e.g. a folder where a file should be
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    finally:
        os.close(fd)


def _load(path: Path, data: bytes | None = None) -> Image.Image:
    """Open and fully decode an image (from ``data``, its bytes, when already read); missing,
    corrupt or truncated files are DataErrors naming ``path``."""
    try:
        im = Image.open(path if data is None else io.BytesIO(data))
        im.load()  # decodes now (truncation shows here); PIL then closes the file it opened
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc
    return im


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale pixel values to uint8.

    bool becomes 0/255; integers deeper than 8 bits are scaled by their bit depth, taken as the
    smallest of 8..16 bits that holds the maximum (so 12-bit data in a 16-bit file is not dark);
    floats are read as [0, 1] when their maximum is at most 1, else as [0, 255].
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in "ui":
        top = int(arr.max(initial=0))
        bits = min(max(8, top.bit_length()), 16)
        scale = 255.0 / (2**bits - 1)
    elif arr.dtype.kind == "f":
        scale = 255.0 if float(arr.max(initial=0.0)) <= 1.0 else 1.0
    else:
        raise DataError(f"unsupported pixel type {arr.dtype}")
    return np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)


# PIL modes that np.asarray turns into pixel values; others (palette, CMYK, ...) are converted
_ARRAY_MODES = {"1", "L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F"}


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3) uint8`` RGB: alpha dropped, gray expanded, 16-bit scaled.

    PNGs with 8-bit samples (every DSB image) are decoded by libspng, straight to RGB, in half
    the time PIL takes; any other file goes through PIL.
    """
    path = Path(path)
    data = _read_bytes(path)
    kind = depth_and_color(data)
    if kind is not None and (kind[0] == 8 or kind[1] == PALETTE):
        try:
            return pyspng.load(data, format="RGB")
        except RuntimeError as exc:  # pyspng reports every decoding problem so
            raise DataError(f"{path}: cannot decode image ({exc})") from exc
    im = _load(path, data)
    if im.mode not in _ARRAY_MODES:
        im = im.convert("RGB")  # a palette's indices are not pixel values
    arr = np.asarray(im)
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
        return np.ascontiguousarray(to_uint8(arr))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def read_mask(path: str | Path) -> np.ndarray:
    """Read a single-nucleus mask as ``(H, W) bool`` (any non-zero pixel is the nucleus)."""
    path = Path(path)
    arr = np.asarray(_load(path))
    if arr.ndim == 3:
        arr = arr[:, :, :3].max(axis=2)
    if arr.ndim != 2:
        raise DataError(f"{path}: unexpected mask shape {arr.shape}")
    return arr > 0


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
        data = _read_bytes(path)
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
