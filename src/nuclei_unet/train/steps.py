"""One pass of training or validation over batches: the loss, pixel accuracy, IoU and Dice."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from nuclei_unet.metrics.pixel import per_image_iou_dice
from nuclei_unet.model.unet import foreground_logit, head_of, memory_format_for
from nuclei_unet.runtime import autocast
from nuclei_unet.train.distributed import Dist
from nuclei_unet.train.losses import LossFn, bce_loss


@torch.inference_mode()
def evaluate_batches(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    batch_size: int,
    dtype: torch.dtype,
    loss_fn: LossFn = bce_loss,
) -> tuple[float, float, float, float]:
    """Mean loss, pixel accuracy, and the seed's per-image foreground IoU and Dice at 0.5.

    ``y (N, C, H, W)``: channel 0 is the foreground (1 for the edge class, which only the loss
    sees)."""
    x, y, w = data
    device = next(model.parameters()).device
    layout = memory_format_for(model)
    head = head_of(model)
    model.eval()
    loss_sum, correct, ious, dices = 0.0, 0.0, [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device).contiguous(memory_format=layout)
        yb = y[start : start + batch_size].to(device)
        wb = w[start : start + batch_size].to(device) if w is not None else None
        with autocast(dtype, device):
            logits = model(xb)
        logits = logits.float()
        loss_sum += float(loss_fn(logits, yb, wb)) * len(xb)
        pred = foreground_logit(logits, head) > 0  # sigmoid(z) > 0.5  <=>  z > 0
        fg = yb[:, 0:1] > 0.5
        correct += float((pred == fg).sum())
        iou, dice = per_image_iou_dice(pred[:, 0].cpu().numpy(), fg[:, 0].cpu().numpy())
        ious.append(iou)
        dices.append(dice)
    return (
        loss_sum / len(x),
        correct / y[:, 0].numel(),
        float(np.concatenate(ious).mean()),
        float(np.concatenate(dices).mean()),
    )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    dtype: torch.dtype,
    loss_fn: LossFn,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on ``(x (N, 3, H, W), y (N, C, H, W), w (N, 1, H, W) or None)``,
    already on the model's device: forward under autocast to ``dtype``, the loss in float32,
    backward, step. Returns the loss (a 0-d tensor, not synced) and the logits."""
    xb, yb, wb = batch
    optimizer.zero_grad(set_to_none=True)
    with autocast(dtype, xb.device):
        logits = model(xb)
    loss = loss_fn(logits.float(), yb, wb)
    loss.backward()
    optimizer.step()
    return loss, logits


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    dtype: torch.dtype,
    loss_fn: LossFn,
    group: Dist,
    desc: str,
) -> tuple[float, float]:
    """One pass over this process's share of the (augmented) batches; returns the mean
    training loss and pixel accuracy over all processes."""
    model.train()
    device = next(model.parameters()).device
    layout = memory_format_for(model)
    head = head_of(model)
    # accumulate on tensors: a float() per step would force a sync each batch
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not group.is_main):
        xb = batch[0].to(device, non_blocking=True).contiguous(memory_format=layout)
        yb = batch[1].to(device, non_blocking=True)
        wb = batch[2].to(device, non_blocking=True) if len(batch) > 2 else None
        loss, logits = train_step(model, optimizer, (xb, yb, wb), dtype, loss_fn)
        with torch.no_grad():
            loss_sum += loss.detach().double() * len(xb)
            pred = foreground_logit(logits.detach(), head) > 0
            correct += (pred == (yb[:, 0:1] > 0.5)).sum().double() / yb[0, 0].numel()
        seen += len(xb)
    loss_total, correct_total, n = group.sum([float(loss_sum), float(correct), float(seen)])
    return loss_total / n, correct_total / n
