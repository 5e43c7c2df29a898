"""Losses on logits, each optionally weighted per pixel (the U-Net paper's weight map).

All take ``logits (N, C, H, W)`` (C = 1, or 2 for ``softmax_ce``), ``target (N, 1, H, W)`` 0/1
float and ``weight (N, 1, H, W)`` or None, and return a scalar tensor. :func:`with_edge` adds
the edge class: a second logit channel and a second target channel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]

DICE_SMOOTH = 1.0


def _weighted_mean(per_pixel: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return per_pixel.mean()
    return (per_pixel * weight).sum() / weight.sum()


def bce_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy on the foreground logit (the seed's loss)."""
    per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0:1], target, reduction="none")
    return _weighted_mean(per_pixel, weight)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 - soft Dice per image, ``(2 sum(w p t) + 1) / (sum(w p) + sum(w t) + 1)``, averaged."""
    prob = torch.sigmoid(logits[:, 0:1])
    w = torch.ones_like(prob) if weight is None else weight
    inter = (w * prob * target).sum(dim=(1, 2, 3))
    total = (w * prob).sum(dim=(1, 2, 3)) + (w * target).sum(dim=(1, 2, 3))
    return 1.0 - ((2.0 * inter + DICE_SMOOTH) / (total + DICE_SMOOTH)).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE plus soft Dice loss."""
    return bce_loss(logits, target, weight) + dice_loss(logits, target, weight)


def softmax_ce_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Two-class softmax cross-entropy over ``(N, 2, H, W)`` logits, as in the U-Net paper."""
    if logits.shape[1] != 2:
        raise ValueError(f"softmax_ce needs two output channels, got {logits.shape[1]}")
    per_pixel = F.cross_entropy(logits, target[:, 0].long(), reduction="none")[:, None]
    return _weighted_mean(per_pixel, weight)


def with_edge(loss: LossFn) -> LossFn:
    """``loss`` on the foreground (channel 0 of logits and target) plus binary cross-entropy of
    the edge class (channel 1 of each), equally weighted; ``weight`` weighs both."""

    def both(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        per_pixel = F.binary_cross_entropy_with_logits(logits[:, 1:2], target[:, 1:2], reduction="none")
        return loss(logits[:, 0:1], target[:, 0:1], weight) + _weighted_mean(per_pixel, weight)

    return both


LOSSES = {"bce": bce_loss, "bce_dice": bce_dice_loss, "dice": dice_loss, "softmax_ce": softmax_ce_loss}


def out_channels_for(loss: str, edge: bool = False) -> int:
    """Output channels the model needs for ``loss`` (and the edge class)."""
    return 2 if loss == "softmax_ce" or edge else 1


def loss_for(loss: str, edge: bool = False) -> LossFn:
    """The loss function ``train.loss`` names, with the edge class when ``edge``."""
    return with_edge(LOSSES[loss]) if edge else LOSSES[loss]
