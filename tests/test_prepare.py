"""Mask merging, the two mask rules, image reading, the prepared dataset."""


import numpy as np
import pytest
from conftest import disc, write_sample
from oracles import seed_mask
from PIL import Image

from nuclei_unet.config.schema import PrepareParams, SyntheticParams
from nuclei_unet.data.prepare import prepare_dataset, resize_mask
from nuclei_unet.data.synthetic import write_dataset
from nuclei_unet.errors import DataError
from nuclei_unet.io.dsb import list_samples, load_instances
from nuclei_unet.io.images import read_image
from nuclei_unet.io.prepared import load_prepared


def test_merge_gives_instance_labels_and_union(tiny_dsb):
    sample = list_samples(tiny_dsb)[1]  # img1 has three discs
    image, labels = load_instances(sample)
    assert image.shape == (48, 80, 3) and image.dtype == np.uint8
    assert labels.dtype == np.uint16
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]
    masks = [np.asarray(Image.open(p)) > 0 for p in sample.masks]
    np.testing.assert_array_equal(labels > 0, np.any(masks, axis=0))
    for k, mask in enumerate(masks, start=1):
        np.testing.assert_array_equal(labels == k, mask)


@pytest.mark.parametrize("rule", ["any", "area"])
def test_fast_path_equals_the_per_mask_method(tiny_dsb, tmp_path, rule):
    # tiny discs, and synthetic images with touching nuclei at sizes up to 520x696
    write_dataset(tmp_path / "syn", 11, SyntheticParams(count=6, min_nuclei=20, max_nuclei=60), 1)
    samples = list_samples(tiny_dsb) + list_samples(tmp_path / "syn")
    for sample in samples:
        _, labels = load_instances(sample)
        for size in (32, 128):
            np.testing.assert_array_equal(
                resize_mask(labels > 0, size, rule), seed_mask(sample, size, rule), sample.id
            )


def test_any_rule_dilates_and_area_rule_keeps_size():
    union = disc((256, 256), (128, 128), 40)
    area = resize_mask(union, 128, "area")
    anyr = resize_mask(union, 128, "any")
    # area keeps the disc's area (pi r^2 / 4 at half size), any grows it
    assert area.sum() == pytest.approx(np.pi * 20**2, rel=0.03)
    assert anyr.sum() > area.sum() * 1.1
    assert not (area & ~anyr).any()


def test_area_rule_on_exact_blocks():
    union = np.zeros((4, 4), bool)
    union[0:2, 0:2] = True  # a full 2x2 block -> one output pixel
    union[2, 2] = True  # a quarter-covered block -> background
    union[0:2, 2] = True  # a half-covered block -> nucleus (>= 0.5)
    np.testing.assert_array_equal(resize_mask(union, 2, "area"), [[True, True], [False, False]])


@pytest.mark.parametrize(
    "array, expected_pixel",
    [
        (np.full((8, 8), 100, np.uint8), [100, 100, 100]),  # gray
        (np.full((8, 8, 3), (10, 20, 30), np.uint8), [10, 20, 30]),  # RGB
        (np.full((8, 8, 4), (10, 20, 30, 255), np.uint8), [10, 20, 30]),  # RGBA: alpha dropped
        (np.full((8, 8), 65535, np.uint16), [255, 255, 255]),  # 16-bit scaled
        (np.full((8, 8), 4095, np.uint16), [255, 255, 255]),  # 12-bit data in 16 bits
    ],
)
def test_read_image_gives_rgb_uint8(tmp_path, array, expected_pixel):
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    image = read_image(path)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == expected_pixel


def test_corrupt_image_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="bad.png: cannot decode image"):
        read_image(path)


def test_mask_size_mismatch_names_the_file(tmp_path):
    write_sample(tmp_path, "a", np.zeros((16, 16, 3), np.uint8), [np.ones((8, 8), bool)])
    with pytest.raises(DataError, match=r"0.png: mask is 8x8 but its image is 16x16"):
        load_instances(list_samples(tmp_path)[0])


def test_missing_masks_folder(tmp_path):
    (tmp_path / "a" / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "images" / "a.png")
    with pytest.raises(DataError, match="no masks/ folder"):
        list_samples(tmp_path)


def test_prepare_dataset_writes_arrays_and_labels(tiny_dsb, tmp_path):
    out = tmp_path / "prepared"
    n = prepare_dataset(tiny_dsb, out, PrepareParams(size=32, workers=1))
    data = load_prepared(out)
    assert n == 3 and data.ids == ["img0", "img1", "img2"]
    assert data.images.shape == (3, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (3, 32, 32) and set(np.unique(data.masks)) == {0, 1}
    assert data.shapes.tolist() == [[64, 64], [48, 80], [96, 64]]
    assert data.n_nuclei.tolist() == [2, 3, 2]
    labels = np.asarray(Image.open(out / "labels" / "img1.png"))
    assert labels.shape == (48, 80) and labels.max() == 3


def test_prepare_in_two_processes_matches_one(tiny_dsb, tmp_path):
    prepare_dataset(tiny_dsb, tmp_path / "one", PrepareParams(size=32, workers=1))
    prepare_dataset(tiny_dsb, tmp_path / "two", PrepareParams(size=32, workers=2))
    a, b = load_prepared(tmp_path / "one"), load_prepared(tmp_path / "two")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)


def test_failed_prepare_leaves_no_output(tmp_path):
    write_sample(tmp_path / "raw", "a", np.zeros((16, 16, 3), np.uint8), [np.ones((8, 8), bool)])
    out = tmp_path / "prepared"
    with pytest.raises(DataError):
        prepare_dataset(tmp_path / "raw", out, PrepareParams(size=16, workers=1))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
