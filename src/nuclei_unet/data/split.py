"""Train / validation / test split as in the seed notebook."""

from __future__ import annotations

from nuclei_unet.config.schema import SplitParams
from nuclei_unet.errors import ParamsError


def split_ids(ids: list[str], params: SplitParams) -> dict[str, list[str]]:
    """Split sorted ``ids``: the last ``n_test`` are test; of the rest, the last
    ``val_fraction`` are validation, cut where Keras' ``validation_split`` cut
    (``int(n * (1 - val_fraction))`` training images). 670 ids give 601 / 67 / 2.
    """
    ids = sorted(ids)
    if params.n_test >= len(ids):
        raise ParamsError(
            f"n_test: {params.n_test} leaves no training images out of {len(ids)}"
        )
    rest, test = ids[: len(ids) - params.n_test], ids[len(ids) - params.n_test :]
    # val_fraction > 0 always leaves at least one validation image; training may be empty
    n_train = int(len(rest) * (1.0 - params.val_fraction))
    if n_train == 0:
        raise ParamsError(
            f"val_fraction: {params.val_fraction} of {len(rest)} images leaves an empty "
            "training set"
        )
    return {"train": rest[:n_train], "val": rest[n_train:], "test": test}
