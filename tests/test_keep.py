"""train.keep: which weights a run writes (best epoch, last epoch, mean of the last epochs)."""

import pytest
import torch
from conftest import squares

from nuclei_unet.config.schema import ModelParams, TrainParams
from nuclei_unet.train.averaging import average_states, remember
from nuclei_unet.train.loop import train
from test_train_predict import Recorder

TINY = ModelParams(widths=(4, 8), dropouts=(0.0, 0.0))  # with batch norm: buffers too
KEEP_RULES = TrainParams.model_fields["keep"].annotation.__args__


def _params(keep: str, epochs: int = 6, **kw) -> TrainParams:
    return TrainParams(
        input="resized", edge=False, lr=0.01, batch_size=4, epochs=epochs, patience=None,
        keep=keep, average_epochs=3, **kw,
    )


def test_average_of_three_states_by_hand():
    states = [{"w": torch.tensor([1.0, 0.0]), "n": torch.tensor(1)},
              {"w": torch.tensor([2.0, 3.0]), "n": torch.tensor(2)},
              {"w": torch.tensor([6.0, -3.0]), "n": torch.tensor(3)}]
    out = average_states(states)
    assert out["w"].tolist() == [3.0, 0.0] and out["n"].item() == 3
    assert out["w"].dtype == torch.float32 and out["n"].dtype == torch.int64
    with pytest.raises(ValueError, match="no weights"):
        average_states([])


def test_remember_keeps_the_last_n_as_copies():
    recent, w = [], torch.zeros(1)
    for i in range(5):
        w.fill_(i)  # in place, as an optimiser step changes a parameter
        remember(recent, {"w": w}, 3)
    assert [s["w"].item() for s in recent] == [2.0, 3.0, 4.0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 6-epoch run (same seed, same data) written under each rule, with its logs."""
    root = tmp_path_factory.mktemp("keep")
    out = {}
    for keep in KEEP_RULES:
        live = Recorder()
        result = train(squares(16, 0), squares(8, 1), TINY, _params(keep), 0, root / f"{keep}.pt", live)
        out[keep] = (result, live, torch.load(root / f"{keep}.pt", weights_only=True))
    return out


def test_each_rule_writes_its_weights(runs):
    best_result, best_live, best = runs["best"]
    assert best["epoch"] == best_result.best_epoch
    assert best["weights"] == f"epoch {best_result.best_epoch} (lowest val_loss)"
    assert "kept_val_loss" not in best_live.summary and best_result.kept is None
    _, last_live, last = runs["last"]
    assert last["weights"] == "epoch 6 (the last)"
    # the same training: the last epoch's val_loss is the one logged for epoch 6
    assert last["val_loss"] == pytest.approx(last_live.rows[-1]["val_loss"], rel=1e-5)
    assert last_live.summary["kept_val_loss"] == pytest.approx(last["val_loss"])
    avg_result, avg_live, avg = runs["average"]
    assert avg["weights"] == "the mean of epochs 4-6"
    assert avg_live.summary["kept_val_loss"] == pytest.approx(avg["val_loss"])
    assert set(avg_result.kept) == {"val_loss", "val_iou", "val_dice"}
    # every rule saw the same training run (val chooses nothing under last and average)
    assert [r["val_loss"] for r in best_live.rows] == [r["val_loss"] for r in avg_live.rows]
    assert best["epoch"] == last["epoch"] == avg["epoch"]


def test_the_average_is_the_mean_of_the_last_epochs_weights(tmp_path):
    # the last three epochs' weights, from runs of 4, 5 and 6 epochs under keep last (the
    # cosine schedule depends on the epoch count, so the scheduler is off here)
    ends = []
    for epochs in (4, 5, 6):
        train(squares(16, 0), squares(8, 1), TINY, _params("last", epochs, scheduler="none"), 0, tmp_path / "l.pt")
        ends.append(torch.load(tmp_path / "l.pt", weights_only=True)["state_dict"])
    train(squares(16, 0), squares(8, 1), TINY, _params("average", 6, scheduler="none"), 0, tmp_path / "a.pt")
    avg = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    for key, value in avg.items():
        if value.is_floating_point():
            expected = (ends[0][key] + ends[1][key] + ends[2][key]) / 3
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        else:  # batch norm's step counter: the last epoch's
            assert torch.equal(value, ends[2][key])
    # and it is not any one epoch's
    key = next(k for k, v in avg.items() if v.is_floating_point())
    assert not any(torch.equal(avg[key], end[key]) for end in ends)


def test_a_resumed_run_keeps_the_weights_to_average(tmp_path):
    from nuclei_unet.train.resume import LoopState, load_resume, save_resume

    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    recent = [{"weight": torch.full((1, 2), float(i)), "bias": torch.zeros(1)} for i in range(3)]
    save_resume(tmp_path / "r.pt", LoopState(epoch=3, recent=recent), net, opt, None, "fp")
    state = load_resume(tmp_path / "r.pt", net, opt, None, "fp")
    assert [s["weight"][0, 0].item() for s in state.recent] == [0.0, 1.0, 2.0]


def test_a_checkpoint_of_other_params_or_data_is_not_resumed(tmp_path, caplog):
    from nuclei_unet.train.resume import LoopState, load_resume, save_resume

    torch.manual_seed(0)
    old = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(old.parameters(), lr=0.1)
    save_resume(tmp_path / "r.pt", LoopState(epoch=3), old, opt, None, "fp-old")
    new = torch.nn.Linear(2, 1)
    before = {k: v.clone() for k, v in new.state_dict().items()}
    opt_new = torch.optim.SGD(new.parameters(), lr=0.1)
    with caplog.at_level("INFO", logger="nuclei_unet"):
        assert load_resume(tmp_path / "r.pt", new, opt_new, None, "fp-new") is None
    assert "r.pt: it belongs to other params or data" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in new.state_dict().items())  # untouched
    assert load_resume(tmp_path / "nope.pt", new, opt_new, None, "fp-new") is None
