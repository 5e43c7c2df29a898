"""The U-Net: the seed's exact parameter count, shapes, named parts, logits out."""

import datetime
import re
import typing

import pytest
import torch

from nuclei_unet.config.schema import ModelParams
from nuclei_unet.errors import DataError
from nuclei_unet.model.checkpoint import load_checkpoint, save_model
from nuclei_unet.model.preprocess import NORMALIZE_RULES
from nuclei_unet.model.unet import (
    NORMS,
    DoubleConv,
    Down,
    OutConv,
    UNet,
    Up,
    count_parameters,
    fuse_batch_norm,
    memory_format_for,
)


def test_seed_parameter_count():
    assert count_parameters(UNet()) == 1_941_105


def test_parameter_count_follows_widths():
    # two levels of (4, 8): inc 3->4->4, down 4->8->8, up 8->4 (+ conv 8->4->4), out 4->1
    conv = lambda i, o, k=3: i * o * k * k + o  # noqa: E731
    expected = (
        conv(3, 4) + conv(4, 4) + conv(4, 8) + conv(8, 8)
        + (8 * 4 * 2 * 2 + 4) + conv(8, 4) + conv(4, 4) + conv(4, 1, 1)
    )
    assert count_parameters(UNet((4, 8), (0.0, 0.0))) == expected


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_a_norm_adds_a_scale_and_shift_per_channel(norm):
    # (4, 8): conv units of 4, 4 (inc), 8, 8 (down), 4, 4 (up): 32 channels, 2 parameters each
    plain = count_parameters(UNet((4, 8), (0.0, 0.0)))
    assert count_parameters(UNet((4, 8), (0.0, 0.0), norm=norm)) == plain + 64


def test_an_unknown_norm_is_refused(tmp_path):
    with pytest.raises(ValueError, match="norm 'layer' is not one of"):
        UNet((4, 8), (0.0, 0.0), norm="layer")
    save_model(UNet((4, 8), (0.0, 0.0), norm="instance"), tmp_path / "m.pt")
    assert load_checkpoint(tmp_path / "m.pt").model.norm == "instance"
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["norm"] = "layer"  # a file from a version that knows more norms
    torch.save(payload, tmp_path / "new.pt")
    with pytest.raises(DataError, match=r"new\.pt: norm 'layer' is not one of .*\(a newer nuclei-unet\?\)"):
        load_checkpoint(tmp_path / "new.pt")


def test_bad_model_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.pt: model file not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}: a folder, not a model file$"):
        load_checkpoint(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"junk\.pt: cannot load model \(not a nuclei-unet model file, or a damaged one: \w+\)$"):
        load_checkpoint(tmp_path / "junk.pt")
    # a file that needs code to load (torch.load(weights_only=False) would run it)
    torch.save({"state_dict": {}, "when": datetime.date(2026, 1, 1)}, tmp_path / "code.pt")
    with pytest.raises(DataError, match=r"code\.pt: cannot load model \(not a nuclei-unet model file, or a damaged one: UnpicklingError\)$"):
        load_checkpoint(tmp_path / "code.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")  # someone else's checkpoint
    with pytest.raises(DataError, match=r"other\.pt: not a nuclei-unet model file"):
        load_checkpoint(tmp_path / "other.pt")


def test_params_offer_exactly_the_norms_and_input_rules_the_model_knows():
    # the schema's choices are literals; the model's are tuples: one list must not outgrow the other
    fields = ModelParams.model_fields
    assert typing.get_args(fields["norm"].annotation) == NORMS
    assert typing.get_args(fields["normalize"].annotation) == NORMALIZE_RULES


@pytest.mark.parametrize(
    ("norm", "layout"),
    [("none", torch.channels_last), ("batch", torch.channels_last), ("instance", torch.contiguous_format)],
)
def test_layout_follows_the_norm(norm, layout):
    model = UNet((4, 8), (0.0, 0.0), norm=norm)
    assert memory_format_for(model) == layout

    class Wrapped(torch.nn.Module):  # as DistributedDataParallel holds it
        def __init__(self) -> None:
            super().__init__()
            self.module = model

    assert memory_format_for(Wrapped()) == layout


def test_instance_norm_sees_each_sample_alone():
    torch.manual_seed(0)
    model = UNet((4, 8, 16), (0.0, 0.0, 0.0), norm="instance")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
        model.eval()  # no running statistics: prediction normalises as training did
        evaluated = model(x[1:2])
    torch.testing.assert_close(alone, together[1:2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(evaluated, alone, rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules()) == 10


@pytest.mark.parametrize("batch, size", [(1, 16), (2, 64), (3, 128)])
def test_output_shape_is_one_logit_channel(batch, size):
    model = UNet().eval()
    with torch.no_grad():
        out = model(torch.rand(batch, 3, size, size))
    assert out.shape == (batch, 1, size, size)
    # logits, not probabilities: a sigmoid output could never leave [0, 1]
    assert out.dtype == torch.float32


def test_forward_returns_logits_not_probabilities():
    model = UNet((4, 8), (0.0, 0.0)).eval()
    with torch.no_grad():
        model.outc.conv.bias.fill_(-10.0)
        out = model(torch.rand(1, 3, 16, 16))
    assert (out < 0).all()


@pytest.mark.parametrize("size", [(100, 128), (128, 120)])
def test_sizes_not_multiple_of_16_are_refused(size):
    with pytest.raises(ValueError, match="multiple of 16"):
        UNet()(torch.rand(1, 3, *size))


def test_parts_shapes():
    x = torch.rand(2, 4, 32, 32)
    assert DoubleConv(4, 6, 0.1)(x).shape == (2, 6, 32, 32)
    assert Down(4, 8, 0.1)(x).shape == (2, 8, 16, 16)
    assert Up(8, 4, 0.1)(torch.rand(2, 8, 16, 16), x).shape == (2, 4, 32, 32)
    assert OutConv(4)(x).shape == (2, 1, 32, 32)


def test_dropouts_follow_params():
    model = UNet((4, 8, 16), (0.1, 0.2, 0.3))
    drops = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    # encoder levels 0, 1, 2 then decoder levels 1, 0
    assert drops == [0.1, 0.2, 0.3, 0.2, 0.1]


def test_he_init_std():
    torch.manual_seed(0)
    conv = UNet().downs[3].conv.block[3]  # 3x3, 256 -> 256: fan_in 2304
    std = conv.weight.std().item()
    assert std == pytest.approx((2 / 2304) ** 0.5, rel=0.05)
    assert conv.bias.abs().max().item() == 0.0


@pytest.mark.parametrize("norm, batch_norms", [("batch", 10), ("none", 0), ("instance", 0)])
def test_fused_batch_norm_gives_the_same_logits(norm, batch_norms):
    torch.manual_seed(0)
    model = UNet((4, 8, 16), (0.1, 0.1, 0.2), norm=norm)
    # non-trivial running statistics, as after training
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, 32, 32) * 2)
    model.eval()
    # 5 double convs (inc, 2 down, 2 up), 2 batch norms each
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == batch_norms
    fused = fuse_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert not fused.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)
    # the original is left as it was
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == batch_norms
