"""predict.exposure: the exposures a model trained on, recorded in its file, and an image from
another camera brought into them before prediction."""

import numpy as np
import pytest
import torch
from conftest import Threshold, disc, squares

from nuclei_unet.config.schema import ModelParams, PredictParams, TrainParams
from nuclei_unet.data.native import NativeSample
from nuclei_unet.errors import DataError
from nuclei_unet.infer.segment import segment
from nuclei_unet.model.checkpoint import Scale, load_checkpoint, save_model
from nuclei_unet.model.exposure import (
    IntensityRange,
    fit_exposure,
    fit_exposures,
    intensity_ranges,
    intensity_stats,
    ranges_from_dict,
    ranges_to_dict,
    signal_to_noise,
)
from nuclei_unet.model.unet import UNet
from nuclei_unet.train.loop import train

FLUO = IntensityRange(top_min=30.0, top_median=200.0, background_max=20.0, background_median=5.0)
# a stained image's median is its tissue: background_max below it must not subtract anything
STAINED = IntensityRange(top_min=170.0, top_median=180.0, background_max=40.0, background_median=30.0)
TRAINED = {"fluorescence": FLUO, "stained": STAINED}


def _nuclei(background: int, nucleus: int) -> np.ndarray:
    """A ``(96, 96, 3) uint8`` gray image: four discs of radius 8 at ``nucleus`` on
    ``background`` (the discs cover 8 % of it, so its 99.9th percentile is ``nucleus``)."""
    shape = (96, 96)
    inside = np.zeros(shape, bool)
    for centre in [(24, 24), (24, 72), (72, 24), (72, 72)]:
        inside |= disc(shape, centre, 8)
    gray = np.where(inside, nucleus, background).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _purple(background: int, nucleus: int) -> np.ndarray:
    """A stained-looking ``(96, 96, 3) uint8`` image: :func:`_nuclei` in red and green, 30
    levels more in blue, so its gray values are 10 above ``background`` and ``nucleus``."""
    red = _nuclei(background, nucleus)[..., 0]
    return np.dstack([red, red, _nuclei(background + 30, nucleus + 30)[..., 0]])


def test_the_range_of_each_kind():
    gray = [_nuclei(2, 40), _nuclei(9, 250), _nuclei(14, 100)]
    purple = [_purple(200, 90), _purple(170, 60)]  # dark nuclei on light tissue: top = light
    got = intensity_ranges([*gray, *purple])
    assert got == {
        "fluorescence": IntensityRange(40.0, 100.0, 14.0, 9.0),
        "stained": IntensityRange(180.0, 195.0, 210.0, 195.0),
    }
    assert intensity_ranges(purple).keys() == {"stained"} and intensity_ranges([]) == {}
    assert ranges_from_dict(ranges_to_dict(got)) == got


def test_kinds_given_are_used_not_found_again():
    gray = [_nuclei(2, 40), _nuclei(9, 250)]
    # the second image's original was stained (as the native set stores it): its range is
    got = intensity_ranges(gray, ["fluorescence", "stained"])
    assert got == {
        "fluorescence": IntensityRange(40.0, 40.0, 2.0, 2.0),
        "stained": IntensityRange(250.0, 250.0, 9.0, 9.0),
    }
    with pytest.raises(ValueError, match="1 kinds for 2 images"):
        intensity_ranges(gray, ["fluorescence"])
    with pytest.raises(ValueError, match="not an image kind.*'brightfield'"):
        intensity_ranges(gray, ["fluorescence", "brightfield"])


@pytest.mark.parametrize(
    ("background", "nucleus", "expected"),
    [
        (5, 30, (30.0, 5.0)),  # at the edges of the range: as it is
        (20, 120, (120.0, 20.0)),
        (4, 20, (200.0, 40.0)),  # dimmer top: times 200 / 20
        (60, 240, (185.0, 5.0)),  # raised background: minus 55, the top 185 is in range
        (45, 60, (200.0, 50.0)),  # both: minus 40 (5, 20), then times 10
    ],
)
def test_fit_exposure(background, nucleus, expected, caplog):
    image = _nuclei(background, nucleus)
    with caplog.at_level("INFO", logger="nuclei_unet.model.exposure"):
        fitted = fit_exposure(image, TRAINED, "cells.tif")
    assert intensity_stats(fitted) == expected and fitted.dtype == np.uint8
    unchanged = expected == (float(nucleus), float(background))
    assert (fitted is image) == unchanged
    # what was done is said in plain words, and only when something was done
    said = caplog.text
    assert ("subtracted" in said) == (background > FLUO.background_max)
    assert ("scaled x" in said) == (not unchanged and expected[0] == FLUO.top_median)
    # each line names the file, so a user sees which of their images were fitted
    assert all(r.getMessage().startswith("cells.tif: ") for r in caplog.records)


def test_a_dim_stained_image_is_scaled_and_nothing_subtracted(caplog):
    dim = _purple(50, 20)  # gray: light 60 < 170, tissue median 60 > 40 (not a background)
    with caplog.at_level("INFO", logger="nuclei_unet.model.exposure"):
        fitted = fit_exposure(dim, TRAINED)
    assert intensity_stats(fitted) == (180.0, 180.0)  # times 180 / 60: blue 80 -> 240, unclipped
    assert "stained image's top at 60" in caplog.text and "subtracted" not in caplog.text
    typical = _purple(190, 80)
    assert fit_exposure(typical, TRAINED) is typical
    assert fit_exposure(dim, {"fluorescence": FLUO}) is dim  # no range for its kind


def _noise(mean: float, shape=(128, 160), seed=0) -> np.ndarray:
    """An empty field's camera noise, gray in 3 channels: Poisson counts of ``mean``."""
    rng = np.random.default_rng(seed)
    return np.repeat(rng.poisson(mean, (*shape, 1)).astype(np.uint8), 3, axis=2)


@pytest.mark.parametrize("mean", [0.5, 1.0, 4.0])
def test_an_empty_field_is_not_scaled_into_nuclei(mean, caplog):
    """Its top (4 to 11) is dimmer than any training image's, but scaling it would only scale
    its noise: it is left as it is, and the log says why. Two dim nuclei in the same noise are
    scaled, as are the same field's hot pixels' no longer counted as structure."""
    empty = _noise(mean)
    assert signal_to_noise(empty) < 7  # noise alone: about 6
    with caplog.at_level("INFO", logger="nuclei_unet.model.exposure"):
        assert fit_exposure(empty, TRAINED, "well_b7.tif") is empty
    assert "well_b7.tif: fluorescence image outside the trained range (top" in caplog.text
    assert "nothing in it stands out of its noise" in caplog.text and "scaled x" not in caplog.text
    hot = empty.copy()
    hot[[10, 60, 110], [15, 75, 135]] = 255  # 3 hot pixels: no structure, yet 16 up in 3 blocks
    assert fit_exposure(hot, TRAINED) is hot
    cells = empty.copy()
    cells[20:40, 20:40] += np.uint8(6)
    cells[80:100, 100:120] += np.uint8(6)
    assert signal_to_noise(cells) > 12
    assert intensity_stats(fit_exposure(cells, TRAINED))[0] == pytest.approx(FLUO.top_median, abs=2)


def test_an_empty_field_on_a_raised_background_is_left_as_it_is(caplog):
    """Lowered onto a dark background, its noise became hundreds of nuclei (744 with the real
    model for noise of 10 levels on 100) where as it is none were found."""
    raised = _noise(2.0) + np.uint8(50)  # background 52 > 20: 47 would be subtracted
    with caplog.at_level("INFO", logger="nuclei_unet.model.exposure"):
        assert fit_exposure(raised, TRAINED) is raised
    assert "subtracted" not in caplog.text and "(top 58, background 52)" in caplog.text
    assert "left as it is" in caplog.text


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (np.zeros((5, 5, 3), np.uint8), 0.0),  # flat: no structure
        (np.zeros((1, 1, 3), np.uint8), 0.0),  # one pixel: no neighbours either
    ],
)
def test_signal_to_noise_at_its_limits(image, expected):
    assert signal_to_noise(image) == expected
    # sharp nuclei and no noise: their edges are the noise. Blocks span 4 to 20 (16); 272 of
    # the 2 x 95 x 96 = 18,240 neighbour steps are +-16 (68 round each disc of radius 8), so a
    # pixel's noise is sqrt(272 x 16^2 / 18,240 / 2) = 1.38 and a block mean's a quarter of it
    assert signal_to_noise(_nuclei(4, 20)) == pytest.approx(16 / (np.sqrt(272 * 16**2 / 18240 / 2) / 4))


def test_a_batch_is_copied_only_when_an_image_changes():
    typical, dim = _nuclei(5, 100), _nuclei(4, 20)
    batch = np.stack([typical, typical])
    assert fit_exposures(batch, TRAINED) is batch and fit_exposures(batch, {}) is batch
    fitted = fit_exposures(np.stack([typical, dim]), TRAINED)
    assert np.array_equal(fitted[0], typical) and intensity_stats(fitted[1]) == (200.0, 40.0)


def test_a_batch_logs_each_fitted_image_by_name(caplog):
    batch = np.stack([_nuclei(5, 100), _nuclei(4, 20), _nuclei(4, 20)])
    with caplog.at_level("INFO", logger="nuclei_unet.model.exposure"):
        fit_exposures(batch, TRAINED, ["a", "b", "c"])
        fit_exposures(batch[:2], TRAINED)
    names = [r.getMessage().split(":")[0] for r in caplog.records]
    assert names == ["b", "c", "image 1"]
    with pytest.raises(ValueError, match="2 names for 3 images"):
        fit_exposures(batch, TRAINED, ["a", "b"])


@pytest.mark.parametrize(("exposure", "found"), [("keep", 0), ("fit", 4)])
def test_prediction_fits_a_dim_image_into_the_trained_range(exposure, found, caplog):
    # the threshold 'network' sees nuclei above half of full scale: these at 44 (below the
    # trained minimum top of 150) are not seen as they are; fitted to the median 220, all four are
    dim = _nuclei(2, 44)
    options = PredictParams(
        mode="tile", tile_scale=1.0, tile_size=32, tile_overlap=8, tta=False,
        instances="components", exposure=exposure, min_size=0,
    )
    scale = Scale(intensity={"fluorescence": IntensityRange(150.0, 220.0, 20.0, 5.0)})
    with caplog.at_level("INFO", logger="nuclei_unet.model.exposure"):
        _, labels = segment(
            Threshold(), dim, options, 32, torch.device("cpu"), scale=scale, name="dim.png"
        )
    assert labels.max() == found
    assert ("dim.png: fluorescence image's top at 44" in caplog.text) == (exposure == "fit")


def test_prediction_finds_no_nuclei_in_an_empty_field():
    """Scaled to the median top (x220 / 7), its noise would cross the 'network's threshold in
    hundreds of places."""
    options = PredictParams(
        mode="tile", tile_scale=1.0, tile_size=32, tile_overlap=8, tta=False,
        instances="components", exposure="fit", min_size=0,
    )
    scale = Scale(intensity={"fluorescence": IntensityRange(150.0, 220.0, 20.0, 5.0)})
    _, labels = segment(Threshold(), _noise(2.0)[:64, :64], options, 32, torch.device("cpu"), scale=scale)
    assert labels.max() == 0


def test_the_model_file_records_the_training_exposures(tmp_path):
    images, masks = squares(8, 0)
    images = np.repeat(images[..., :1], 3, axis=3)  # gray: fluorescence (colour noise: stained)
    params = TrainParams(input="resized", edge=False, batch_size=4, epochs=1, patience=None)
    tiny = ModelParams(widths=(4, 8), dropouts=(0.0, 0.0))
    train((images, masks), squares(4, 1), tiny, params, 0, tmp_path / "m.pt")
    recorded = load_checkpoint(tmp_path / "m.pt").scale.intensity
    assert recorded == intensity_ranges(images) and recorded["fluorescence"].top_min == 220.0


def test_a_crops_model_records_each_image_under_its_stored_kind(tmp_path):
    # prepare stored the kind of each original image; the rescaled one may look otherwise,
    # and predict will see the original: the stored kind decides
    samples = []
    for i, (nucleus, stained) in enumerate([(60, False), (90, False), (200, True)]):
        target = np.zeros((64, 64), np.uint8)
        target[16:40, 16:40] = 1
        image = np.where(target[..., None] == 1, nucleus, 3 + i).astype(np.uint8)
        samples.append(NativeSample(np.repeat(image, 3, axis=2), target, 1.0, stained, 20.0))
    params = TrainParams(
        input="crops", crop_size=32, crops_per_image=1, edge=False, batch_size=3, epochs=1,
        patience=None,
    )
    tiny = ModelParams(widths=(4, 8), dropouts=(0.0, 0.0))
    train(samples, samples[:1], tiny, params, 0, tmp_path / "m.pt")
    assert load_checkpoint(tmp_path / "m.pt").scale.intensity == {
        "fluorescence": IntensityRange(60.0, 75.0, 4.0, 3.5),
        "stained": IntensityRange(200.0, 200.0, 5.0, 5.0),
    }


def test_model_files_without_a_range_or_with_a_broken_one(tmp_path):
    save_model(UNet((4, 8), (0.0, 0.0)), tmp_path / "old.pt", {"input_size": 32})
    assert load_checkpoint(tmp_path / "old.pt").scale.intensity == {}  # fit: nothing to do
    for name, broken in [
        ("flat.pt", {"top_min": 3.0}),  # not by kind
        ("short.pt", {"fluorescence": {"top_min": 3.0}}),  # a range without its other fields
    ]:
        save_model(UNet((4, 8), (0.0, 0.0)), tmp_path / name, {"intensity": broken})
        with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')}: not (an )?intensity range"):
            load_checkpoint(tmp_path / name)
