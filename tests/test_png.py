"""The fast PNG mask decoder and label encoder against PIL, with PNGs built by hand here."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from nuclei_unet.errors import DataError
from nuclei_unet.io.images import read_image, read_mask_rows, write_png
from nuclei_unet.io.png import encode_gray, gray8_band, unfilter_bands

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


def _decode(data: bytes) -> np.ndarray:
    """The whole image, from the fast decoder's band."""
    band = gray8_band(data)
    decoded, starts = unfilter_bands([band])
    pixels = np.zeros(band.size, np.uint8)
    pixels[band.top : band.top + band.height] = decoded[starts[0] : starts[0] + band.height]
    return pixels


def _read_mask(path):
    """One mask through :func:`read_mask_rows`."""
    (mask,) = read_mask_rows([path])
    return mask


def _whole(mask) -> np.ndarray:
    """The full ``(H, W) bool`` mask from its band of rows."""
    full = np.zeros(mask.size, bool)
    full[mask.top : mask.top + len(mask.rows)] = mask.rows
    return full


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
    np.testing.assert_array_equal(_decode(data), pixels)


def test_other_png_kinds_are_left_to_pil(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, "PNG")
    assert gray8_band(buf.getvalue()) is None  # RGB
    assert gray8_band(b"GIF89a") is None  # not a PNG
    assert gray8_band(_png(_nucleus(), [NONE] * 24, depth=16)) is None
    # a 16-bit mask still reads, through PIL
    mask = np.zeros((8, 9), np.uint16)
    mask[2:5, 3:7] = 65535
    Image.fromarray(mask).save(tmp_path / "m.png")
    got = _read_mask(tmp_path / "m.png")
    assert got.size == (8, 9) and got.top == 2 and got.rows.shape == (3, 9)
    np.testing.assert_array_equal(_whole(got), mask > 0)
    Image.fromarray(np.zeros((8, 9), np.uint16)).save(tmp_path / "e.png")
    assert _read_mask(tmp_path / "e.png").rows.shape == (0, 9)


def test_mask_rows_from_the_fast_path(tmp_path):
    pixels = np.zeros((20, 30), np.uint8)
    pixels[4:9, 10:13] = 255
    pixels[6, 20] = 255
    (tmp_path / "m.png").write_bytes(_png(pixels, [NONE] * 4 + [PAETH] * 16))
    got = _read_mask(tmp_path / "m.png")
    # rows 9.. are Paeth-filtered zeros: they stay in the band, as background
    assert got.size == (20, 30) and got.top == 4 and got.rows.shape == (16, 30)
    np.testing.assert_array_equal(_whole(got), pixels > 0)
    (tmp_path / "e.png").write_bytes(_png(np.zeros((5, 6), np.uint8), [NONE] * 5))
    got = _read_mask(tmp_path / "e.png")
    assert got.size == (5, 6) and got.rows.shape == (0, 6)


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
        _read_mask(tmp_path / "m.png")


@pytest.mark.parametrize("dtype, value", [(np.uint8, 200), (np.uint16, 40000)])
def test_encode_round_trips_through_pil(tmp_path, dtype, value):
    labels = np.zeros((7, 11), dtype)
    labels[2:4, 3:9] = value
    labels[6, 10] = 1
    write_png(tmp_path / "l.png", labels)
    back = np.asarray(Image.open(tmp_path / "l.png"))
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_array_equal(_decode(encode_gray(labels.astype(np.uint8))), labels.astype(np.uint8))
    with pytest.raises(ValueError, match="2-D uint8 or uint16"):
        encode_gray(labels.astype(np.float32))


def test_bands_of_many_masks_decode_together():
    """One decoder call for many masks gives each mask exactly, whatever came before it."""
    nucleus = _nucleus()
    shifted = np.zeros_like(nucleus)
    shifted[14:, :] = nucleus[:10, :]
    pngs = [
        _png(nucleus, [PAETH] * 24),
        _png(np.zeros_like(nucleus), [NONE] * 24),  # an empty mask between two others
        _png(shifted, [UP] * 24),
        _png(nucleus, [NONE] * 10 + [AVERAGE, SUB] * 7),
        _png(np.zeros_like(nucleus), [SUB] * 24),  # an empty mask last
    ]
    bands = [gray8_band(data) for data in pngs]
    # no non-zero byte: no band; filter bytes on zero rows: a band that decodes to zeros
    assert bands[1].height == 0 and bands[4].height == 24
    decoded, starts = unfilter_bands(bands)
    for data, band, start in zip(pngs, bands, starts):
        pixels = np.asarray(Image.open(io.BytesIO(data)))
        np.testing.assert_array_equal(decoded[start : start + band.height], pixels[band.top : band.top + band.height])
        assert not pixels[: band.top].any() and not pixels[band.top + band.height :].any()
    with pytest.raises(ValueError, match="one width"):
        unfilter_bands([bands[0], gray8_band(_png(np.zeros((3, 5), np.uint8), [NONE] * 3))])


def _pil_png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=["L", "LA", "RGB", "RGBA"])
def test_8bit_images_read_as_pil_converts_them(tmp_path, channels):
    rng = np.random.default_rng(channels)
    # smooth gradients plus noise, so that PIL's encoder picks several row filters
    ramp = np.add.outer(np.arange(40), np.arange(50)).astype(np.uint8)
    shape = (40, 50) if channels == 1 else (40, 50, channels)
    array = (ramp.reshape(40, 50, *([1] * (len(shape) - 2))) + rng.integers(0, 9, shape)).astype(np.uint8)
    (tmp_path / "x.png").write_bytes(_pil_png(array))
    expected = np.asarray(Image.open(tmp_path / "x.png").convert("RGB"))
    image = read_image(tmp_path / "x.png")
    assert image.dtype == np.uint8 and image.flags.c_contiguous
    np.testing.assert_array_equal(image, expected)


def test_palette_images_read_as_colours_not_indices(tmp_path):
    colours = np.zeros((4, 5, 3), np.uint8)
    colours[:, :, 0] = np.arange(5) * 50  # red ramp; a palette stores it as indices 0..4
    Image.fromarray(colours).convert("P", palette=Image.Palette.ADAPTIVE, colors=5).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), colours)
    Image.open(tmp_path / "p.png").save(tmp_path / "p.gif")  # not a PNG: through PIL
    np.testing.assert_array_equal(read_image(tmp_path / "p.gif"), colours)


def test_truncated_image_is_a_clear_error(tmp_path):
    data = _pil_png(np.add.outer(np.arange(40), np.arange(50)).astype(np.uint8))
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t.png: cannot decode image"):
        read_image(tmp_path / "t.png")


def test_masks_read_whole_through_short_reads(tmp_path, monkeypatch):
    """The operating system may return fewer bytes than asked for; the reader asks again."""
    pixels = _nucleus()
    (tmp_path / "m.png").write_bytes(_png(pixels, [PAETH] * 24))
    real_read = os.read
    calls = []

    def short_read(fd, n):
        calls.append(n)
        return real_read(fd, min(n, 50))

    monkeypatch.setattr(os, "read", short_read)
    np.testing.assert_array_equal(_whole(_read_mask(tmp_path / "m.png")), pixels > 0)
    assert len(calls) > 2
    # a file that ends early (it shrank while read) is reported as truncated, not read forever
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 50)) if n > 100 else b"")
    with pytest.raises(DataError, match="truncated"):
        _read_mask(tmp_path / "m.png")


def test_missing_or_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"gone.png: file not found"):
        read_image(tmp_path / "gone.png")
    with pytest.raises(DataError, match=r"gone.png: file not found"):
        read_mask_rows([tmp_path / "gone.png"])
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(DataError, match=r"folder.png: cannot read \(Is a directory\)"):
        read_image(tmp_path / "folder.png")
