"""Augmentation, losses, weight map, schedules and TTA: known answers and alignment."""

import math

import numpy as np
import pytest
import torch
from conftest import disc, squares

from nuclei_unet.config.schema import AugmentParams, ModelParams, TrainParams
from nuclei_unet.data.weightmap import class_weights, weight_map
from nuclei_unet.infer.probs import predict_probs
from nuclei_unet.model.unet import UNet, count_parameters, foreground_logit
from nuclei_unet.train.loop import train
from nuclei_unet.train.losses import bce_dice_loss, bce_loss, dice_loss, softmax_ce_loss
from nuclei_unet.transforms.augment import (
    HED_FROM_RGB,
    RGB_FROM_HED,
    AugmentedSet,
    augment,
    light,
    optical_density,
)

# --- weight map -------------------------------------------------------------------------

SHAPE = (64, 100)


def test_weight_map_peaks_between_touching_discs():
    labels = np.zeros(SHAPE, np.int32)
    labels[disc(SHAPE, (32, 30), 12)] = 1
    labels[disc(SHAPE, (32, 56), 12)] = 2  # a one-pixel gap at column 43
    assert labels[32, 43] == 0 and labels[32, 42] == 1 and labels[32, 44] == 2
    w = weight_map(labels, w0=10.0, sigma=5.0)
    wc = class_weights(labels > 0)
    gap = w[32, 43]
    assert gap == pytest.approx(wc[32, 43] + 10.0 * math.exp(-(1 + 1) ** 2 / 50), rel=1e-5)
    assert gap > wc[32, 43] + 9.0  # about w_c + w0
    assert w[2, 97] == pytest.approx(wc[2, 97], abs=1e-4)  # far from both: w_c alone
    # the map peaks at the contact, within a pixel of the gap, and the border term vanishes
    # at the far sides of the discs
    row, col = np.unravel_index(np.argmax(w), w.shape)
    assert 42 <= col <= 44
    assert w[32, 18] == pytest.approx(wc[32, 18], abs=0.05)


def test_class_weights_balance_and_single_nucleus():
    mask = np.zeros((10, 10), bool)
    mask[:2] = True  # 20 % foreground
    wc = class_weights(mask)
    assert wc[0, 0] == pytest.approx(2.5) and wc[9, 9] == pytest.approx(0.625)
    assert wc.mean() == pytest.approx(1.0)
    one = np.zeros((10, 10), int)
    one[3:5, 3:5] = 1
    np.testing.assert_allclose(weight_map(one), class_weights(one > 0))  # no second nucleus


# --- augmentation -----------------------------------------------------------------------


def _sample(seed=0):
    rng = np.random.default_rng(seed)
    mask = torch.from_numpy((rng.random((48, 48)) > 0.98).astype(np.float32))[None]
    mask = torch.nn.functional.max_pool2d(mask[None], 5, 1, 2)[0]  # blobs, not noise
    return mask.repeat(3, 1, 1), mask


# the seed's training: every augmentation off (the defaults are our best recipe's)
ALL_OFF = AugmentParams(flip=False, rot90=False, elastic_sigma=0.0, hed=0.0)


def test_all_off_is_identity():
    image, mask = _sample()
    params = ALL_OFF
    out_image, out_mask, _ = augment(image, mask, None, params, torch.Generator().manual_seed(0))
    assert torch.equal(out_image, image) and torch.equal(out_mask, mask)


def test_elastic_at_sigma_zero_is_identity():
    image, mask = _sample()
    params = ALL_OFF.model_copy(update={"rot90": False})
    out_image, _, _ = augment(image, mask, None, params, torch.Generator().manual_seed(1))
    assert torch.equal(out_image, image)


@pytest.mark.parametrize("params", [
    ALL_OFF.model_copy(update={"elastic_sigma": 10.0}),
    AugmentParams(flip=True, rot90=True, elastic_sigma=10.0, rotate_deg=15.0, scale=0.1),
])
def test_deformed_mask_is_the_mask_of_the_deformed_image(params):
    image, mask = _sample(2)
    for seed in range(5):
        out_image, out_mask, _ = augment(image, mask, None, params, torch.Generator().manual_seed(seed))
        assert torch.equal(out_mask[0], (out_image[0] > 0.5).float())
    assert not torch.equal(out_mask, mask)  # it did deform


def test_photometric_leaves_mask_alone_and_stays_in_range():
    image, mask = _sample(3)
    image = image * torch.tensor([0.9, 0.5, 0.7])[:, None, None]  # a stained, non-gray image
    params = ALL_OFF.model_copy(update=dict(brightness=0.2, contrast=0.3, gamma=0.3, color=0.2))
    out_image, out_mask, _ = augment(image, mask, None, params, torch.Generator().manual_seed(0))
    assert torch.equal(out_mask, mask)
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0 and not torch.equal(out_image, image)


def test_gain_is_one_exposure_recorded_in_8_bits():
    levels = torch.arange(256, dtype=torch.float32) / 255
    image = levels.reshape(1, 16, 16).repeat(3, 1, 1)
    mask = torch.zeros(1, 16, 16)
    params = ALL_OFF.model_copy(update={"gain": 1.0})
    factors = []
    for seed in range(20):
        out, _, _ = augment(image, mask, None, params, torch.Generator().manual_seed(seed))
        assert torch.equal(out * 255, (out * 255).round())  # 8-bit levels
        unsaturated = out < 1.0  # black stays black, so never empty
        # one factor for every pixel: the brightest unsaturated level fixes it to within 1/255
        factor = float(out[unsaturated].max() / image[unsaturated].max())
        expected = (image * factor * 255).round().clamp(0, 255) / 255
        assert (out - expected).abs().max() <= 1 / 255 + 1e-6
        factors.append(factor)
    assert min(factors) >= math.exp(-1.0) - 0.01 and max(factors) <= math.exp(1.0) + 0.01
    assert min(factors) < 0.8 and max(factors) > 1.25  # both ways over 20 draws


def test_offset_raises_the_background_only():
    image = torch.zeros(3, 16, 16)  # a black background
    image[:, 4:8, 4:8] = 100 / 255  # one nucleus
    mask = torch.zeros(1, 16, 16)
    params = ALL_OFF.model_copy(update={"offset": 0.2})
    offsets = []
    for seed in range(20):
        out, _, _ = augment(image, mask, None, params, torch.Generator().manual_seed(seed))
        background = float(out[0, 0, 0] * 255)
        assert background == round(background) and 0 <= background <= 0.2 * 255 + 0.5
        assert torch.allclose(out[:, 4:8, 4:8] * 255, torch.tensor(100.0 + background))
        offsets.append(background)
    assert max(offsets) > 25 and min(offsets) < 25  # drawn, one-sided, over 20 draws


def test_hed_restains_colour_images_by_one_factor_per_stain():
    # left half: haematoxylin and eosin at known optical densities; right half: white
    density = torch.tensor([0.4, 0.3, 0.0]) @ RGB_FROM_HED
    image = torch.ones(3, 8, 8)
    image[:, :, :4] = light(density)[:, None, None]
    mask = torch.zeros(1, 8, 8)
    params = ALL_OFF.model_copy(update={"hed": 0.5})
    factors = []
    for seed in range(20):
        out, out_mask, _ = augment(image, mask, None, params, torch.Generator().manual_seed(seed))
        assert torch.equal(out_mask, mask) and torch.equal(out[:, :, 4:], image[:, :, 4:])
        # deconvolved again, each stain is its old amount times one factor, for every pixel
        stains = optical_density(out[:, 0, 0]) @ HED_FROM_RGB
        assert torch.allclose(out[:, :, :4], out[:, :1, :1].expand(3, 8, 4))
        factors.append((stains[:2] / torch.tensor([0.4, 0.3])).tolist())
    factors = torch.tensor(factors)
    assert factors.min() >= math.exp(-0.5) - 1e-4 and factors.max() <= math.exp(0.5) + 1e-4
    assert factors.min() < 0.8 and factors.max() > 1.25  # drawn both ways over 20 draws
    assert not torch.allclose(factors[:, 0], factors[:, 1])  # each stain its own factor
    # a gray image (fluorescence, gray brightfield) is left as it is
    gray = torch.linspace(0, 1, 64).reshape(1, 8, 8).repeat(3, 1, 1)
    out, _, _ = augment(gray, mask, None, params, torch.Generator().manual_seed(0))
    assert torch.equal(out, gray)


def test_augmented_set_is_reproducible_per_epoch():
    image, mask = _sample(4)
    x, y = image[None].repeat(3, 1, 1, 1), mask[None].repeat(3, 1, 1, 1)
    data = AugmentedSet(x, y, None, AugmentParams(flip=True, rot90=True, elastic_sigma=8.0), seed=7)
    data.set_epoch(1)
    a = data[2][0]
    data.set_epoch(2)
    b = data[2][0]
    data.set_epoch(1)
    assert torch.equal(data[2][0], a) and not torch.equal(a, b)


# --- losses -------------------------------------------------------------------------------

Z = torch.tensor([0.0, 2.0, -1.0, 3.0]).reshape(1, 1, 2, 2)
T = torch.tensor([0.0, 1.0, 1.0, 0.0]).reshape(1, 1, 2, 2)


def _sig(z):
    return 1 / (1 + math.exp(-z))


def test_bce_hand_computed():
    expected = -(math.log(1 - _sig(0)) + math.log(_sig(2)) + math.log(_sig(-1)) + math.log(1 - _sig(3))) / 4
    assert float(bce_loss(Z, T)) == pytest.approx(expected, rel=1e-6)
    w = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    assert float(bce_loss(Z, T, w)) == pytest.approx(math.log(2), rel=1e-6)  # only pixel 0


def test_dice_hand_computed():
    p = [_sig(z) for z in (0.0, 2.0, -1.0, 3.0)]
    inter = p[1] + p[2]
    expected = 1 - (2 * inter + 1) / (sum(p) + 2 + 1)
    assert float(dice_loss(Z, T)) == pytest.approx(expected, rel=1e-6)
    assert float(bce_dice_loss(Z, T)) == pytest.approx(expected + float(bce_loss(Z, T)), rel=1e-6)
    # a weight of 0 takes a pixel out of every sum: here nucleus pixel 1
    w = torch.tensor([1.0, 0.0, 1.0, 1.0]).reshape(1, 1, 2, 2)
    without = 1 - (2 * p[2] + 1) / (p[0] + p[2] + p[3] + 1 + 1)
    assert float(dice_loss(Z, T, w)) == pytest.approx(without, rel=1e-6)


def test_softmax_ce_hand_computed_and_equivalent_head():
    two = torch.cat([torch.zeros_like(Z), Z], dim=1)  # softmax over (0, z) = sigmoid(z)
    assert float(softmax_ce_loss(two, T)) == pytest.approx(float(bce_loss(Z, T)), rel=1e-6)
    assert torch.equal(foreground_logit(two, "softmax"), Z)
    with pytest.raises(ValueError, match="two output channels"):
        softmax_ce_loss(Z, T)


def test_batch_norm_adds_parameters():
    base = count_parameters(UNet())
    # two BN layers (gamma, beta) per double conv: 2 * 2 * width per block, 9 blocks
    widths = [16, 32, 64, 128, 256, 128, 64, 32, 16]
    assert count_parameters(UNet(norm="batch")) == base + sum(4 * w for w in widths)


# --- training with the new options, and TTA -------------------------------------------------


def _data(n, seed):
    images, masks = squares(n, seed)
    return images, masks, np.stack([weight_map(m.astype(int)) for m in masks])


@pytest.mark.parametrize("loss", ["bce_dice", "dice", "softmax_ce"])
def test_recipe_trains(tmp_path, loss):
    params = TrainParams(
        input="resized", edge=False, lr=0.01, batch_size=4, epochs=3, patience=None, loss=loss,
        weight_map=True,
        scheduler="cosine", augment=AugmentParams(flip=True, rot90=True, elastic_sigma=5.0),
    )
    model = ModelParams(widths=(4, 8), dropouts=(0.0, 0.0), norm="batch")
    result = train(_data(8, 0), _data(4, 1), model, params, 0, tmp_path / "m.pt")
    assert result.epochs_run == 3
    lrs = [h.lr for h in result.history]
    assert lrs[0] == pytest.approx(0.01) and lrs[2] < lrs[1] < lrs[0]  # cosine


class Pointwise(torch.nn.Module):
    def forward(self, x):
        return x.mean(1, keepdim=True) * 4 - 2


def test_tta_of_a_symmetric_model_changes_nothing():
    images = (np.random.default_rng(0).random((2, 32, 32, 3)) * 255).astype(np.uint8)
    plain = predict_probs(Pointwise(), images, 2, progress=False)
    tta = predict_probs(Pointwise(), images, 2, progress=False, tta=True)
    np.testing.assert_allclose(plain, tta, atol=1e-6)
