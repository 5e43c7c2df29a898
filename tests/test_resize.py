"""The fast seed resize against scikit-image's own, to the last bit."""

import numpy as np
import pytest
from skimage.transform import resize

from nuclei_unet.transforms.resize import resize_image, seed_resize


@pytest.mark.parametrize(
    "shape, out",
    [
        ((97, 143), (32, 32)),  # gray, non-integer factors
        ((97, 143, 3), (32, 40)),  # colour, not square
        ((256, 256), (128, 128)),  # the commonest DSB case, factor 2
        ((256, 320, 3), (128, 128)),
        ((64, 50), (64, 20)),  # rows kept: no filter pass along them
        ((50, 64), (20, 64)),  # columns kept
        ((30, 30), (45, 20)),  # rows upscaled: scikit-image itself
        ((30, 30), (30, 30)),  # same size: scikit-image itself
    ],
)
def test_seed_resize_is_scikit_image_bit_for_bit(shape, out):
    rng = np.random.default_rng(sum(shape) + sum(out))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    if len(shape) == 3:
        image[:, :, 1] //= 4  # channels of different ranges: the clip uses all channels at once
    expected = resize(image, out, mode="constant", preserve_range=True)
    got = seed_resize(image, out)
    assert got.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_seed_resize_clips_to_the_input_range():
    """Borders mix in the zero fill; scikit-image clips them up to the input's minimum."""
    image = np.full((60, 80), 200, np.uint8)
    image[20:40, 30:50] = 250
    got = seed_resize(image, (15, 20))
    # the corners, where the filter reaches past the border, would be about 160 unclipped
    assert got[0, 0] == 200 and got.min() == 200 and got.max() <= 250
    np.testing.assert_array_equal(got, resize(image, (15, 20), mode="constant", preserve_range=True))


@pytest.mark.parametrize("gray", [True, False], ids=["gray", "colour"])
def test_resize_image_is_the_seed_resize(gray):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (97, 143, 3), dtype=np.uint8)
    if gray:
        image[:, :, 1] = image[:, :, 2] = image[:, :, 0]
    seed = resize(image, (32, 32), mode="constant", preserve_range=True).astype(np.uint8)
    small = resize_image(image, 32)
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, seed)
