"""Bad input: each case ends in one DataError naming the file and the problem."""

import io
import os
import re

import numpy as np
import pytest
from conftest import write_sample
from PIL import Image

from nuclei_unet.errors import DataError
from nuclei_unet.io.dsb import list_samples, load_instances
from nuclei_unet.io.files import read_bytes, read_json
from nuclei_unet.io.images import read_image


def _one(tmp_path):
    return list_samples(tmp_path)[0]


def test_truncated_png(tmp_path):
    write_sample(tmp_path, "a", np.full((64, 64, 3), 7, np.uint8), [np.ones((64, 64), bool)])
    path = tmp_path / "a" / "images" / "a.png"
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError, match=r"a/images/a.png: cannot decode image"):
        load_instances(_one(tmp_path))


def test_empty_mask_file(tmp_path):
    write_sample(tmp_path, "a", np.zeros((16, 16, 3), np.uint8), [np.ones((16, 16), bool)])
    (tmp_path / "a" / "masks" / "0.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"masks/0.png: cannot decode image \(the file is empty\)$"):
        load_instances(_one(tmp_path))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("e.png", b"", r"cannot decode image \(the file is empty\)"),
        ("e.jpg", b"", r"cannot decode image \(the file is empty\)"),
        ("e.tif", b"", r"cannot read the TIFF \(the file is empty\)"),
        # PIL's own message names the in-memory buffer (<_io.BytesIO object at 0x...>)
        ("g.png", b"GIF89a", r"cannot decode image \(not an image file: PNG, TIF or JPG expected\)"),
    ],
    ids=["empty-png", "empty-jpg", "empty-tif", "unknown-format"],
)
def test_empty_or_unknown_image_names_the_file_and_the_problem(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / name))}: {message}$"):
        read_image(tmp_path / name)


def test_all_black_mask_adds_no_nucleus(tmp_path):
    masks = [np.zeros((16, 16), bool), np.pad(np.ones((4, 4), bool), 6)]
    write_sample(tmp_path, "a", np.zeros((16, 16, 3), np.uint8), masks)
    _, labels = load_instances(_one(tmp_path))
    assert sorted(np.unique(labels)) == [0, 2] and (labels == 2).sum() == 16


def test_overlapping_masks(tmp_path):
    m1 = np.zeros((16, 16), bool)
    m1[2:8, 2:8] = True
    m2 = np.zeros((16, 16), bool)
    m2[6:12, 6:12] = True
    write_sample(tmp_path, "a", np.zeros((16, 16, 3), np.uint8), [m1, m2])
    with pytest.raises(DataError, match=r"masks/1.png: mask overlaps an earlier mask"):
        load_instances(_one(tmp_path))


def test_sixteen_bit_image_and_mask(tmp_path):
    (tmp_path / "a" / "images").mkdir(parents=True)
    (tmp_path / "a" / "masks").mkdir()
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(tmp_path / "a" / "images" / "a.png")
    mask = np.zeros((16, 16), np.uint16)
    mask[4:8, 4:8] = 65535
    Image.fromarray(mask).save(tmp_path / "a" / "masks" / "m.png")
    image, labels = load_instances(_one(tmp_path))
    assert image.dtype == np.uint8 and image.max() == 255
    assert (labels == 1).sum() == 16


def test_folder_without_its_image(tmp_path):
    (tmp_path / "a" / "masks").mkdir(parents=True)
    (tmp_path / "a" / "images").mkdir()
    with pytest.raises(DataError, match=r"a: no image found \(expected images/a.png\)"):
        list_samples(tmp_path)


def test_no_images_at_all(tmp_path):
    with pytest.raises(DataError, match="no image folders"):
        list_samples(tmp_path)


def test_json_files_missing_or_malformed(tmp_path):
    with pytest.raises(DataError, match=r"split\.json: file not found"):
        read_json(tmp_path / "split.json")
    (tmp_path / "split.json").write_text('{"train": ["a",]}')
    with pytest.raises(DataError, match=r"split\.json: not valid JSON \(Expecting value at line 1\)"):
        read_json(tmp_path / "split.json")


def test_short_reads_are_read_on_and_a_file_that_shrank_ends(tmp_path, monkeypatch):
    """POSIX lets read(2) return less than asked (network file systems do): the rest is asked
    for. A file that shrank after its size was taken gives what it has (the decoder then
    says it is truncated), not an endless loop."""
    data = bytes(range(256)) * 4
    (tmp_path / "m.png").write_bytes(data)
    real_read, real_fstat = os.read, os.fstat
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 100)))
    assert read_bytes(tmp_path / "m.png") == data  # in 11 reads of at most 100 bytes

    def grown(fd):  # the size taken before the file lost its last 24 bytes
        st = real_fstat(fd)
        return os.stat_result((*st[:6], st.st_size + 24, *st[7:]))

    monkeypatch.setattr(os, "fstat", grown)
    assert read_bytes(tmp_path / "m.png") == data


def test_a_folder_where_a_file_should_be(tmp_path):
    (tmp_path / "a.png").mkdir()
    with pytest.raises(DataError, match=r"a\.png: cannot read \(Is a directory\)"):
        read_bytes(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"b\.png: file not found"):
        read_bytes(tmp_path / "b.png")
