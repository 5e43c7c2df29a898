"""Saving and loading the trained model: weights plus the architecture that built them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .errors import DataError
from .io import atomic_path
from .model import UNet, fuse_batch_norm


def save_model(model: UNet, path: str | Path, extra: dict | None = None) -> None:
    """Write ``{"widths", "dropouts", "state_dict", **extra}`` atomically with torch.save."""
    payload = {
        "widths": list(model.widths),
        "dropouts": list(model.dropouts),
        "norm": model.norm,
        "out_channels": model.out_channels,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
    payload.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


@dataclasses.dataclass
class Checkpoint:
    """A loaded model and what was saved with it."""

    model: UNet
    input_size: int  # the side of the training images (pixels)
    epoch: int | None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the U-Net saved by :func:`save_model` (loaded with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean "unreadable"
        raise DataError(f"{path}: cannot load model ({exc.__class__.__name__})") from exc
    model = UNet(
        payload["widths"], payload["dropouts"], norm=payload.get("norm", "none"),
        out_channels=payload.get("out_channels", 1),
    )
    model.load_state_dict(payload["state_dict"])
    # loaded for inference: batch norms folded into their convs
    return Checkpoint(fuse_batch_norm(model), int(payload.get("input_size", 128)), payload.get("epoch"))
