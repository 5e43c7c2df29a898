"""File helpers: atomic writes, image/mask reading with clear errors, JSON."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .png import decode_gray8, encode_gray


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


def _load(path: Path) -> Image.Image:
    """Open and fully decode an image; missing, corrupt or truncated files are DataErrors."""
    try:
        im = Image.open(path)
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


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3) uint8`` RGB: alpha dropped, gray expanded, 16-bit scaled."""
    path = Path(path)
    arr = np.asarray(_load(path))
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


def read_mask_box(path: str | Path) -> tuple[tuple[int, int], tuple[int, int, int, int] | None, np.ndarray]:
    """Read a single-nucleus mask as its size, bounding box and the cropped mask.

    Returns ``((H, W), (top, left, bottom, right) or None when empty, (h, w) bool crop)``.
    8-bit gray PNGs (nearly every DSB mask) go through the fast decoder in :mod:`.png`; any
    other file through PIL, cropped there, which avoids several full-image numpy passes per
    mask (a large image can have hundreds of masks, each as big as the image).
    """
    path = Path(path)
    try:
        pixels = decode_gray8(path.read_bytes())
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except ValueError as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc
    if pixels is not None:
        size = pixels.shape
        rows = np.flatnonzero(pixels.max(axis=1))  # max: ~10x faster than flatnonzero(pixels)
        if rows.size == 0:
            return size, None, np.zeros((0, 0), bool)
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        cols = np.flatnonzero(pixels[top:bottom].max(axis=0))
        left, right = int(cols[0]), int(cols[-1]) + 1
        return size, (top, left, bottom, right), pixels[top:bottom, left:right] > 0
    im = _load(path)
    if im.mode not in ("1", "L", "I;16", "I"):
        im = im.convert("L")  # RGB(A) or palette masks: any non-black pixel is the nucleus
    box = im.getbbox()  # bounding box of the non-zero pixels, computed in C
    size = (im.height, im.width)
    crop = np.asarray(im.crop(box)) > 0 if box else np.zeros((0, 0), bool)
    if box is None:
        return size, None, crop
    left, top, right, bottom = box
    return size, (top, left, bottom, right), crop


def write_png(path: str | Path, arr: np.ndarray, compress_level: int = 1) -> None:
    """Write ``(H, W)`` uint8/uint16 or ``(H, W, 3|4)`` uint8 as PNG, atomically."""
    with atomic_path(path) as tmp:
        if arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16):
            tmp.write_bytes(encode_gray(arr, compress_level))
        else:
            Image.fromarray(arr).save(tmp, format="PNG", compress_level=compress_level)
