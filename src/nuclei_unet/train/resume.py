"""Resumable training: the loop's state and RNG states, saved after every epoch.

A killed run resumed from it ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nuclei_unet.io.files import atomic_path

log = logging.getLogger(__name__)


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
    # train.keep average: the weights at the end of the last train.average_epochs epochs
    recent: list[dict] = dataclasses.field(default_factory=list)


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
        "recent": state.recent,
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
        recent=payload.get("recent", []),
    )
