"""The fast PNG mask decoder and label encoder against PIL, with PNGs built by hand here."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage.transform import resize

from nuclei_unet.errors import DataError
from nuclei_unet.io import read_mask_box, write_png
from nuclei_unet.png import decode_gray8, encode_gray
from nuclei_unet.prepare import resize_image

NONE, SUB, UP, AVERAGE, PAETH = range(5)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered_row(row: np.ndarray, prior: np.ndarray, kind: int) -> bytes:
    """PNG-filter one 8-bit gray row (the spec's definitions, pixel by pixel)."""
    out = []
    for x, raw in enumerate(row.astype(int)):
        a = int(row[x - 1]) if x else 0
        b = int(prior[x])
        c = int(prior[x - 1]) if x else 0
        predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
        out.append((raw - predictor) % 256)
    return bytes([kind] + out)


def _png(pixels: np.ndarray, kinds: list[int], depth: int = 8, color: int = 0) -> bytes:
    """A gray 8-bit PNG of ``pixels`` with row filter ``kinds[r]``, split over two IDATs."""
    height, width = pixels.shape
    prior = np.zeros(width, np.uint8)
    data = b""
    for r in range(height):
        data += _filtered_row(pixels[r], prior, kinds[r])
        prior = pixels[r]
    stream = zlib.compress(data, 9)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    half = len(stream) // 2
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream[:half])
        + chunk(b"IDAT", stream[half:]) + chunk(b"IEND", b"")
    )


def _nucleus(height: int = 24, width: int = 31) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    pixels = np.zeros((height, width), np.uint8)
    pixels[(yy - 12) ** 2 + (xx - 14) ** 2 <= 30] = 255
    pixels[3, 5] = 7  # a stray non-binary value: the filters must be undone exactly
    return pixels


@pytest.mark.parametrize(
    "kinds",
    [
        [NONE] * 24,
        [SUB] * 24,
        [UP] * 24,
        [AVERAGE] * 24,
        [PAETH] * 24,
        # a band in the middle, below a row of the nucleus that it predicts from
        [NONE] * 10 + [PAETH, SUB, UP, AVERAGE] * 3 + [NONE] * 2,
        [PAETH] + [NONE] * 23,  # a filtered first row: its prior row is zeros
        [NONE] * 23 + [AVERAGE],
    ],
    ids=["none", "sub", "up", "average", "paeth", "band", "first-row", "last-row"],
)
def test_decode_undoes_every_row_filter(kinds):
    pixels = _nucleus()
    data = _png(pixels, kinds)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)  # the fixture
    np.testing.assert_array_equal(decode_gray8(data), pixels)


def test_other_png_kinds_are_left_to_pil(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, "PNG")
    assert decode_gray8(buf.getvalue()) is None  # RGB
    assert decode_gray8(b"GIF89a") is None  # not a PNG
    assert decode_gray8(_png(_nucleus(), [NONE] * 24, depth=16)) is None
    # a 16-bit mask still reads, through PIL
    mask = np.zeros((8, 9), np.uint16)
    mask[2:5, 3:7] = 65535
    Image.fromarray(mask).save(tmp_path / "m.png")
    size, box, crop = read_mask_box(tmp_path / "m.png")
    assert size == (8, 9) and box == (2, 3, 5, 7) and crop.all()


def test_mask_box_from_the_fast_path(tmp_path):
    pixels = np.zeros((20, 30), np.uint8)
    pixels[4:9, 10:13] = 255
    pixels[6, 20] = 255
    (tmp_path / "m.png").write_bytes(_png(pixels, [PAETH] * 20))
    size, box, crop = read_mask_box(tmp_path / "m.png")
    assert size == (20, 30) and box == (4, 10, 9, 21)
    np.testing.assert_array_equal(crop, pixels[4:9, 10:21] > 0)
    (tmp_path / "e.png").write_bytes(_png(np.zeros((5, 6), np.uint8), [UP] * 5))
    size, box, crop = read_mask_box(tmp_path / "e.png")
    assert size == (5, 6) and box is None and crop.shape == (0, 0)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[: len(d) - 20], "truncated"),
        (lambda d: d[:60] + bytes(8) + d[68:], "does not inflate"),
        (lambda d: d[:8] + d[33:], "no IHDR chunk"),
    ],
    ids=["truncated", "corrupt-data", "no-header"],
)
def test_damaged_mask_is_a_clear_error(tmp_path, damage, message):
    data = _png(_nucleus(), [PAETH] * 24)
    (tmp_path / "m.png").write_bytes(damage(data))
    with pytest.raises(DataError, match=rf"m.png: cannot decode image \(.*{message}"):
        read_mask_box(tmp_path / "m.png")


@pytest.mark.parametrize("dtype, value", [(np.uint8, 200), (np.uint16, 40000)])
def test_encode_round_trips_through_pil(tmp_path, dtype, value):
    labels = np.zeros((7, 11), dtype)
    labels[2:4, 3:9] = value
    labels[6, 10] = 1
    write_png(tmp_path / "l.png", labels)
    back = np.asarray(Image.open(tmp_path / "l.png"))
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_array_equal(decode_gray8(encode_gray(labels.astype(np.uint8))), labels.astype(np.uint8))
    with pytest.raises(ValueError, match="2-D uint8 or uint16"):
        encode_gray(labels.astype(np.float32))


@pytest.mark.parametrize("gray", [True, False], ids=["gray", "colour"])
def test_resize_image_is_the_seed_resize(gray):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (97, 143, 3), dtype=np.uint8)
    if gray:
        image[:, :, 1] = image[:, :, 2] = image[:, :, 0]
    seed = resize(image, (32, 32), mode="constant", preserve_range=True).astype(np.uint8)
    np.testing.assert_array_equal(resize_image(image, 32), seed)
