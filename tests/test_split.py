"""The seed's split arithmetic."""

import pytest

from nuclei_unet.config.schema import SplitParams
from nuclei_unet.data.split import split_ids
from nuclei_unet.errors import ParamsError


def test_670_images_split_601_67_2():
    ids = [f"{i:04d}" for i in range(670)]
    s = split_ids(ids[::-1], SplitParams(n_test=2, val_fraction=0.1))  # order does not matter
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (601, 67, 2)
    assert s["test"] == ["0668", "0669"]
    assert s["val"][0] == "0601" and s["train"][-1] == "0600"


def test_split_is_a_partition():
    ids = [f"x{i}" for i in range(23)]
    s = split_ids(ids, SplitParams(n_test=3, val_fraction=0.25))
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(ids)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (15, 5, 3)


@pytest.mark.parametrize(
    "n, params, message",
    [
        (5, SplitParams(n_test=5), "n_test"),
        (3, SplitParams(n_test=2, val_fraction=0.1), "empty training"),
        (4, SplitParams(n_test=1, val_fraction=0.9), "empty training"),
    ],
)
def test_impossible_splits_are_errors(n, params, message):
    with pytest.raises(ParamsError, match=message):
        split_ids([str(i) for i in range(n)], params)
