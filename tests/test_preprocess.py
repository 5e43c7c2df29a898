"""The input normalisation (model.normalize): the stretch, its invariance, and that training,
the model file and prediction all apply the same rule."""

import numpy as np
import pytest
import torch
from conftest import disc, squares

from nuclei_unet.config.schema import ModelParams, PredictParams, TrainParams
from nuclei_unet.data.native import NativeSample
from nuclei_unet.errors import DataError
from nuclei_unet.infer.probs import predict_probs
from nuclei_unet.infer.segment import predict_full
from nuclei_unet.model.checkpoint import Scale, load_checkpoint, save_model
from nuclei_unet.model.preprocess import (
    normalize_image,
    normalize_images,
    preprocessing,
    stretch,
)
from nuclei_unet.model.unet import UNet
from nuclei_unet.train.build import normalize_data
from nuclei_unet.train.loop import train


def _gray(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` values -> ``(H, W, 3) uint8``."""
    return np.repeat(values.astype(np.uint8)[..., None], 3, axis=2)


def _nuclei_image(gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """A 96x96 gray image: five discs at 180 on a background of 20 +- 10, under a camera's
    ``gain`` and ``offset`` (rounded, clipped)."""
    rng = np.random.default_rng(3)
    values = rng.integers(10, 31, size=(96, 96)).astype(np.float32)
    for centre in ((20, 20), (20, 70), (50, 45), (75, 20), (75, 75)):
        values[disc((96, 96), centre, 9)] = 180.0
    return _gray(np.clip(np.rint(values * gain + offset), 0, 255))


def test_stretch_maps_the_percentiles_to_0_and_255_hand_computed():
    # 10,000 pixels: 4,999 at 20, one at 70, 5,000 at 120. The 1st percentile is 20 and the
    # 99.99th 120, so 20 -> 0, 120 -> 255 and 70 -> 50 * 255 / 100 = 127.5, rounded to 128
    values = np.array([20] * 4999 + [70] + [120] * 5000).reshape(100, 100)
    out = stretch(_gray(values))
    assert out.dtype == np.uint8 and out.shape == (100, 100, 3)
    assert set(np.unique(out[values == 20])) == {0}
    assert set(np.unique(out[values == 120])) == {255}
    assert set(np.unique(out[values == 70])) == {128}


def test_stretch_clips_outside_the_percentiles_and_keeps_a_flat_image():
    # 10,000 pixels from 0 to 99 in equal numbers and two outliers: the 1st percentile is 1,
    # the 99.99th 99; 0 and the outlier 250 are clipped
    values = np.concatenate([np.repeat(np.arange(100), 100)[:-2], [0, 250]]).reshape(100, 100)
    out = stretch(_gray(values))
    assert out[values == 0].max() == 0 and out[values == 250].min() == 255
    flat = np.full((8, 8, 3), 77, np.uint8)
    assert stretch(flat) is flat


def test_stretch_takes_the_channels_together():
    # a red-only image keeps green and blue at 0: the channels share one stretch
    image = np.zeros((10, 10, 3), np.uint8)
    image[..., 0] = np.arange(100).reshape(10, 10)
    out = stretch(image)
    assert out[..., 1:].max() == 0 and out[..., 0].max() == 255


@pytest.mark.parametrize("gain, offset", [(0.5, 0.0), (0.2, 0.0), (1.0, 40.0), (0.5, 30.0)])
def test_percentile_input_is_free_of_gain_and_offset(gain, offset):
    reference = normalize_image(_nuclei_image(), "percentile").astype(int)
    changed = normalize_image(_nuclei_image(gain, offset), "percentile").astype(int)
    # the same input up to rounding: a fifth of the levels gives steps of about 12 at 0.2
    step = 255 / (170 * gain) + 1
    assert np.abs(changed - reference).max() <= step
    # without the stretch the network would see a different image
    raw = np.abs(_nuclei_image(gain, offset).astype(int) - _nuclei_image().astype(int))
    assert raw.max() > 3 * step


def test_none_keeps_the_pixels_and_an_unknown_rule_is_refused():
    image = _nuclei_image(0.5)
    assert normalize_image(image, "none") is image
    stack = np.stack([image, image])
    assert normalize_images(stack, "none") is stack
    assert np.array_equal(normalize_images(stack, "percentile")[1], stretch(image))
    with pytest.raises(ValueError, match="unknown normalize rule 'zscore'"):
        normalize_image(image, "zscore")


def test_training_data_is_normalised_for_both_inputs():
    images, masks = squares(3, 0)
    dim = (images // 4, masks)
    resized = normalize_data(dim, "percentile")
    assert resized[1] is masks and np.array_equal(resized[0][2], stretch(images[2] // 4))
    sample = NativeSample(images[0] // 4, masks[0], 1.0, False, 20.0)
    [native] = normalize_data([sample], "percentile")
    assert np.array_equal(native.image, stretch(sample.image)) and native.target is sample.target
    assert normalize_data(dim, "none") is dim


def test_model_file_records_the_rule(tmp_path):
    params = TrainParams(input="resized", edge=False, batch_size=4, epochs=1, patience=None)
    tiny = ModelParams(widths=(4, 8), dropouts=(0.0, 0.0), normalize="percentile")
    train(squares(8, 0), squares(4, 1), tiny, params, 0, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["preprocessing"] == preprocessing("percentile")
    assert payload["preprocessing"]["percentiles"] == [1.0, 99.99]
    assert load_checkpoint(tmp_path / "m.pt").scale.normalize == "percentile"


def test_model_files_without_the_rule_or_with_an_unknown_one(tmp_path):
    save_model(UNet((4, 8), (0.0, 0.0)), tmp_path / "old.pt", {"input_size": 32})
    payload = torch.load(tmp_path / "old.pt", weights_only=True)
    del payload["preprocessing"]["normalize"]  # a file from before model.normalize
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").scale.normalize == "none"
    payload["preprocessing"]["normalize"] = "zscore"
    torch.save(payload, tmp_path / "new.pt")
    with pytest.raises(DataError, match=r"new\.pt: unknown input normalisation 'zscore'"):
        load_checkpoint(tmp_path / "new.pt")


@pytest.mark.parametrize("mode", ["resize", "tile"])
def test_prediction_applies_the_models_rule(mode):
    # an untrained network: with the percentile rule, the dim image's maps are the bright
    # one's up to rounding; with none, they differ
    torch.manual_seed(0)
    model = UNet((4, 8), (0.0, 0.0)).eval()
    options = PredictParams(mode=mode, tta=False, tile_size=32, tile_overlap=8, tile_scale=1.0)

    def maps(image, rule):
        return predict_full(model, image, options, 32, torch.device("cpu"),
                            scale=Scale(normalize=rule))[0]

    bright, dim = _nuclei_image(), _nuclei_image(0.5)
    same = np.abs(maps(bright, "percentile") - maps(dim, "percentile")).max()
    different = np.abs(maps(bright, "none") - maps(dim, "none")).max()
    assert same < 0.2 * different


def test_training_size_probabilities_apply_the_rule():
    # the predict stage's 128-px path (a model trained on whole resized images): the rule is
    # applied per image, so a dim copy in the same batch gets the bright one's probabilities
    torch.manual_seed(0)
    model = UNet((4, 8), (0.0, 0.0)).eval()
    images = np.stack([_nuclei_image(), _nuclei_image(0.5)])
    stretched = predict_probs(model, images, 2, progress=False, normalize="percentile")
    raw = predict_probs(model, images, 2, progress=False)
    assert np.abs(stretched[0] - stretched[1]).max() < 0.2 * np.abs(raw[0] - raw[1]).max()
    # the same as stretching first and predicting without a rule
    manual = predict_probs(model, normalize_images(images, "percentile"), 2, progress=False)
    assert np.array_equal(stretched, manual)
