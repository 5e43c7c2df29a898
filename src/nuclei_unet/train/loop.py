"""The training loop: epochs, validation, the best weights, early stopping, logging.

The chosen loss on logits, Adam or SGD with an optional schedule, on-the-fly augmentation,
early stopping on val_loss, resumable checkpoints, DDP, dvclive logging.
"""

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
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from nuclei_unet.config.schema import ModelParams, TrainParams
from nuclei_unet.data.kinds import FLUORESCENCE, STAINED
from nuclei_unet.data.native import NativeSample
from nuclei_unet.errors import ParamsError
from nuclei_unet.model.checkpoint import save_model
from nuclei_unet.model.exposure import intensity_ranges, ranges_to_dict
from nuclei_unet.model.unet import UNet, count_parameters, memory_format_for
from nuclei_unet.runtime import (
    resolve_device,
    resolve_precision,
    seed_everything,
    set_threads,
)
from nuclei_unet.train.averaging import average_states, remember, snapshot
from nuclei_unet.train.build import (
    make_crop_data,
    make_loader,
    make_model,
    make_optimizer,
    make_scheduler,
    normalize_data,
    to_tensors,
)
from nuclei_unet.train.distributed import Dist, init_from_env, local_device
from nuclei_unet.train.losses import loss_for
from nuclei_unet.train.resume import (
    EpochStats,
    LoopState,
    data_fingerprint,
    load_resume,
    save_resume,
)
from nuclei_unet.train.steps import LossFn, evaluate_batches, train_epoch

log = logging.getLogger(__name__)


class MetricLogger(Protocol):
    """What the loop needs of a logger; ``dvclive.Live`` is one."""

    summary: dict

    def log_metric(self, name: str, val: float) -> None: ...

    def next_step(self) -> None: ...


@dataclasses.dataclass
class TrainResult:
    """Summary of a training run."""

    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[EpochStats]
    parameters: int
    precision: str
    processes: int = 1
    # train.keep last / average: val_loss, val_iou, val_dice of the weights written (None: best)
    kept: dict[str, float] | None = None

    @property
    def seconds_per_epoch(self) -> float:
        """Median wall time of an epoch, validation included."""
        return float(np.median([h.seconds for h in self.history]))

    @property
    def train_seconds_per_epoch(self) -> float:
        """Median wall time of an epoch's training pass."""
        return float(np.median([h.train_seconds for h in self.history]))


def _log_epoch(live: MetricLogger | None, stats: EpochStats) -> None:
    if live is not None:
        for name, value in dataclasses.asdict(stats).items():
            live.log_metric(name, value)
        live.next_step()


@dataclasses.dataclass
class Run:
    """What one training run works with, built once by :func:`_start`."""

    net: UNet  # the network itself (DDP wraps it in ``model`` when several processes train)
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    loader: DataLoader
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
    dtype: torch.dtype
    loss_fn: LossFn
    group: Dist
    n_params: int
    precision: str
    fingerprint: str


def _weights(data: tuple[np.ndarray, ...], params: TrainParams) -> torch.Tensor | None:
    """``(N, 1, H, W) float32`` weight maps when the loss uses them, else None."""
    return torch.from_numpy(data[2].astype(np.float32))[:, None] if params.weight_map else None


TrainData = tuple[np.ndarray, ...] | list[NativeSample]


def _data(
    train_data: TrainData, val_data: TrainData, params: TrainParams, seed: int, group: Dist,
    pin_memory: bool, normalize: str = "none",
) -> tuple[DataLoader, tuple, str]:
    """The batches, the validation tensors and a fingerprint of the data, for either input,
    each image brought to the network's range by the ``normalize`` rule."""
    train_data, val_data = normalize_data(train_data, normalize), normalize_data(val_data, normalize)
    if params.input == "crops":
        loader, val = make_crop_data(train_data, val_data, params, seed, group, pin_memory)
        arrays = [a for s in [*train_data, *val_data] for a in (s.image, s.target)]
        return loader, val, data_fingerprint(*arrays)
    x, y = to_tensors(*train_data[:2])
    vx, vy = to_tensors(*val_data[:2])
    loader = make_loader(x, y, _weights(train_data, params), params, seed, group, pin_memory)
    return loader, (vx, vy, _weights(val_data, params)), data_fingerprint(*train_data, *val_data)


def _start(
    train_data: TrainData, val_data: TrainData, model_params: ModelParams, params: TrainParams,
    seed: int,
) -> Run:
    """Seed, pick the device and precision, build the network, optimiser and batches."""
    seed_everything(seed)
    threads = set_threads(params.threads)
    device = local_device(resolve_device(params.device))
    dtype = resolve_precision(params.precision, device)
    group = init_from_env(device)
    loader, val, fingerprint = _data(
        train_data, val_data, params, seed, group, device.type == "cuda", model_params.normalize
    )
    net = make_model(model_params, params.loss, params.edge)
    net = net.to(device, memory_format=memory_format_for(net))
    model: nn.Module = (
        DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if group.world > 1 else net
    )
    optimizer = make_optimizer(net, params)
    run = Run(
        net, model, optimizer, make_scheduler(optimizer, params), loader, val, dtype,
        loss_for(params.loss, params.edge), group, count_parameters(net),
        "bf16" if dtype == torch.bfloat16 else "fp32",
        fingerprint + repr((model_params, params, seed)),
    )
    if group.is_main:
        log.info(
            "training a %s-parameter U-Net on %d %s of %d images (%d validation %s), %s, %s on "
            "%s, %d threads, %d process(es)",
            f"{run.n_params:,}", len(loader.dataset), "crops" if params.input == "crops" else
            "images", len(train_data), len(val[0]), params.input, params.optimizer,
            run.precision, device, threads, group.world,
        )
    return run


def _epoch(run: Run, epoch: int, batch_size: int) -> EpochStats:
    """Train one epoch, validate, step the schedule; the epoch's figures."""
    start = time.perf_counter()
    run.loader.sampler.set_epoch(epoch)
    run.loader.dataset.set_epoch(epoch)
    lr = run.optimizer.param_groups[0]["lr"]
    loss, acc = train_epoch(
        run.model, run.optimizer, run.loader, run.dtype, run.loss_fn, run.group, f"epoch {epoch}"
    )
    if not math.isfinite(loss):
        # diverged: a params problem, said in one line like any other, not a traceback
        raise ParamsError(
            f"train.lr: the training loss became {loss} at epoch {epoch}; lower train.lr"
        )
    train_seconds = time.perf_counter() - start
    # every process validates the same weights on the whole set: same numbers, no exchange
    val_loss, val_acc, val_iou, val_dice = evaluate_batches(
        run.net, run.val, batch_size, run.dtype, run.loss_fn
    )
    if isinstance(run.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        run.scheduler.step(val_loss)
    elif run.scheduler is not None:
        run.scheduler.step()
    return EpochStats(
        loss, acc, val_loss, val_acc, val_iou, val_dice,
        time.perf_counter() - start, train_seconds, lr,
    )


def _record(state: LoopState, stats: EpochStats, net: UNet, params: TrainParams) -> bool:
    """Add the epoch to ``state``, keep the weights when val_loss improved (and, for
    ``params.keep`` average, the last ``params.average_epochs`` epochs'); whether it did."""
    state.history.append(stats)
    state.epoch += 1
    if params.keep == "average":
        remember(state.recent, net.state_dict(), params.average_epochs)
    if stats.val_loss < state.best_loss:
        state.best_loss, state.best_epoch, state.wait = stats.val_loss, state.epoch, 0
        state.best_state = snapshot(net.state_dict())
        return True
    state.wait += 1
    return False


def _report(stats: EpochStats, epoch: int, epochs: int, improved: bool) -> None:
    """One log line per epoch."""
    log.info(
        "epoch %d/%d: loss %.4f acc %.4f | val_loss %.4f val_acc %.4f val_iou %.4f "
        "val_dice %.4f | %.1f s%s",
        epoch, epochs, stats.loss, stats.accuracy, stats.val_loss, stats.val_accuracy,
        stats.val_iou, stats.val_dice, stats.seconds, " (best)" if improved else "",
    )


def _summary(result: TrainResult) -> dict[str, float]:
    """The run's headline figures (dvclive's summary, i.e. ``metrics/train/metrics.json``);
    for weights other than the best epoch's, also the validation figures of those written."""
    best = result.history[result.best_epoch - 1]
    summary = {
        "best_epoch": result.best_epoch,
        "best_val_loss": best.val_loss,
        "best_val_iou": best.val_iou,
        "best_val_dice": best.val_dice,
    }
    if result.kept is not None:
        summary.update({f"kept_{k}": v for k, v in result.kept.items()})
    return summary


def details(result: TrainResult, n_train: int) -> dict[str, float | str]:
    """Figures that change on every run (timings) or rarely matter, kept out of the metrics
    table that ``dvc exp show`` prints."""
    return {
        "epochs_run": result.epochs_run,
        "seconds_per_epoch": result.seconds_per_epoch,
        "train_img_per_s": n_train / result.train_seconds_per_epoch,
        "parameters": result.parameters,
        "processes": result.processes,
        "precision": result.precision,
    }


def _keep_weights(run: Run, state: LoopState, params: TrainParams) -> tuple[str, dict | None]:
    """Put the weights ``params.keep`` writes into ``run.net``; return them in words, for the log and
    the model file, and their validation figures (None for the best epoch's)."""
    if params.keep == "best":
        run.net.load_state_dict(state.best_state)
        return f"epoch {state.best_epoch} (lowest val_loss)", None
    if params.keep == "last":  # the network holds them, and the last epoch validated them
        last = state.history[-1]
        words = f"epoch {state.epoch} (the last)"
        loss, iou, dice = last.val_loss, last.val_iou, last.val_dice
    else:
        run.net.load_state_dict(average_states(state.recent))
        loss, _acc, iou, dice = evaluate_batches(
            run.net, run.val, params.batch_size, run.dtype, run.loss_fn
        )
        words = f"the mean of epochs {state.epoch - len(state.recent) + 1}-{state.epoch}"
    return words, {"val_loss": loss, "val_iou": iou, "val_dice": dice}


def _model_extra(
    train_data: TrainData, params: TrainParams, state: LoopState, kept: str,
    val_loss: float,
) -> dict:
    """What the model file records beside the weights: which weights (``kept``, in words,
    and their ``val_loss``), the best epoch, the input size, the
    exposures of its training images by kind (:func:`..model.exposure.intensity_ranges`, as
    trained: before any augmentation or normalisation) and, for a model trained on native
    crops, the nucleus diameter its images were rescaled to."""
    extra = {"epoch": state.best_epoch, "weights": kept, "val_loss": val_loss}
    if params.input == "crops":
        images = [s.image for s in train_data]
        # the kind of the original image, as prepare found it: what predict will see
        kinds = [STAINED if s.stained else FLUORESCENCE for s in train_data]
        extra.update(input="crops", input_size=params.crop_size, diameter=train_data[0].diameter)
    else:
        images, kinds = list(train_data[0]), None
        extra.update(input_size=int(train_data[0].shape[2]))
    return {**extra, "intensity": ranges_to_dict(intensity_ranges(images, kinds))}


def train(
    train_data: TrainData,
    val_data: TrainData,
    model_params: ModelParams,
    params: TrainParams,
    seed: int,
    model_path: str | Path,
    live: MetricLogger | None = None,
    resume_path: str | Path | None = None,
) -> TrainResult:
    """Train a U-Net and write the weights ``params.keep`` picks to ``model_path``: the best
    epoch's (lowest val_loss), the last epoch's, or the mean of the last epochs'.

    ``train_data`` and ``val_data`` are ``(images (N, H, W, 3) uint8, masks (N, H, W) 0/1)``,
    plus ``weights (N, H, W) float32`` when ``params.weight_map`` is set; with
    ``params.input == "crops"``, the native samples (:mod:`nuclei_unet.data.native`).
    With ``resume_path``, a checkpoint is written there after every epoch and a matching one is
    resumed from, so a killed run ends with the same weights as an uninterrupted one; it is
    removed when training ends. Under torchrun, each process trains on its share of every
    batch (DistributedDataParallel) and only the first one logs and writes.
    """
    run = _start(train_data, val_data, model_params, params, seed)
    resume = Path(resume_path) if resume_path else None
    state = load_resume(resume, run.net, run.optimizer, run.scheduler, run.fingerprint) if resume else None
    state = state or LoopState()
    if run.group.is_main:
        if state.epoch:
            log.info("resuming after epoch %d", state.epoch)
        for stats in state.history:  # the resumed run's curves start at epoch 1
            _log_epoch(live, stats)
    stopped = params.patience is not None and state.wait >= params.patience
    for epoch in range(state.epoch + 1, params.epochs + 1):
        if stopped:
            break
        stats = _epoch(run, epoch, params.batch_size)
        improved = _record(state, stats, run.net, params)
        stopped = params.patience is not None and state.wait >= params.patience
        if run.group.is_main:
            _log_epoch(live, stats)
            _report(stats, epoch, params.epochs, improved)
            if stopped:
                log.info("early stopping: val_loss did not improve for %d epochs", state.wait)
            if resume is not None:
                save_resume(resume, state, run.net, run.optimizer, run.scheduler, run.fingerprint)
    kept, figures = _keep_weights(run, state, params)
    result = TrainResult(
        state.best_epoch, state.best_loss, len(state.history), state.history, run.n_params,
        run.precision, run.group.world, figures,
    )
    if run.group.is_main:
        val_loss = state.best_loss if figures is None else figures["val_loss"]
        if figures is not None:
            log.info(
                "writing the weights of %s: val_loss %.4f val_iou %.4f val_dice %.4f "
                "(best epoch %d: val_loss %.4f)", kept, figures["val_loss"],
                figures["val_iou"], figures["val_dice"], state.best_epoch, state.best_loss,
            )
        save_model(
            run.net, model_path, _model_extra(train_data, params, state, kept, val_loss),
            model_params.normalize,
        )
        if live is not None:
            # only the headline figures (the per-epoch values are the plots) and dvclive's step
            for key in [k for k in live.summary if k != "step"]:
                del live.summary[key]
            live.summary.update(_summary(result))
        if resume is not None:
            resume.unlink(missing_ok=True)
    return result
