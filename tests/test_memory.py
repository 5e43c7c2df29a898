"""An image too large to segment in the available memory is refused by name, and the others
go on (rather than the kernel killing the whole run)."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nuclei_unet.infer.memory
from nuclei_unet.cli import main
from nuclei_unet.config.schema import PredictParams
from nuclei_unet.errors import TooLargeError
from nuclei_unet.infer.memory import LABELLING_BYTES, TILING_BYTES, available_bytes, require_memory
from nuclei_unet.infer.tiling import tiled_maps


def test_available_bytes_reads_memavailable(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683724 kB\nMemFree:  100 kB\nMemAvailable:   22061600 kB\n")
    assert available_bytes(meminfo) == 22061600 * 1024
    meminfo.write_text("MemTotal:       24683724 kB\n")  # an old kernel: nothing to check against
    assert available_bytes(meminfo) is None
    assert available_bytes(tmp_path / "absent") is None  # not Linux


def test_require_memory_compares_the_need_with_what_is_available(monkeypatch):
    monkeypatch.setattr(nuclei_unet.infer.memory, "available_bytes", lambda: 1_000_000)
    require_memory((100, 250), 40, "a step")  # exactly 1,000,000 bytes: fits
    with pytest.raises(TooLargeError, match=r"^a step \(100x500 px\) needs about 2\.0 MB, and 1\.0 MB "
                                            r"is available: cut the image into parts$"):
        require_memory((100, 500), 40, "a step")
    with pytest.raises(TooLargeError):
        require_memory((100, 251), 40, "a step")  # one column more than fits
    monkeypatch.setattr(nuclei_unet.infer.memory, "available_bytes", lambda: 3_000_000_000)
    with pytest.raises(TooLargeError, match=r"needs about 4\.0 GB, and 3\.0 GB is available"):
        require_memory((10_000, 10_000), 40, "a step")
    monkeypatch.setattr(nuclei_unet.infer.memory, "available_bytes", lambda: None)
    require_memory((10**6, 10**6), 40, "a step")  # unknown: not checked


def test_tiling_refuses_a_rescaled_image_that_does_not_fit(monkeypatch):
    image = np.zeros((100, 130, 3), np.uint8)
    # room for the image as it is, not for it at 2x (200 x 260 px)
    monkeypatch.setattr(nuclei_unet.infer.memory, "available_bytes", lambda: 100 * 130 * TILING_BYTES)
    options = PredictParams(mode="tile", tile_size=64, tile_overlap=16, tta=False)
    net = torch.nn.Conv2d(3, 1, 1)
    assert tiled_maps(net, image, options, torch.device("cpu"), torch.float32, 1.0, False).shape == (1, 100, 130)
    with pytest.raises(TooLargeError, match=r"^overlap-tiling at 2\.00x \(200x260 px\) needs about"):
        tiled_maps(net, image, options, torch.device("cpu"), torch.float32, 2.0, False)


def test_the_command_skips_an_image_too_large_and_segments_the_others(
    tmp_path: Path, tiny_model: Path, monkeypatch, caplog
):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "small.png")
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(folder / "big.png")
    # the tiny model predicts at 32 px and splits at the image's size: room for 32 x 32 only
    monkeypatch.setattr(nuclei_unet.infer.memory, "available_bytes", lambda: 2 * 32 * 32 * LABELLING_BYTES)
    with caplog.at_level(logging.INFO):
        status = main(["predict", str(folder), "--model", str(tiny_model), "--out", str(tmp_path / "out")])
    assert status == 2
    assert (tmp_path / "out" / "small_labels.tif").exists()
    assert not list((tmp_path / "out").glob("big*"))
    assert f"skipped: {folder / 'big.png'}: splitting the nuclei (200x300 px) needs about 2.2 MB" in caplog.text
    assert "1 file(s) could not be read or segmented" in caplog.text


def test_the_predict_stage_stops_naming_the_image_too_large(tmp_path: Path, monkeypatch):
    from nuclei_unet.infer.segment import predict_full_res
    from nuclei_unet.io.dsb import Sample

    image = tmp_path / "big.png"
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(image)
    monkeypatch.setattr(nuclei_unet.infer.memory, "available_bytes", lambda: 1000)
    options = PredictParams(mode="resize", instances="components", tta=False)
    with pytest.raises(TooLargeError, match=rf"^{image}: splitting the nuclei \(200x300 px\) needs about"):
        predict_full_res(torch.nn.Conv2d(3, 1, 1), [Sample("big", image, ())], options, 32,
                         tmp_path / "out", torch.device("cpu"))
    assert not list((tmp_path / "out").glob("big*"))
