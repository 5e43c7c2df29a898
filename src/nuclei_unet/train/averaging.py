"""Which weights a training run writes: the best epoch's, the last epoch's, or an average.

Stochastic weight averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima
and Better Generalization"): the mean of the weights at the end of the last few epochs lies
in a wider, flatter part of the loss surface than any one of them, which is what carries
over to images unlike the training set (Cha et al. 2021, SWAD, for domain shift). Unlike the
best epoch's weights, neither the last nor the averaged ones are chosen by the validation set.
"""

from __future__ import annotations

import torch


def snapshot(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached copy of a ``state_dict`` that later optimiser steps leave alone."""
    return {k: v.detach().clone() for k, v in state.items()}


def remember(recent: list[dict[str, torch.Tensor]], state: dict[str, torch.Tensor], n: int) -> None:
    """Append a :func:`snapshot` of ``state`` to ``recent``, keeping only the last ``n``."""
    recent.append(snapshot(state))
    del recent[:-n]


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of ``states`` (same keys and shapes), computed in float64 and
    returned in each tensor's own dtype. Floating tensors, batch norm's running mean and
    variance included, are averaged (as ``torch.optim.swa_utils.AveragedModel`` does with
    ``use_buffers=True``); integer ones (batch norm's step counter) are the last state's.

    >>> a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    >>> b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(4)}
    >>> out = average_states([a, b])
    >>> out["w"].tolist(), out["n"].item()
    ([2.0, 4.0], 4)
    """
    if not states:
        raise ValueError("no weights to average")
    last = states[-1]
    out: dict[str, torch.Tensor] = {}
    for key, value in last.items():
        if value.is_floating_point():
            total = sum(s[key].double() for s in states)
            out[key] = (total / len(states)).to(value.dtype)
        else:
            out[key] = value.clone()
    return out
