"""Training, early stopping, checkpoints and prediction on tiny data."""

import numpy as np
import pytest
import torch
from conftest import squares

from nuclei_unet.config.schema import ModelParams, TrainParams
from nuclei_unet.errors import NucleiError, ParamsError
from nuclei_unet.infer.probs import predict_probs, threshold
from nuclei_unet.model.checkpoint import load_checkpoint
from nuclei_unet.runtime import cpu_has_bf16, resolve_precision
from nuclei_unet.train.build import KERAS_ADAM_EPS, make_optimizer
from nuclei_unet.train.loop import train

TINY = ModelParams(widths=(4, 8), dropouts=(0.0, 0.0))


class Recorder:
    """A stand-in for dvclive.Live that records what is logged."""

    def __init__(self):
        self.summary, self.rows, self.current = {}, [], {}

    def log_metric(self, name, val):
        self.current[name] = val

    def next_step(self):
        self.rows.append(self.current)
        self.current = {}


def test_training_learns_logs_and_keeps_the_best(tmp_path):
    params = TrainParams(input="resized", edge=False, lr=0.01, batch_size=4, epochs=8, patience=None)
    live = Recorder()
    result = train(squares(16, 0), squares(8, 1), TINY, params, 0, tmp_path / "m.pt", live)
    assert result.epochs_run == 8 and len(live.rows) == 8
    assert set(live.rows[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "val_iou", "val_dice"}
    assert live.rows[-1]["loss"] < live.rows[0]["loss"]
    best = min(range(8), key=lambda i: live.rows[i]["val_loss"])
    assert result.best_epoch == best + 1 == live.summary["best_epoch"]
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert saved["epoch"] == best + 1
    assert saved["val_loss"] == pytest.approx(live.rows[best]["val_loss"])


def test_early_stopping_stops_after_patience(tmp_path):
    # lr 0 never improves after epoch 1: patience 2 ends the run at epoch 3
    params = TrainParams(input="resized", edge=False, optimizer="sgd", lr=1e-12, momentum=0.0, batch_size=4, epochs=10, patience=2)
    result = train(squares(8, 0), squares(4, 1), TINY, params, 0, tmp_path / "m.pt")
    assert result.epochs_run == 3 and result.best_epoch == 1


def test_device_param_reaches_training(tmp_path):
    # cpu named and auto (no GPU here) train the same weights; cuda without a GPU is refused
    # before any work, in words
    for device in ("cpu", "auto"):
        params = TrainParams(input="resized", edge=False, batch_size=4, epochs=1, patience=None, device=device)
        train(squares(8, 0), squares(4, 1), TINY, params, 5, tmp_path / f"{device}.pt")
    a = torch.load(tmp_path / "cpu.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "auto.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) and b[k].device.type == "cpu" for k in a)
    if not torch.cuda.is_available():
        with pytest.raises(NucleiError, match="device 'cuda' was asked for"):
            train(squares(8, 0), squares(4, 1), TINY, TrainParams(input="resized", edge=False, device="cuda"), 5, tmp_path / "c.pt")


def test_a_diverging_run_is_one_line_about_the_learning_rate(tmp_path):
    params = TrainParams(input="resized", edge=False, lr=1e12, batch_size=4, epochs=3,
                         patience=None, precision="fp32")
    with pytest.raises(ParamsError, match=r"^train\.lr: the training loss became nan at epoch 1; lower train\.lr$"):
        train(squares(8, 0), squares(4, 1), TINY, params, 0, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_same_seed_same_weights(tmp_path):
    params = TrainParams(input="resized", edge=False, batch_size=4, epochs=2, patience=None)
    for name in ("a.pt", "b.pt"):
        train(squares(8, 0), squares(4, 1), TINY, params, 5, tmp_path / name)
    a = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_optimizers():
    model = torch.nn.Linear(2, 1)
    adam = make_optimizer(model, TrainParams(optimizer="adam", lr=0.002))
    sgd = make_optimizer(model, TrainParams(optimizer="sgd", lr=0.01, momentum=0.99))
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["eps"] == KERAS_ADAM_EPS
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.99


def test_predict_and_threshold_roundtrip(tmp_path):
    params = TrainParams(input="resized", edge=False, lr=0.01, batch_size=4, epochs=10, patience=None)
    train(squares(16, 0), squares(8, 1), TINY, params, 0, tmp_path / "m.pt")
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert checkpoint.input_size == 16
    model = checkpoint.model
    images, masks = squares(6, 2)
    probs = predict_probs(model, images, batch_size=4)
    assert probs.shape == (6, 16, 16) and probs.dtype == np.float32
    assert 0.0 <= probs.min() and probs.max() <= 1.0
    pred = threshold(probs, 0.5)
    assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
    assert (pred == masks).mean() > 0.9


def test_threshold_is_strict():
    np.testing.assert_array_equal(threshold(np.array([0.49, 0.5, 0.51]), 0.5), [0, 0, 1])


def test_precision_resolution(tmp_path):
    assert resolve_precision("fp32") == torch.float32
    assert resolve_precision("bf16") == torch.bfloat16
    (tmp_path / "cpuinfo").write_text("flags : fpu avx2 avx512_bf16\n")
    assert cpu_has_bf16(tmp_path / "cpuinfo")
    (tmp_path / "cpuinfo").write_text("flags : fpu avx2\n")
    assert not cpu_has_bf16(tmp_path / "cpuinfo")
    assert resolve_precision("auto") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)


@pytest.mark.parametrize("flags, device, expected", [
    ("fpu sse2 avx avx2 fma", "cpu", torch.float32),  # AVX2 only: bf16 would be emulated
    ("fpu avx2 avx512f avx512bw", "cpu", torch.float32),  # AVX-512 without its bf16 part
    ("fpu avx2 avx512f avx512_bf16", "cpu", torch.bfloat16),  # e.g. AMD EPYC (Zen 4)
    ("fpu avx2 amx_bf16 amx_tile", "cpu", torch.bfloat16),  # Intel Sapphire Rapids
    ("fpu avx2 fma", "cuda", torch.bfloat16),  # any GPU: bf16 autocast
])
def test_auto_precision_by_machine(tmp_path, flags, device, expected):
    (tmp_path / "cpuinfo").write_text(f"model name : test\nflags : {flags}\n")
    assert resolve_precision("auto", device, tmp_path / "cpuinfo") == expected
    assert resolve_precision("fp32", device, tmp_path / "cpuinfo") == torch.float32


def test_train_step_is_one_hand_computed_sgd_step():
    # a 1x1 conv with zero weights: logits 0, so the BCE on all-ones targets is ln 2, and its
    # gradient per weight is mean over 4 pixels of (sigmoid(0) - 1) * x = -0.5 * 2 = -1.0
    from nuclei_unet.train.losses import bce_loss
    from nuclei_unet.train.steps import train_step

    model = torch.nn.Conv2d(3, 1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.full((1, 3, 2, 2), 2.0), torch.ones(1, 1, 2, 2)
    loss, logits = train_step(model, optimizer, (x, y, None), torch.float32, bce_loss)
    assert float(loss.detach()) == pytest.approx(np.log(2.0))
    assert torch.equal(logits, torch.zeros(1, 1, 2, 2))  # the forward before the step
    assert torch.allclose(model.weight, torch.full((1, 3, 1, 1), 0.5))  # 0 - 0.5 * (-1.0)
