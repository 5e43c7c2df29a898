"""Multi-channel inputs: a TIFF's channel picked with ``channel``, stacks and unpicked channels
refused with the file's axes, R/G/B of colour images; never a silent first page."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
from PIL import Image

import nuclei_unet.cli as cli
from nuclei_unet.errors import DataError
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.io.images import read_image, to_uint8

RNG = np.random.default_rng(3)
# three planes told apart by their values: channel k is all 1000 * (k + 1) plus noise
CYX = (np.arange(1, 4, dtype=np.uint16)[:, None, None] * 1000
       + RNG.integers(0, 50, (3, 24, 32)).astype(np.uint16))


def _gray(plane: np.ndarray) -> np.ndarray:
    """What read_image returns for a one-channel plane: ``(H, W, 3) uint8``."""
    return np.repeat(to_uint8(plane)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("name, kwargs", [
    ("imagej.tif", {"imagej": True, "metadata": {"axes": "CYX"}}),   # Fiji's hyperstack
    ("ome.ome.tif", {"metadata": {"axes": "CYX"}}),                   # OME-TIFF
    ("pages.tif", {"photometric": "minisblack"}),                    # pages, no axis names
    ("lzw.tif", {"imagej": True, "metadata": {"axes": "CYX"}, "compression": "lzw"}),
])
@pytest.mark.parametrize("channel", [0, 2])
def test_a_channel_of_a_tiff_is_read_as_gray(tmp_path, name, kwargs, channel):
    tifffile.imwrite(tmp_path / name, CYX, **kwargs)
    np.testing.assert_array_equal(read_image(tmp_path / name, channel), _gray(CYX[channel]))


def test_several_channels_are_refused_unless_one_is_picked(tmp_path):
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, CYX[:2], imagej=True, metadata={"axes": "CYX"})
    message = r"two\.tif: 2 channels \(axes CYX, shape 2x24x32\); .* --channel \(0 to 1\)"
    with pytest.raises(DataError, match=message):
        read_image(path)
    with pytest.raises(DataError, match=r"two\.tif: no channel 2: it has 2 \(axes CYX"):
        read_image(path, 2)


@pytest.mark.parametrize("planarconfig", ["contig", "separate"])
@pytest.mark.parametrize("n", [2, 4])
def test_gray_samples_of_one_page_are_channels(tmp_path, planarconfig, n):
    """Stains stored as the samples of one gray page (not as pages) were read as colour: the
    first three mixed into one gray image, the fourth dropped, without a word."""
    stains = np.concatenate([CYX, CYX[:1] + 500])[:n]  # n planes told apart by their values
    data = stains if planarconfig == "separate" else np.moveaxis(stains, 0, -1)
    path = tmp_path / "stains.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig=planarconfig)
    message = (rf"stains\.tif: {n} channels \({n} gray samples of one page, shape 24x32x{n}\); "
               rf".* --channel \(0 to {n - 1}\)")
    with pytest.raises(DataError, match=message):
        read_image(path)
    for channel in range(n):
        np.testing.assert_array_equal(read_image(path, channel), _gray(stains[channel]))
    with pytest.raises(DataError, match=rf"stains\.tif: no channel {n}: it has {n} \("):
        read_image(path, n)


def test_gray_and_alpha_is_one_channel(tmp_path):
    gray_alpha = np.stack([CYX[1], np.full_like(CYX[1], 65535)], axis=-1)
    tifffile.imwrite(tmp_path / "ga.tif", gray_alpha, photometric="minisblack", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_image(tmp_path / "ga.tif"), _gray(CYX[1]))


@pytest.mark.parametrize("axes, shape", [("ZYX", (5, 24, 32)), ("TYX", (2, 24, 32)),
                                         ("ZCYX", (4, 2, 24, 32))])
@pytest.mark.parametrize("channel", [None, 0])
def test_stacks_are_refused_with_their_axes(tmp_path, axes, shape, channel):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros(shape, np.uint8), imagej=True,
                     metadata={"axes": axes})
    size = "x".join(str(n) for n in shape[:-2])
    with pytest.raises(DataError, match=rf"stack\.tif: a stack of {size} planes \(axes {axes},"):
        read_image(tmp_path / "stack.tif", channel)


def test_one_plane_tiffs_read_as_before(tmp_path):
    tifffile.imwrite(tmp_path / "gray.tif", CYX[1])
    np.testing.assert_array_equal(read_image(tmp_path / "gray.tif"), _gray(CYX[1]))
    with pytest.raises(DataError, match=r"gray\.tif: no channel 1: it has 1$"):
        read_image(tmp_path / "gray.tif", 1)
    rgb = RNG.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.tif"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.tif", 2), _gray(rgb[:, :, 2]))


@pytest.mark.parametrize("kwargs", [
    {"photometric": "rgb"},
    {"photometric": "rgb", "planarconfig": "separate"},
    {"photometric": "rgb", "compression": "lzw"},
    {"photometric": "rgb", "compression": "zstd"},
])
def test_sixteen_bit_colour_is_scaled_like_sixteen_bit_gray(tmp_path, kwargs):
    """12-bit RGB data in a 16-bit TIFF: scaled by its bit depth (4095 -> 255), as gray is,
    where PIL would keep the high byte (4095 -> 15)."""
    rgb = np.zeros((24, 32, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0, 2048, 4095
    planar = kwargs.get("planarconfig") == "separate"  # stored (S, H, W), one plane per sample
    tifffile.imwrite(tmp_path / "rgb16.tif", np.moveaxis(rgb, -1, 0) if planar else rgb, **kwargs)
    assert read_image(tmp_path / "rgb16.tif")[0, 0].tolist() == [0, 128, 255]


def test_palette_and_min_is_white_tiffs_look_as_meant(tmp_path):
    indices = np.array([[0, 1], [2, 1]], np.uint8)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = (65535, 0, 0)  # red
    colormap[:, 2] = (0, 0, 65535)  # blue
    tifffile.imwrite(tmp_path / "palette.tif", indices, photometric="palette", colormap=colormap)
    np.testing.assert_array_equal(
        read_image(tmp_path / "palette.tif"),
        [[[0, 0, 0], [255, 0, 0]], [[0, 0, 255], [255, 0, 0]]],
    )
    tifffile.imwrite(tmp_path / "white.tif", np.array([[0, 255]], np.uint8), photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "white.tif")[..., 0], [[255, 0]])
    tifffile.imwrite(tmp_path / "bits.tif", np.array([[False, True]]), photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "bits.tif")[..., 0], [[255, 0]])


def test_channels_of_pngs(tmp_path):
    rgba = RNG.integers(0, 256, (24, 32, 4)).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png", 1), _gray(rgba[:, :, 1]))
    with pytest.raises(DataError, match=r"rgba\.png: no channel 3: it has 3$"):  # alpha is not one
        read_image(tmp_path / "rgba.png", 3)
    Image.fromarray(rgba[:, :, 0]).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png", 0), _gray(rgba[:, :, 0]))
    with pytest.raises(DataError, match=r"gray\.png: no channel 1: it has 1$"):
        read_image(tmp_path / "gray.png", 1)


def test_a_broken_tiff_is_named(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match=r"bad\.tif: cannot read the TIFF"):
        read_image(tmp_path / "bad.tif")


def test_the_command_segments_the_channel_asked_for(tmp_path, tiny_model, monkeypatch, caplog):
    tifffile.imwrite(tmp_path / "cells.tif", CYX, imagej=True, metadata={"axes": "CYX"})
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / "plain.png")
    seen: dict[str, np.ndarray] = {}
    segment = cli.segment

    def spy(model, image, *args):
        seen[args[-1]] = image
        return segment(model, image, *args)

    monkeypatch.setattr(cli, "segment", spy)
    base = ["predict", str(tmp_path / "cells.tif"), str(tmp_path / "plain.png"),
            "--model", str(tiny_model), "--format", "mask"]
    with caplog.at_level(logging.ERROR, logger="nuclei_unet"):
        assert cli.main([*base, "--out", str(tmp_path / "none")]) == 2  # reported, skipped
    assert "cells.tif: 3 channels" in caplog.text and set(seen) == {"plain.png"}
    assert not (tmp_path / "none" / "cells_mask.png").exists()
    assert (tmp_path / "none" / "plain_mask.png").exists()  # the other file went on
    # --channel asks every file for that channel: a one-channel image has none but 0
    assert cli.main([*base, "--out", str(tmp_path / "one"), "--channel", "1"]) == 2
    assert "plain.png: no channel 1: it has 1" in caplog.text
    np.testing.assert_array_equal(seen["cells.tif"], _gray(CYX[1]))
    assert (tmp_path / "one" / "cells_mask.png").exists()


def test_a_folder_of_inputs_yields_its_images_of_every_read_format(tmp_path):
    for name in ("b.TIF", "a.png", "c.tiff", "d.jpeg", "e.JPG", "notes.txt", "f.npy", "labels.csv"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()  # a folder named like an image is not one
    found = [p.name for p in cli.find_images([str(tmp_path), "given.bmp"])]
    # files named on the command line are kept whatever their suffix: reading them says why not
    assert found == ["a.png", "b.TIF", "c.tiff", "d.jpeg", "e.JPG", "given.bmp"]


def test_a_dsb_sample_whose_image_is_a_tiff(tmp_path):
    sample = tmp_path / "s1"
    (sample / "images").mkdir(parents=True)
    (sample / "masks").mkdir()
    tifffile.imwrite(sample / "images" / "s1.tif", CYX[0])
    Image.fromarray(np.full((24, 32), 255, np.uint8)).save(sample / "masks" / "m.png")
    (found,) = list_samples(tmp_path)
    assert found.image.name == "s1.tif" and [m.name for m in found.masks] == ["m.png"]


def test_float_and_32_bit_images_read_as_their_counts(tmp_path):
    """A 32-bit float image of 12-bit counts reads as the 16-bit image of the same counts does
    (it was read as [0, 255] and saturated), and 24-bit counts in a 32-bit file are scaled by
    their 24 bits (they were clipped at 16)."""
    counts = RNG.integers(0, 4096, (24, 32)).astype(np.uint16)
    counts[0, 0] = 4095
    tifffile.imwrite(tmp_path / "u16.tif", counts)
    tifffile.imwrite(tmp_path / "f32.tif", counts.astype(np.float32))
    np.testing.assert_array_equal(read_image(tmp_path / "f32.tif"), read_image(tmp_path / "u16.tif"))
    assert 0 < read_image(tmp_path / "f32.tif").mean() < 200  # was 253: nearly all clipped
    wide = counts.astype(np.uint32) * 4097  # 24 bits: 4095 * 4097 = 2**24 - 1
    tifffile.imwrite(tmp_path / "u32.tif", wide)
    np.testing.assert_array_equal(read_image(tmp_path / "u32.tif"), read_image(tmp_path / "u16.tif"))


def test_nan_pixels_read_as_zero_with_a_warning_and_an_all_nan_image_is_refused(tmp_path, caplog):
    image = np.full((24, 32), 0.5, np.float32)
    image[:, :4] = np.nan  # a registered image's empty border
    image[0, 4] = np.inf
    tifffile.imwrite(tmp_path / "border.tif", image)
    with caplog.at_level(logging.WARNING):
        pixels = read_image(tmp_path / "border.tif")
    assert f"{tmp_path / 'border.tif'}: 97 of 768 values are NaN or infinite: read as 0" in caplog.text
    assert (pixels[:, :4] == 0).all() and pixels[0, 4].tolist() == [0, 0, 0]
    assert (pixels[1:, 4:] == 128).all()
    tifffile.imwrite(tmp_path / "empty.tif", np.full((24, 32), np.nan, np.float32))
    with pytest.raises(DataError, match=r"empty.tif: no pixel has a finite value"):
        read_image(tmp_path / "empty.tif")
