"""The synthetic generator: deterministic, DSB layout, plausible content."""

import hashlib

import numpy as np
from PIL import Image

from nuclei_unet.config.schema import SyntheticParams
from nuclei_unet.data.synthetic import MODALITIES, SIZES, generate_image, write_dataset
from nuclei_unet.io.dsb import list_samples, load_instances


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    params = SyntheticParams(count=4, min_nuclei=3, max_nuclei=12)
    write_dataset(tmp_path / "a", 7, params, workers=1)
    write_dataset(tmp_path / "b", 7, params, workers=2)
    write_dataset(tmp_path / "c", 8, params, workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_layout_is_dsb(tmp_path):
    write_dataset(tmp_path / "raw", 3, SyntheticParams(count=5, min_nuclei=3, max_nuclei=20), 1)
    samples = list_samples(tmp_path / "raw")
    assert len(samples) == 5
    for s in samples:
        assert s.image.name == f"{s.id}.png" and len(s.id) == 64
        with Image.open(s.image) as im:
            assert im.mode == "RGBA"
            assert np.all(np.asarray(im)[..., 3] == 255)
            assert (im.height, im.width) in SIZES
        assert len(s.masks) >= 1
        for path in s.masks:
            with Image.open(path) as m:
                assert m.mode == "L"
                assert set(np.unique(np.asarray(m))) == {0, 255}
        # load_instances refuses overlapping masks, so this also proves they do not overlap
        _, labels = load_instances(s)
        assert labels.max() == len(s.masks)


def test_nuclei_count_and_contrast():
    params = SyntheticParams(count=1, min_nuclei=10, max_nuclei=10)
    seen = set()
    for index in range(24):
        img = generate_image(1, index, params)
        seen.add(img.modality)
        n = img.labels.max()
        assert 1 <= n <= 10
        fg = img.labels > 0
        gray = img.image[..., :3].mean(axis=2)
        # nuclei differ from the background: brighter in fluorescence, darker otherwise
        diff = gray[fg].mean() - gray[~fg].mean()
        assert (diff > 10) if img.modality == "fluorescence" else (diff < -10)
    assert seen == set(MODALITIES)
