"""Training loop: the chosen loss on logits, Adam or SGD with an optional schedule, on-the-fly
augmentation, early stopping on val_loss, resumable checkpoints, DDP, dvclive logging."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .augment import AugmentedSet
from .checkpoint import save_model
from .distributed import Dist, init_from_env, local_device
from .io import atomic_path
from .losses import LOSSES, bce_loss, out_channels_for
from .metrics import per_image_iou_dice
from .model import UNet, count_parameters, foreground_logit
from .params import ModelParams, TrainParams
from .runtime import autocast, resolve_device, resolve_precision, seed_everything, set_threads

log = logging.getLogger(__name__)

# Keras' Adam epsilon (PyTorch's default is 1e-8); kept so the seed recipe is the seed's
KERAS_ADAM_EPS = 1e-7


LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


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


def make_model(model_params: ModelParams, loss: str) -> UNet:
    """The U-Net of ``model_params`` with the output head ``loss`` needs (two classes for
    ``softmax_ce``, else one logit)."""
    return UNet(
        model_params.widths, model_params.dropouts, norm=model_params.norm,
        out_channels=out_channels_for(loss),
    )


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """Adam (Keras epsilon) or SGD with momentum, as ``params.optimizer`` says."""
    if params.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(), lr=params.lr, eps=KERAS_ADAM_EPS, weight_decay=params.weight_decay
        )
    return torch.optim.SGD(
        model.parameters(), lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay
    )


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
    lr: float = 0.0  # learning rate used in this epoch


@torch.inference_mode()
def evaluate_batches(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    batch_size: int,
    dtype: torch.dtype,
    loss_fn: LossFn = bce_loss,
) -> tuple[float, float, float, float]:
    """Mean loss, pixel accuracy, and the seed's per-image foreground IoU and Dice at 0.5."""
    x, y, w = data
    device = next(model.parameters()).device
    model.eval()
    loss_sum, correct, ious, dices = 0.0, 0.0, [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        wb = w[start : start + batch_size].to(device) if w is not None else None
        with autocast(dtype, device):
            logits = model(xb)
        logits = logits.float()
        loss_sum += float(loss_fn(logits, yb, wb)) * len(xb)
        pred = foreground_logit(logits) > 0  # sigmoid(z) > 0.5  <=>  z > 0
        correct += float((pred == (yb > 0.5)).sum())
        iou, dice = per_image_iou_dice(pred[:, 0].cpu().numpy(), yb[:, 0].cpu().numpy() > 0.5)
        ious.append(iou)
        dices.append(dice)
    return (
        loss_sum / len(x),
        correct / y.numel(),
        float(np.concatenate(ious).mean()),
        float(np.concatenate(dices).mean()),
    )


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
    # accumulate on tensors: a float() per step would force a sync each batch
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not group.is_main):
        xb = batch[0].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        yb = batch[1].to(device, non_blocking=True)
        wb = batch[2].to(device, non_blocking=True) if len(batch) > 2 else None
        optimizer.zero_grad(set_to_none=True)
        with autocast(dtype, device):
            logits = model(xb)
        loss = loss_fn(logits.float(), yb, wb)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum += loss.detach().double() * len(xb)
            pred = foreground_logit(logits.detach()) > 0
            correct += (pred == (yb > 0.5)).sum().double() / yb[0].numel()
        seen += len(xb)
    loss_total, correct_total, n = group.sum([float(loss_sum), float(correct), float(seen)])
    return loss_total / n, correct_total / n


def make_loader(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, params: TrainParams, seed: int,
    group: Dist, pin_memory: bool = False,
) -> DataLoader:
    """Shuffled, augmented batches of this process's share of the training set.

    The global batch stays ``params.batch_size`` whatever the number of processes. Call
    ``loader.sampler.set_epoch(e)`` and ``loader.dataset.set_epoch(e)`` before each epoch.
    """
    sampler = DistributedSampler(
        range(len(x)), num_replicas=group.world, rank=group.rank, shuffle=True, seed=seed
    )
    dataset = AugmentedSet(x, y, w, params.augment, seed)
    local_batch = max(1, params.batch_size // group.world)
    return DataLoader(
        dataset, batch_size=local_batch, sampler=sampler, num_workers=params.workers,
        pin_memory=pin_memory,  # page-locked batches copy to a GPU asynchronously
    )


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams):
    """The learning-rate schedule, stepped once per epoch; ``None`` for a constant rate."""
    if params.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    if params.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return None


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


def data_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of arrays' shapes and bytes: a resume checkpoint only fits the data it came from."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclasses.dataclass
class LoopState:
    """Everything the loop needs to go on after an interruption."""

    epoch: int = 0  # last finished epoch
    best_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0
    best_state: dict | None = None
    history: list[EpochStats] = dataclasses.field(default_factory=list)


def _numpy_rng_state() -> dict:
    # as tensors and numbers: weights_only loading refuses numpy arrays
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_rng_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["pos"], state["has_gauss"], state["cached"]))


def save_resume(
    path: Path, state: LoopState, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler, fingerprint: str,
) -> None:
    """Write a resumable checkpoint atomically: weights, optimizer, loop state, RNG states."""
    payload = {
        "fingerprint": fingerprint,
        "epoch": state.epoch,
        "best_loss": state.best_loss,
        "best_epoch": state.best_epoch,
        "wait": state.wait,
        "best_state": state.best_state,
        "history": [dataclasses.asdict(h) for h in state.history],
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy_rng": _numpy_rng_state(),
        "python_rng": repr(random.getstate()),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_resume(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, fingerprint: str
) -> LoopState | None:
    """Restore a checkpoint written by :func:`save_resume` for the same params and data;
    ``None`` when there is none or it belongs to another run."""
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["fingerprint"] != fingerprint:
        log.info("ignoring %s: it belongs to other params or data", path)
        return None
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["torch_rng"])
    if payload.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    _set_numpy_rng_state(payload["numpy_rng"])
    random.setstate(ast.literal_eval(payload["python_rng"]))
    return LoopState(
        epoch=payload["epoch"], best_loss=payload["best_loss"], best_epoch=payload["best_epoch"],
        wait=payload["wait"], best_state=payload["best_state"],
        history=[EpochStats(**h) for h in payload["history"]],
    )


def _log_epoch(live: MetricLogger | None, stats: EpochStats) -> None:
    if live is not None:
        for name, value in dataclasses.asdict(stats).items():
            live.log_metric(name, value)
        live.next_step()


def train(
    train_data: tuple[np.ndarray, ...],
    val_data: tuple[np.ndarray, ...],
    model_params: ModelParams,
    params: TrainParams,
    seed: int,
    model_path: str | Path,
    live: MetricLogger | None = None,
    resume_path: str | Path | None = None,
) -> TrainResult:
    """Train a U-Net and write the weights of the best epoch (lowest val_loss) to ``model_path``.

    ``train_data`` and ``val_data`` are ``(images (N, H, W, 3) uint8, masks (N, H, W) 0/1)``,
    plus ``weights (N, H, W) float32`` when ``params.weight_map`` is set.
    With ``resume_path``, a checkpoint is written there after every epoch and a matching one is
    resumed from, so a killed run ends with the same weights as an uninterrupted one; it is
    removed when training ends. Under torchrun, each process trains on its share of every
    batch (DistributedDataParallel) and only the first one logs and writes.
    """
    seed_everything(seed)
    threads = set_threads(params.threads)
    device = local_device(resolve_device(params.device))
    dtype = resolve_precision(params.precision, device)
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    group = init_from_env(device)
    x, y = to_tensors(*train_data[:2])
    vx, vy = to_tensors(*val_data[:2])
    w = torch.from_numpy(train_data[2].astype(np.float32))[:, None] if params.weight_map else None
    vw = torch.from_numpy(val_data[2].astype(np.float32))[:, None] if params.weight_map else None
    loss_fn = LOSSES[params.loss]
    net = make_model(model_params, params.loss).to(device, memory_format=torch.channels_last)
    model: nn.Module = (
        DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if group.world > 1 else net
    )
    optimizer = make_optimizer(net, params)
    scheduler = make_scheduler(optimizer, params)
    n_params = count_parameters(net)
    loader = make_loader(x, y, w, params, seed, group, pin_memory=device.type == "cuda")
    fingerprint = data_fingerprint(*train_data, *val_data) + repr((model_params, params, seed))
    resume = Path(resume_path) if resume_path else None
    state = (load_resume(resume, net, optimizer, scheduler, fingerprint) if resume else None)
    state = state or LoopState()
    if group.is_main:
        log.info(
            "training a %s-parameter U-Net on %d images (%d validation), %s, %s on %s, "
            "%d threads, %d process(es)%s",
            f"{n_params:,}", len(x), len(vx), params.optimizer, precision, device, threads,
            group.world,
            f", resuming after epoch {state.epoch}" if state.epoch else "",
        )
        for stats in state.history:  # the resumed run's curves start at epoch 1
            _log_epoch(live, stats)
    stopped = params.patience is not None and state.wait >= params.patience
    for epoch in range(state.epoch + 1, params.epochs + 1):
        if stopped:
            break
        start = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        loader.dataset.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        loss, acc = train_epoch(model, optimizer, loader, dtype, loss_fn, group, f"epoch {epoch}")
        train_seconds = time.perf_counter() - start
        # every process validates the same weights on the whole set: same numbers, no exchange
        val_loss, val_acc, val_iou, val_dice = evaluate_batches(
            net, (vx, vy, vw), params.batch_size, dtype, loss_fn
        )
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        stats = EpochStats(
            loss, acc, val_loss, val_acc, val_iou, val_dice,
            time.perf_counter() - start, train_seconds, lr,
        )
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at epoch {epoch}; lower train.lr")
        state.history.append(stats)
        state.epoch = epoch
        improved = val_loss < state.best_loss
        if improved:
            state.best_loss, state.best_epoch, state.wait = val_loss, epoch, 0
            state.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            state.wait += 1
            stopped = params.patience is not None and state.wait >= params.patience
        if group.is_main:
            _log_epoch(live, stats)
            log.info(
                "epoch %d/%d: loss %.4f acc %.4f | val_loss %.4f val_acc %.4f val_iou %.4f "
                "val_dice %.4f | %.1f s%s",
                epoch, params.epochs, loss, acc, val_loss, val_acc, val_iou, val_dice,
                stats.seconds, " (best)" if improved else "",
            )
            if stopped:
                log.info("early stopping: val_loss did not improve for %d epochs", state.wait)
            if resume is not None:
                save_resume(resume, state, net, optimizer, scheduler, fingerprint)
    history = state.history
    result = TrainResult(state.best_epoch, state.best_loss, len(history), history, n_params, precision)
    if group.is_main:
        net.load_state_dict(state.best_state)
        save_model(
            net, model_path,
            {"epoch": state.best_epoch, "val_loss": state.best_loss, "input_size": int(x.shape[-1])},
        )
        if live is not None:
            best = history[state.best_epoch - 1]
            live.summary.update(
                {
                    "best_epoch": state.best_epoch,
                    "best_val_loss": best.val_loss,
                    "best_val_iou": best.val_iou,
                    "best_val_dice": best.val_dice,
                    "epochs_run": result.epochs_run,
                    "seconds_per_epoch": result.seconds_per_epoch,
                    "train_img_per_s": len(x) / result.train_seconds_per_epoch,
                    "parameters": n_params,
                    "processes": group.world,
                }
            )
        if resume is not None:
            resume.unlink(missing_ok=True)
    return result
