"""What field tools open: label TIFFs with the pixel size, ImageJ ROIs, numbered overlays."""

from __future__ import annotations

import builtins
import os

import numpy as np
import pytest
import roifile
import tifffile
from conftest import disc
from PIL import Image
from skimage.draw import polygon2mask

from nuclei_unet.cli import main
from nuclei_unet.errors import DataError
from nuclei_unet.evaluate.outlines import label_colour
from nuclei_unet.export.images import FORMATS, write_formats
from nuclei_unet.infer.segment import save_segmentation
from nuclei_unet.io.rois import outline
from nuclei_unet.io.images import read_image_and_pixel_size
from nuclei_unet.io.tiff import PixelSize, write_labels_tif

SHAPE = (90, 120)


def _labels() -> np.ndarray:
    """Seven nuclei: discs of several sizes, two touching, one of a single pixel."""
    labels = np.zeros(SHAPE, np.uint16)
    for k, (centre, radius) in enumerate(
        [((20, 20), 10), ((20, 41), 10), ((60, 30), 4), ((50, 80), 15), ((80, 110), 2.5),
         ((10, 100), 6)], start=1,
    ):
        labels[disc(SHAPE, centre, radius) & (labels == 0)] = k
    labels[85, 5] = 7
    return labels


def _pixel_size(path) -> PixelSize | None:
    return read_image_and_pixel_size(path)[1]


def _size(path) -> tuple[float, float]:
    size = _pixel_size(path)
    return (size.x, size.y)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_every_format_reads_back_as_the_label_map(tmp_path):
    labels = _labels()
    image = np.full((*SHAPE, 3), 30, np.uint8)
    write_formats(tmp_path, "img", image, labels > 0, labels, list(FORMATS), PixelSize(0.25, 0.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"img{s}" for s in FORMATS.values())
    # TIFF: the same labels, compressed, with the pixel size in micrometres
    with tifffile.TiffFile(tmp_path / "img_labels.tif") as tif:
        np.testing.assert_array_equal(tif.asarray(), labels)
        assert tif.pages.first.dtype == np.uint16 and tif.pages.first.compression == 8  # zlib
        assert tif.imagej_metadata["unit"] == "um"
    assert _size(tmp_path / "img_labels.tif") == pytest.approx((0.25, 0.5))
    # ROIs: one polygon per nucleus, named by label, filled polygon ~ the nucleus
    rois = roifile.roiread(tmp_path / "img_rois.zip")
    assert sorted(int(r.name) for r in rois) == list(range(1, 8))
    for roi in rois:
        assert roi.roitype == roifile.ROI_TYPE.POLYGON
        filled = polygon2mask(SHAPE, roi.coordinates()[:, ::-1] - 0.5)  # corners -> centres
        assert _iou(filled, labels == int(roi.name)) >= 0.9, roi.name
    # overlay: each nucleus's boundary in its own colour
    overlay = np.asarray(Image.open(tmp_path / "img_overlay.png"))
    assert overlay.shape == (*SHAPE, 3)
    assert tuple(overlay[20, 10]) == label_colour(1) and tuple(overlay[50, 65]) == label_colour(4)
    np.testing.assert_array_equal(overlay[45:50, 0:3], image[45:50, 0:3])  # background kept


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (5, 5)])
def test_outline_of_a_rectangle_is_its_pixel_edges(shape):
    corners = outline(np.ones(shape, bool))
    assert corners[:, 0].min() == 0 and corners[:, 0].max() == shape[1]
    assert corners[:, 1].min() == 0 and corners[:, 1].max() == shape[0]
    assert _iou(polygon2mask((8, 8), corners[:, ::-1] - 0.5), np.pad(np.ones(shape, bool),
                ((0, 8 - shape[0]), (0, 8 - shape[1])))) == 1.0


def test_more_than_65535_nuclei_go_to_a_32_bit_tiff(tmp_path):
    labels = np.arange(1, 300 * 250 + 1, dtype=np.uint32).reshape(300, 250)
    write_labels_tif(tmp_path / "many.tif", labels, PixelSize(0.5, 0.5))
    back = tifffile.imread(tmp_path / "many.tif")
    assert back.dtype == np.uint32 and back.max() == 75000
    np.testing.assert_array_equal(back, labels)
    assert _size(tmp_path / "many.tif") == pytest.approx((0.5, 0.5))


def test_pixel_size_of_inputs(tmp_path):
    tifffile.imwrite(tmp_path / "ij.tif", np.zeros((4, 4), np.uint8), imagej=True,
                     resolution=(1 / 0.65, 1 / 0.65), metadata={"unit": "micron"})
    tifffile.imwrite(tmp_path / "cm.tif", np.zeros((4, 4), np.uint8), resolution=(5000, 5000),
                     resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "none.tif", np.zeros((4, 4), np.uint8))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    assert _size(tmp_path / "ij.tif") == pytest.approx((0.65, 0.65))
    assert _size(tmp_path / "cm.tif") == pytest.approx((2.0, 2.0))
    assert _pixel_size(tmp_path / "none.tif") is None
    assert _pixel_size(tmp_path / "a.png") is None


def test_malformed_resolution_tags_leave_the_pixels_readable(tmp_path, caplog):
    """A resolution tag of the wrong type costs the pixel size (with a warning), not the image."""
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.full((4, 6), 200, np.uint8), resolution=(2.0, 2.0),
                     resolutionunit="CENTIMETER")
    rational = b"\x1a\x01\x05\x00\x01\x00\x00\x00"  # XResolution (282), RATIONAL, count 1
    data = path.read_bytes()
    assert data.count(rational) == 1
    path.write_bytes(data.replace(rational, b"\x1a\x01\x04\x00\x01\x00\x00\x00"))  # LONG
    image, size = read_image_and_pixel_size(path)
    assert size is None and image.shape == (4, 6, 3) and (image == 200).all()
    assert f"{path}: malformed resolution tags" in caplog.text


def test_command_writes_the_formats_asked_for(tmp_path, tiny_model):
    tifffile.imwrite(tmp_path / "cells.tif", np.full((40, 48), 9000, np.uint16), imagej=True,
                     resolution=(1 / 0.3, 1 / 0.3), metadata={"unit": "um"})
    args = ["predict", str(tmp_path / "cells.tif"), "--model", str(tiny_model)]
    assert main([*args, "--out", str(tmp_path / "all")]) == 0
    names = {p.name for p in (tmp_path / "all").iterdir()}
    assert names == {f"cells{s}" for s in FORMATS.values()} | {"objects.csv"}
    assert _size(tmp_path / "all" / "cells_labels.tif") == pytest.approx((0.3, 0.3))
    assert main([*args, "--out", str(tmp_path / "some"), "--format", "rois", "--format", "tif"]) == 0
    names = {p.name for p in (tmp_path / "some").iterdir()}
    assert names == {"cells_rois.zip", "cells_labels.tif", "objects.csv"}


def test_command_opens_each_input_once(tmp_path, tiny_model, monkeypatch):
    """The pixels and the pixel size come from one read: a large TIFF is not opened twice."""
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, np.full((40, 48), 9000, np.uint16), imagej=True,
                     resolution=(1 / 0.3, 1 / 0.3), metadata={"unit": "um"})
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    status = main(["predict", str(path), "--model", str(tiny_model), "--out", str(tmp_path / "o")])
    monkeypatch.undo()
    assert status == 0
    assert opened.count(str(path)) == 1
    assert _size(tmp_path / "o" / "cells_labels.tif") == pytest.approx((0.3, 0.3))


def test_a_label_png_refuses_labels_past_16_bits(tmp_path):
    """The stage's PNG writer: more nuclei than uint16 holds is an error, not wrapped labels."""
    labels = np.arange(1, 300 * 250 + 1, dtype=np.uint32).reshape(300, 250)
    with pytest.raises(DataError, match="75000 nuclei do not fit a 16-bit label PNG"):
        save_segmentation(tmp_path, "many", labels > 0, labels)
    assert not list(tmp_path.iterdir())
    # the command writes the other formats and leaves the PNG labels out
    write_formats(tmp_path, "many", np.zeros((300, 250, 3), np.uint8), labels > 0, labels,
                  ["labels", "tif"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many_labels.tif"]
