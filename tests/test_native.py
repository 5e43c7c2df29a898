"""Native-scale training and prediction: the native set, its crops, the edge class, the scale
estimate and the per-kind figures, each against a known answer."""

import numpy as np
import pytest
import torch
from conftest import Threshold, disc

from nuclei_unet.config.schema import AugmentParams, NativeParams, PredictParams, TrainParams
from nuclei_unet.data.kinds import FLUORESCENCE, STAINED, image_kind
from nuclei_unet.data.native import (
    BODY,
    CONTACT,
    EDGE,
    GAP,
    NativeSample,
    edge_targets,
    load_native,
    median_diameter,
    native_sample,
    rescale_labels,
    save_native,
    scale_for,
)
from nuclei_unet.errors import DataError, ParamsError
from nuclei_unet.config.load import build
from nuclei_unet.infer.instances import split_instances
from nuclei_unet.infer.probs import output_maps, predict_maps
import nuclei_unet.infer.segment
from nuclei_unet.infer.segment import estimate_scale, predict_full, segment
from nuclei_unet.model.checkpoint import Scale
from nuclei_unet.model.unet import UNet, foreground_logit
from nuclei_unet.train.losses import bce_dice_loss, loss_for, out_channels_for
from nuclei_unet.transforms.crops import (
    CropSet,
    contact_weights,
    foreground_points,
    padded_region,
    target_channels,
    val_crops,
)

NO_AUGMENT = AugmentParams(flip=False, rot90=False, elastic_sigma=0.0, hed=0.0)


def test_image_kinds():
    dark_gray = np.full((8, 8, 3), 12, np.uint8)
    assert image_kind(dark_gray) == FLUORESCENCE
    purple = np.dstack([np.full((8, 8), v, np.uint8) for v in (120, 60, 140)])
    assert image_kind(purple) == STAINED  # colour
    assert image_kind(np.full((8, 8, 3), 220, np.uint8)) == STAINED  # gray, bright background


def test_median_diameter_and_scale():
    labels = np.zeros((100, 100), np.int32)
    for k, (y, x) in enumerate([(20, 20), (20, 70), (70, 45)], start=1):
        labels[disc(labels.shape, (y, x), 10)] = k
    d = median_diameter(labels)
    assert d == pytest.approx(20.0, abs=0.3)  # discs of radius 10
    assert scale_for(d, 10.0) == pytest.approx(10.0 / d)
    assert scale_for(None, 10.0) == 1.0 and scale_for(d, None) == 1.0
    assert scale_for(1.0, 100.0) == 4.0  # clipped
    assert median_diameter(np.zeros((5, 5), np.int32)) is None


def test_edge_targets_keep_touching_nuclei_apart():
    labels = np.zeros((9, 12), np.int32)
    labels[2:7, 1:6], labels[2:7, 6:11] = 1, 2  # two 5x5 squares sharing a side
    target = edge_targets(labels, 1)
    body = target == BODY
    # each square's 3x3 core is body; the shared side is contact on both sides, the rest of
    # the rim is edge
    assert body.sum() == 18 and (target[2:7, 5:7] == CONTACT).all()
    assert ((target == EDGE) | (target == CONTACT)).sum() == 50 - 18
    assert split_instances(body, "components").max() == 2  # the bodies are two seeds
    labels[:, 6] = 0  # a one-pixel gap between them instead
    assert (edge_targets(labels, 1)[2:7, 6] == GAP).all()


def test_native_sample_rescales_to_the_diameter(tmp_path):
    labels = np.zeros((200, 200), np.int32)
    for k, (y, x) in enumerate([(50, 50), (50, 150), (150, 100)], start=1):
        labels[disc(labels.shape, (y, x), 20)] = k
    image = np.where(labels[..., None] > 0, 200, 10).astype(np.uint8).repeat(3, axis=2)
    sample = native_sample(image, labels, NativeParams(enabled=True, diameter=20.0, edge_width=1))
    assert sample.scale == pytest.approx(0.5, abs=0.01)
    assert sample.image.shape == (100, 100, 3) and sample.target.shape == (100, 100)
    assert not sample.stained and sample.diameter == 20.0
    found = median_diameter(split_instances(sample.target > 0, "components"))
    assert found == pytest.approx(20.0, abs=1.0)
    (tmp_path / "native").mkdir()
    save_native(tmp_path / "native", "a", sample)
    (back,) = load_native(tmp_path, ["a"])
    assert np.array_equal(back.image, sample.image) and back.scale == sample.scale
    with pytest.raises(DataError, match="prepare.native.enabled"):
        load_native(tmp_path / "nowhere", ["a"])


def test_rescale_labels_nearest():
    labels = np.arange(4, dtype=np.int32).reshape(2, 2)
    assert rescale_labels(labels, (4, 4)).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def _samples(n: int, stained_every: int = 0) -> list[NativeSample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        target = np.zeros((40, 50), np.uint8)
        target[10:30, 10:30] = BODY
        target[10, 10:30] = EDGE
        image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
        out.append(NativeSample(image, target, 1.0, bool(stained_every and i % stained_every == 0), 20.0))
    return out


def test_crops_shapes_determinism_and_targets():
    samples = _samples(3)
    crops = CropSet(samples, 32, 2, 0.25, NO_AUGMENT, True, 1.0, seed=5)
    assert len(crops) == 6
    image, target = crops[0]
    assert image.shape == (3, 32, 32) and target.shape == (2, 32, 32)
    assert set(target.unique().tolist()) <= {0.0, 1.0}
    assert (target[1] <= target[0]).all()  # the edge lies inside the foreground
    again = CropSet(samples, 32, 2, 0.25, NO_AUGMENT, True, 1.0, seed=5)[0]
    assert torch.equal(image, again[0]) and torch.equal(target, again[1])
    crops.set_epoch(1)
    assert not torch.equal(crops[0][0], image)  # a new draw each epoch


def test_crop_without_zoom_is_the_region():
    (sample,) = _samples(1)
    crops = CropSet([sample], 16, 1, 0.0, NO_AUGMENT, False, 1.0, seed=0)
    image, target = crops[0]
    # no jitter, no augmentation: some 16x16 window of the image, exactly
    windows = np.lib.stride_tricks.sliding_window_view(sample.image, (16, 16, 3))[..., 0, :, :, :]
    want = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert (windows == want).all(axis=(-3, -2, -1)).any()
    assert target.shape == (1, 16, 16)


def test_contact_weights_and_channels():
    target = np.array([[0, BODY, EDGE, CONTACT, GAP]], np.uint8)
    assert target_channels(target, True).tolist() == [[[0, 1, 1, 1, 0]], [[0, 0, 1, 1, 0]]]
    assert contact_weights(target, 5.0).tolist() == [[[1, 1, 1, 5, 5]]]
    (sample,) = _samples(1)
    sample.target[20, 10:30] = CONTACT
    crops = CropSet([sample], 32, 1, 0.0, NO_AUGMENT, True, 1.0, seed=0, contact_weight=5.0)
    image, target, weight = crops[0]
    assert weight.shape == (1, 32, 32) and set(weight.unique().tolist()) <= {1.0, 5.0}
    assert len(CropSet([sample], 32, 1, 0.0, NO_AUGMENT, True, 1.0, seed=0)[0]) == 2


def test_oversampling_draws_stained_images_more_often():
    samples = _samples(10, stained_every=5)  # 2 stained of 10
    crops = CropSet(samples, 16, 100, 0.0, NO_AUGMENT, False, 4.0, seed=1)
    share = np.mean([samples[i].stained for i in crops.order])
    assert share == pytest.approx(8 / 16, abs=0.03)  # weights 2 x 4 against 8 x 1
    assert len(crops) == 1000  # the epoch's size does not change


def test_exposure_only_on_fluorescence_images_when_asked():
    samples = _samples(4, stained_every=2)  # samples 0 and 2 stained
    gain = NO_AUGMENT.model_copy(update={"gain": 1.0})
    plain = CropSet(samples, 16, 5, 0.0, NO_AUGMENT, False, 1.0, seed=2)
    both = CropSet(samples, 16, 5, 0.0, gain, False, 1.0, seed=2)
    fluo = CropSet(samples, 16, 5, 0.0, gain, False, 1.0, seed=2, exposure_stained=False)
    stained = [i for i in range(len(plain)) if samples[plain.order[i]].stained]
    assert 0 < len(stained) < len(plain)
    for i in range(len(plain)):
        changed_both = not torch.equal(both[i][0], plain[i][0])
        changed_fluo = not torch.equal(fluo[i][0], plain[i][0])
        if i in stained:
            assert changed_both and not changed_fluo
        else:
            assert changed_fluo and torch.equal(fluo[i][0], both[i][0])


def _sparse_sample() -> NativeSample:
    """A 256-px image whose only nucleus is a 6-px square near one corner."""
    target = np.zeros((256, 256), np.uint8)
    target[200:206, 30:36] = BODY
    return NativeSample(np.zeros((256, 256, 3), np.uint8), target, 1.0, False, 20.0)


def test_foreground_crops_hold_a_nucleus():
    sample = _sparse_sample()
    points = foreground_points(sample.target)
    assert len(points) == 36 and points.min(axis=0).tolist() == [200, 30]
    # flat indices 0, 12, 23 and 35 of the 36 (linspace rounded), 6 per row
    want = [[200, 30], [202, 30], [203, 35], [205, 35]]
    assert foreground_points(sample.target, limit=4).tolist() == want

    def with_nucleus(share: float, n: int) -> int:
        crops = CropSet([sample], 32, n, 0.25, NO_AUGMENT, False, 1.0, seed=3, foreground=share)
        return sum(bool(crops[i][1].sum() > 0) for i in range(n))

    assert with_nucleus(1.0, 50) == 50
    assert with_nucleus(0.0, 50) < 10  # anywhere: about 3 % of 32-px crops meet the nucleus
    assert 70 <= with_nucleus(0.5, 200) <= 130
    empty = NativeSample(sample.image, np.zeros_like(sample.target), 1.0, False, 20.0)
    crops = CropSet([empty], 32, 1, 0.0, NO_AUGMENT, False, 1.0, seed=0, foreground=1.0)
    assert crops[0][1].sum() == 0  # no nucleus to centre on: a crop from anywhere


def test_draws_follow_stain_and_area_weights():
    """Four images: a large and a small one of each kind; 4,000 draws of one epoch counted."""
    def sample(side: int, stained: bool) -> NativeSample:
        return NativeSample(np.zeros((side, side, 3), np.uint8), np.zeros((side, side), np.uint8),
                            1.0, stained, 20.0)

    samples = [sample(512, False), sample(128, False), sample(512, True), sample(128, True)]

    def shares(oversample: float, power: float) -> list[float]:
        crops = CropSet(samples, 32, 1000, 0.0, NO_AUGMENT, False, oversample, seed=1,
                        area_power=power)
        assert len(crops) == 4000  # the epoch's size never changes
        return (np.bincount(crops.order, minlength=4) / 4000).tolist()

    # weights 1 : 1 : 1 : 1; stained 3x: 1 : 1 : 3 : 3; by area (16 : 1, whatever the crop
    # size) to the power 1/2: 4 : 1 : 4 : 1; both: 4 : 1 : 12 : 3
    for (oversample, power), want in {
        (1.0, 0.0): [1 / 4] * 4, (3.0, 0.0): [1 / 8, 1 / 8, 3 / 8, 3 / 8],
        (1.0, 0.5): [0.4, 0.1, 0.4, 0.1], (3.0, 0.5): [0.2, 0.05, 0.6, 0.15],
    }.items():
        assert shares(oversample, power) == pytest.approx(want, abs=0.025)
    assert shares(1.0, 0.0) == shares(1.0, 0.0)  # seeded: the same draw again


def test_padded_region_mirrors_small_images():
    small = np.arange(6).reshape(2, 3)
    region = padded_region(small, 0, 0, 5)
    assert region.shape == (5, 5) and set(np.unique(region)) == set(range(6))


def test_val_crops_are_the_corners():
    samples = _samples(2)
    x, y = val_crops(samples, 32, edge=False)
    assert x.shape == (8, 3, 32, 32) and y.shape == (8, 1, 32, 32)
    first = torch.from_numpy(samples[0].image[:32, :32]).permute(2, 0, 1).float() / 255
    assert torch.allclose(x[0], first)
    assert np.array_equal(target_channels(samples[0].target[:32, :32], False)[0], y[0, 0].numpy())


def test_edge_loss_adds_the_edge_bce():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 2, 8, 8), (torch.rand(2, 2, 8, 8) > 0.5).float()
    edge = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 1:], target[:, 1:])
    want = bce_dice_loss(logits[:, :1], target[:, :1]) + edge
    assert torch.allclose(loss_for("bce_dice", edge=True)(logits, target), want)
    assert out_channels_for("bce_dice", edge=True) == 2 and out_channels_for("bce") == 1


def test_edge_model_head_and_maps():
    net = UNet((4, 8), (0.0, 0.0), out_channels=2)
    assert net.head == "sigmoid" and output_maps(net) == 2
    maps = predict_maps(net, np.zeros((1, 16, 16, 3), np.uint8), 1, progress=False)
    with torch.no_grad():
        logits = net.eval()(torch.zeros(1, 3, 16, 16))
    assert maps.shape == (1, 2, 16, 16)
    assert np.allclose(maps[0], torch.sigmoid(logits[0]).numpy(), atol=1e-6)
    softmax = UNet((4, 8), (0.0, 0.0), out_channels=2, head="softmax")
    assert output_maps(softmax) == 1
    z = torch.tensor([[[[1.0]], [[3.0]]]])
    assert foreground_logit(z, "softmax").item() == 2.0 and foreground_logit(z).item() == 1.0


def test_edge_instances_split_touching_nuclei():
    shape = (40, 60)
    a, b = disc(shape, (20, 20), 10), disc(shape, (20, 38), 10)  # overlapping discs: one blob
    fg = (a | b).astype(np.float32)
    edge = np.zeros(shape, np.float32)
    edge[:, 28:31] = 1.0  # the learned contact between them
    labels = split_instances(fg > 0.5, "edge", edge=edge, fg=fg)
    assert labels.max() == 2
    assert split_instances(fg > 0.5, "components").max() == 1
    with pytest.raises(ValueError, match="train.edge"):
        split_instances(fg > 0.5, "edge")


def test_scale_estimate_finds_the_nucleus_size():
    shape = (256, 256)
    labels = np.zeros(shape, np.int32)
    for k, (y, x) in enumerate([(60, 60), (60, 190), (190, 60), (190, 190)], start=1):
        labels[disc(shape, (y, x), 20)] = k  # diameter 40
    image = np.where(labels[..., None] > 0, 220, 20).astype(np.uint8).repeat(3, axis=2)
    options = PredictParams(mode="scaled", tta=False, tile_size=64, tile_overlap=16, instances="components")
    scale = estimate_scale(Threshold(), image, options, 20.0, torch.device("cpu"), torch.float32)
    assert scale == pytest.approx(0.5, abs=0.02)
    maps, factor = predict_full(Threshold(), image, options, 64, torch.device("cpu"), scale=Scale(True, 20.0))
    assert factor == scale
    assert maps.shape == (1, *shape)
    assert ((maps[0] > 0.5) == (labels > 0)).mean() > 0.98
    with pytest.raises(DataError, match="train.input: crops"):
        predict_full(Threshold(), image, options, 64, torch.device("cpu"))


def test_a_coarse_pass_that_finds_large_nuclei_sets_the_start(monkeypatch):
    # nine 40-px nuclei: the coarse pass at 0.5x finds them at 20 px, so the search goes on
    # at 0.5x, where they settle, instead of starting at 1x (4 nuclei: too few, it starts at 1x)
    scales = []
    tiled = nuclei_unet.infer.segment.tiled_maps
    monkeypatch.setattr(nuclei_unet.infer.segment, "tiled_maps",
                        lambda *args, **kw: scales.append(args[5]) or tiled(*args, **kw))
    options = PredictParams(mode="scaled", tta=False, tile_size=64, tile_overlap=16, instances="components")
    for n, passes in ((3, [0.5, 0.5]), (2, [0.5, 1.0, 0.5])):
        shape = (128 * n, 128 * n)
        labels = np.zeros(shape, np.int32)
        for k in range(n * n):
            labels[disc(shape, (64 + 128 * (k // n), 64 + 128 * (k % n)), 20)] = k + 1
        image = np.where(labels[..., None] > 0, 220, 20).astype(np.uint8).repeat(3, axis=2)
        scales.clear()
        got = estimate_scale(Threshold(), image, options, 20.0, torch.device("cpu"), torch.float32)
        assert got == pytest.approx(0.5, abs=0.02)
        assert scales[:1] + [round(s, 1) for s in scales[1:]] == passes


def test_small_nuclei_of_a_low_magnification_image_are_found_and_kept():
    # 16 nuclei of 5 px (21 px area, under min_size 25): the coarse pass at 0.5x and the
    # first at 1x find nothing, the next looks at 2x and settles on 4x; the final split keeps
    # objects down to half a 5-px nucleus (9.8 px), where the plain min size 25 had dropped
    # every one
    shape = (96, 96)
    labels = np.zeros(shape, np.int32)
    centres = [(12 + 24 * i, 12 + 24 * j) for i in range(4) for j in range(4)]
    for k, centre in enumerate(centres, start=1):
        labels[disc(shape, centre, 2.6)] = k
    assert 19 <= np.bincount(labels.ravel())[1:].max() < 25
    image = np.where(labels[..., None] > 0, 220, 20).astype(np.uint8).repeat(3, axis=2)
    options = PredictParams(mode="scaled", tta=False, tile_size=64, tile_overlap=16, instances="components")
    cpu = torch.device("cpu")
    expected = 20.0 / median_diameter(labels)  # 3.87
    assert estimate_scale(Threshold(), image, options, 20.0, cpu, torch.float32) == pytest.approx(expected, rel=0.05)
    mask, found = segment(Threshold(), image, options, 64, cpu, scale=Scale(True, 20.0))
    assert found.max() == 16 and ((found > 0) == (labels > 0)).mean() > 0.98
    # nothing to find at any scale: the image's own scale, not a zoom into an empty image
    empty = np.full((64, 64, 3), 20, np.uint8)
    assert estimate_scale(Threshold(), empty, options, 20.0, cpu, torch.float32) == 1.0


@pytest.mark.parametrize("start, found, expected", [
    # each pass's (median diameter at its scale, object count); None: no object found
    (1.0, [None, (10.0, 9)], 4.0),  # nothing at 1x, 10-px nuclei at 2x (5 px at 1x): 20 / 5
    (1.0, [(10.0, 9), None], 2.0),  # 10 px at 1x, then nothing at the guess 2x: the guess stays
    (1.0, [None, None], 1.0),  # nothing anywhere: the image's own scale
    # a coarse pass at 0.5x that finds nuclei larger than the model's: the search goes on from
    # its guess (30-px nuclei: 2/3), which the next pass confirms
    (0.5, [(15.0, 9), (20.0, 9)], 20 / 30),
    (0.5, [(15.0, 9), None], 20 / 30),  # nothing at that guess: the coarse guess stays
    # the same objects, too few to trust (clumps): dropped, the search starts at 1
    (0.5, [(15.0, 3), (10.0, 3), (20.0, 9)], 2.0),
    # a coarse pass that finds small objects (10 px at 1x) is dropped: 10 px at 1x, 20 at 2x
    (0.5, [(5.0, 9), (10.0, 9), (20.0, 9)], 2.0),
    (0.5, [None, (10.0, 9), (20.0, 9)], 2.0),  # nothing at 0.5x: likewise
    (0.5, [None, None, None], 1.0),  # nothing at 0.5x, 1x, 2x: the image's own scale
])
def test_scale_passes_control_flow(monkeypatch, start, found, expected):
    # the passes' objects stand in for a model's, to check the control flow
    passes = iter(found)
    monkeypatch.setattr(nuclei_unet.infer.segment, "_found_nuclei",
                        lambda *args: next(passes) or (None, 0))
    options = PredictParams(mode="scaled", tta=False, scale_passes=3, scale_start=start)
    image = np.zeros((32, 32, 3), np.uint8)
    got = estimate_scale(Threshold(), image, options, 20.0, torch.device("cpu"), torch.float32)
    assert got == pytest.approx(expected)
    assert next(passes, "all used") == "all used"


def test_multi_scale_maps_are_the_mean_of_each_scales_maps():
    # a blurry disc: its probability edge depends on the scale, so the two zooms differ and
    # the multi-scale maps must be exactly their average (each brought to the image's size)
    shape = (96, 96)
    yy, xx = np.mgrid[0:96, 0:96]
    image = np.clip(255 - 4 * np.hypot(yy - 48, xx - 48), 0, 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    cpu, scale = torch.device("cpu"), Scale(True, None)  # own-scale model: factor 1
    options = PredictParams(mode="scaled", tta=False, tile_size=64, tile_overlap=16, instances="components")
    one = {z: predict_full(Threshold(), image, options.model_copy(update={"scales": (z,)}), 64, cpu, scale=scale)[0]
           for z in (1.0, 0.5)}
    both, factor = predict_full(Threshold(), image, options.model_copy(update={"scales": (1.0, 0.5)}), 64, cpu, scale=scale)
    assert factor == 1.0 and both.shape == (1, *shape)
    assert not np.allclose(one[1.0], one[0.5])
    np.testing.assert_allclose(both, (one[1.0] + one[0.5]) / 2, atol=1e-6)


def test_params_refuse_edge_without_crops():
    with pytest.raises(ParamsError, match="train.edge: needs input: crops"):
        build(TrainParams, {"edge": True, "input": "resized"}, "train")
    with pytest.raises(ParamsError, match="softmax_ce"):
        build(TrainParams, {"edge": True, "input": "crops", "loss": "softmax_ce"}, "train")
    assert build(TrainParams, {"edge": True, "input": "crops"}, "train").edge
