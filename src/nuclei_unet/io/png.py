"""A fast decoder for the one PNG kind that dominates DSB2018: 8-bit grayscale masks.

Decoding the 29,461 stage1_train masks is most of the prepare stage's work, and nearly all of it
is inflating long runs of zeros into full-size images that hold one small nucleus each. zlib-ng
inflates those about 15x faster than the zlib that PIL uses, and only the band of rows that can
hold the nucleus is kept and decoded, so the masks go through this module; every other kind of
PNG is left to PIL (or, for images, libspng). For the same reason the full-size label maps are
written by :func:`encode_gray`.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

SIGNATURE = b"\x89PNG\r\n\x1a\n"
PALETTE = 3  # the PNG colour type of palette images
_STORED_BLOCK = 65535  # the largest stored deflate block


def _stored_zlib(raw: bytes) -> bytes:
    """Wrap ``raw`` in a zlib stream of stored (uncompressed) deflate blocks (RFC 1950/1951)."""
    view = memoryview(raw)
    parts = [b"\x78\x01"]
    for start in range(0, len(raw), _STORED_BLOCK):
        block = view[start : start + _STORED_BLOCK]
        final = start + _STORED_BLOCK >= len(raw)
        parts += [struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF), block]
    parts.append(struct.pack(">I", zlib_ng.adler32(raw)))
    return b"".join(parts)


def depth_and_color(data: bytes) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` from a PNG's header, or None if ``data`` is not a PNG."""
    if not data.startswith(SIGNATURE) or len(data) < 26 or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def _gray8_rows(data: bytes) -> np.ndarray | None:
    """Inflate an 8-bit gray, non-interlaced PNG to its rows, still filtered.

    Returns ``(H, 1 + W) uint8`` (column 0: each row's filter type), or None for any other kind
    of image (another bit depth, colour, interlaced, not a PNG). A damaged file raises
    ValueError with the problem in words.
    """
    if not data.startswith(SIGNATURE):
        return None
    ihdr = None
    chunks: list[bytes] = []
    pos = len(SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise ValueError("file ends before the IEND chunk (truncated)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        body, end = pos + 8, pos + 8 + length
        if end + 4 > len(data):  # + 4: the chunk's CRC
            raise ValueError(f"{kind.decode('latin-1')!r} chunk is cut short (truncated)")
        if kind == b"IHDR":
            ihdr = struct.unpack_from(">IIBBBBB", data, body)
        elif kind == b"IDAT":
            chunks.append(data[body:end])
        elif kind == b"IEND":
            break
        pos = end + 4
    if ihdr is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, color, _, _, interlace = ihdr
    if depth != 8 or color != 0 or interlace:
        return None
    stride = width + 1  # a filter-type byte, then one byte per pixel
    try:
        # the exact output size up front: growing the buffer while inflating cost about 15 % more
        raw = zlib_ng.decompress(
            chunks[0] if len(chunks) == 1 else b"".join(chunks), bufsize=max(height * stride, 1)
        )
    except zlib_ng.error as exc:
        raise ValueError(f"image data does not inflate ({exc})") from exc
    if len(raw) != height * stride:
        raise ValueError(f"image data has {len(raw)} bytes, expected {height * stride}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, stride)


@dataclasses.dataclass(frozen=True)
class Band:
    """The rows of an 8-bit gray PNG that can hold non-zero pixels, still filtered.

    Every pixel outside rows ``top .. top + height`` is 0. ``rows`` holds those rows as PNG
    stores them: ``height * (1 + width)`` bytes, each row a filter-type byte and its pixels.
    """

    size: tuple[int, int]  # (H, W) of the whole image
    top: int
    height: int
    rows: bytes


def gray8_band(data: bytes) -> Band | None:
    """Find the rows of an 8-bit gray PNG that can hold non-zero pixels (see :class:`Band`).

    None and ValueError as :func:`_gray8_rows`. A one-nucleus mask is a few dozen non-zero
    rows of a large image: one pass over the inflated bytes finds them, and only they are
    kept (copied out, so the inflated image is freed at once) and decoded later.
    """
    rows = _gray8_rows(data)
    if rows is None:
        return None
    height, stride = rows.shape
    # A row whose bytes, filter type included, are all zero is an unfiltered row of zeros.
    live = np.flatnonzero(rows.max(axis=1))
    if live.size == 0:
        return Band((height, stride - 1), 0, 0, b"")
    top, bottom = int(live[0]), int(live[-1]) + 1
    return Band((height, stride - 1), top, bottom - top, rows[top:bottom].tobytes())


def unfilter_bands(bands: Sequence[Band]) -> tuple[np.ndarray, np.ndarray]:
    """Decode bands of images of one width, all in one array.

    Returns ``(decoded (T, W) uint8, starts (n,) intp)``: band ``i`` is
    ``decoded[starts[i] : starts[i] + bands[i].height]``, and the rows between bands are zeros.
    Undoing the PNG row filters (Sub, Up, Average, Paeth) is sequential per-pixel work, which
    PIL's C decoder does. Its fixed cost per call is several times the work of one band, so all
    bands go through one call, stacked with a row of zeros (filter type 0) between them: a band
    decodes on its own, since the row above it in its image is a row of zeros, which is also
    what a PNG decoder assumes above an image's first row. They are given as a stored zlib
    stream so that they are not inflated again.
    """
    widths = {band.size[1] for band in bands}
    if len(widths) != 1:
        raise ValueError(f"bands of one call must share one width, got {sorted(widths)}")
    width = widths.pop()
    heights = np.array([band.height for band in bands], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(heights[:-1] + 1)]).astype(np.intp)
    total = int(heights.sum()) + len(bands) - 1
    if total == 0:  # one all-zero image
        return np.zeros((0, width), np.uint8), starts
    stacked = bytes(width + 1).join(band.rows for band in bands)
    decoded = Image.frombytes("L", (width, total), _stored_zlib(stacked), "zip", "L")
    return np.asarray(decoded), starts


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type and data."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib_ng.crc32(kind + body))


def encode_gray(pixels: np.ndarray, level: int = 1) -> bytes:
    """Encode ``(H, W) uint8`` or ``uint16`` as a grayscale PNG (no row filters, zlib-ng)."""
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a 2-D uint8 or uint16 array, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape
    depth = pixels.dtype.itemsize * 8
    rows = np.zeros((height, 1 + width * pixels.dtype.itemsize), dtype=np.uint8)
    # PNG stores 16-bit samples big-endian; column 0 is each row's filter type (0: none)
    rows[:, 1:] = pixels.astype(pixels.dtype.newbyteorder(">")).view(np.uint8).reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    return b"".join(
        [
            SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib_ng.compress(rows.tobytes(), level)),
            _chunk(b"IEND", b""),
        ]
    )
