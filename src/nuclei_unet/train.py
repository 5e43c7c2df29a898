"""Training loop: BCE on logits, Adam or SGD, early stopping on val_loss, dvclive logging."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoint import save_model
from .metrics import per_image_iou_dice
from .model import UNet, count_parameters
from .params import ModelParams, TrainParams
from .runtime import autocast, resolve_precision, seed_everything, set_threads

log = logging.getLogger(__name__)

# Keras' Adam epsilon (PyTorch's default is 1e-8); kept so the seed recipe is the seed's
KERAS_ADAM_EPS = 1e-7


class MetricLogger(Protocol):
    """What the loop needs of a logger; ``dvclive.Live`` is one."""

    summary: dict

    def log_metric(self, name: str, val: float) -> None: ...

    def next_step(self) -> None: ...


def to_tensors(images: np.ndarray, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, H, W, 3) uint8`` and ``(N, H, W)`` 0/1 -> ``(N, 3, H, W)`` float32 in [0, 1]
    (channels_last memory) and ``(N, 1, H, W)`` float32."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(masks.astype(np.float32))[:, None]
    return x, y


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """Adam (Keras epsilon) or SGD with momentum, as ``params.optimizer`` says."""
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, eps=KERAS_ADAM_EPS)
    return torch.optim.SGD(model.parameters(), lr=params.lr, momentum=params.momentum)


@dataclasses.dataclass
class EpochStats:
    """Figures of one epoch."""

    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    val_iou: float
    val_dice: float
    seconds: float  # the whole epoch, validation included
    train_seconds: float  # the training pass alone


@torch.inference_mode()
def evaluate_batches(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, dtype: torch.dtype
) -> tuple[float, float, float, float]:
    """Mean BCE, pixel accuracy, and the seed's per-image foreground IoU and Dice at 0.5."""
    model.eval()
    loss_sum, correct, ious, dices = 0.0, 0.0, [], []
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with autocast(dtype):
            logits = model(xb)
        logits = logits.float()
        loss_sum += float(bce(logits, yb))
        pred = logits > 0  # sigmoid(z) > 0.5  <=>  z > 0
        correct += float((pred == (yb > 0.5)).sum())
        iou, dice = per_image_iou_dice(pred[:, 0].numpy(), yb[:, 0].numpy() > 0.5)
        ious.append(iou)
        dices.append(dice)
    n = y.numel()
    return (
        loss_sum / n,
        correct / n,
        float(np.concatenate(ious).mean()),
        float(np.concatenate(dices).mean()),
    )


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    dtype: torch.dtype,
    generator: torch.Generator,
    desc: str,
) -> tuple[float, float]:
    """One shuffled pass over ``x``; returns mean training loss and pixel accuracy."""
    model.train()
    bce = nn.BCEWithLogitsLoss()
    order = torch.randperm(len(x), generator=generator)
    # accumulate on tensors: a float() per step would force a sync each batch
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.float64)
    batches = range(0, len(x), batch_size)
    for start in tqdm(batches, desc=desc, unit="batch", leave=False):
        idx = order[start : start + batch_size]
        xb, yb = x[idx], y[idx]
        optimizer.zero_grad(set_to_none=True)
        with autocast(dtype):
            logits = model(xb)
        loss = bce(logits.float(), yb)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum += loss.detach().double() * len(idx)
            correct += ((logits.detach() > 0) == (yb > 0.5)).sum().double() / yb[0].numel()
    return float(loss_sum) / len(x), float(correct) / len(x)


@dataclasses.dataclass
class TrainResult:
    """Summary of a training run."""

    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[EpochStats]
    parameters: int
    precision: str

    @property
    def seconds_per_epoch(self) -> float:
        """Median wall time of an epoch, validation included."""
        return float(np.median([h.seconds for h in self.history]))

    @property
    def train_seconds_per_epoch(self) -> float:
        """Median wall time of an epoch's training pass."""
        return float(np.median([h.train_seconds for h in self.history]))


def train(
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    model_params: ModelParams,
    params: TrainParams,
    seed: int,
    model_path: str | Path,
    live: MetricLogger | None = None,
) -> TrainResult:
    """Train a U-Net and write the weights of the best epoch (lowest val_loss) to ``model_path``.

    ``train_data`` and ``val_data`` are ``(images (N, H, W, 3) uint8, masks (N, H, W) 0/1)``.
    """
    seed_everything(seed)
    threads = set_threads(params.threads)
    dtype = resolve_precision(params.precision)
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    x, y = to_tensors(*train_data)
    vx, vy = to_tensors(*val_data)
    model = UNet(model_params.widths, model_params.dropouts).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, params)
    n_params = count_parameters(model)
    log.info(
        "training a %s-parameter U-Net on %d images (%d validation), %s, %s, %d threads",
        f"{n_params:,}", len(x), len(vx), params.optimizer, precision, threads,
    )
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_epoch, wait = math.inf, 0, 0
    history: list[EpochStats] = []
    for epoch in range(1, params.epochs + 1):
        start = time.perf_counter()
        loss, acc = train_epoch(
            model, optimizer, x, y, params.batch_size, dtype, generator, f"epoch {epoch}"
        )
        train_seconds = time.perf_counter() - start
        val_loss, val_acc, val_iou, val_dice = evaluate_batches(
            model, vx, vy, params.batch_size, dtype
        )
        stats = EpochStats(
            loss, acc, val_loss, val_acc, val_iou, val_dice,
            time.perf_counter() - start, train_seconds,
        )
        history.append(stats)
        if live is not None:
            for name, value in dataclasses.asdict(stats).items():
                live.log_metric(name, value)
            live.next_step()
        improved = val_loss < best_loss
        log.info(
            "epoch %d/%d: loss %.4f acc %.4f | val_loss %.4f val_acc %.4f val_iou %.4f "
            "val_dice %.4f | %.1f s%s",
            epoch, params.epochs, loss, acc, val_loss, val_acc, val_iou, val_dice,
            stats.seconds, " (best, saved)" if improved else "",
        )
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at epoch {epoch}; lower train.lr")
        if improved:
            best_loss, best_epoch, wait = val_loss, epoch, 0
            save_model(
                model, model_path,
                {"epoch": epoch, "val_loss": val_loss, "input_size": int(x.shape[-1])},
            )
        else:
            wait += 1
            if params.patience is not None and wait >= params.patience:
                log.info("early stopping: val_loss did not improve for %d epochs", wait)
                break
    result = TrainResult(best_epoch, best_loss, len(history), history, n_params, precision)
    if live is not None:
        best = history[best_epoch - 1]
        live.summary.update(
            {
                "best_epoch": best_epoch,
                "best_val_loss": best.val_loss,
                "best_val_iou": best.val_iou,
                "best_val_dice": best.val_dice,
                "epochs_run": result.epochs_run,
                "seconds_per_epoch": result.seconds_per_epoch,
                "train_img_per_s": len(x) / result.train_seconds_per_epoch,
                "parameters": n_params,
            }
        )
    return result
