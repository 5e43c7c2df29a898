"""The model file: weights, architecture, input convention and the predict stage's settings.

``models/trained.pt`` (the train stage) holds the network and its input size; the predict stage
copies it to ``models/model.pt`` with its own settings added, so ``nuclei-unet predict --model
models/model.pt`` segments as that stage did without any flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nuclei_unet.config.load import build
from nuclei_unet.config.schema import PredictParams
from nuclei_unet.errors import DataError
from nuclei_unet.io.files import atomic_path
from nuclei_unet.model.exposure import IntensityRange, ranges_from_dict
from nuclei_unet.model.preprocess import NORMALIZE_RULES, preprocessing
from nuclei_unet.model.unet import UNet, fuse_batch_norm


def save_model(
    model: UNet, path: str | Path, extra: dict | None = None, normalize: str = "none"
) -> None:
    """Write the architecture, ``state_dict``, the input convention (:func:`preprocessing`
    with the ``normalize`` rule) and ``extra`` (e.g. ``input_size``, ``epoch``) atomically
    with torch.save."""
    payload = {
        "widths": list(model.widths),
        "dropouts": list(model.dropouts),
        "norm": model.norm,
        "out_channels": model.out_channels,
        "head": model.head,
        "preprocessing": preprocessing(normalize),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
    payload.update(extra or {})
    _write(payload, path)


def _write(payload: dict[str, Any], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: str | Path) -> dict[str, Any]:
    """A model file's payload (``weights_only``: no code runs); a bad file is a DataError."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a folder, not a model file")
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean "unreadable"
        # (a file of other objects than weights, which would run code to load, is one of them)
        raise DataError(
            f"{path}: cannot load model (not a nuclei-unet model file, or a damaged one:"
            f" {exc.__class__.__name__})"
        ) from exc
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise DataError(f"{path}: not a nuclei-unet model file")
    return payload


def add_predict_settings(src: str | Path, dest: str | Path, params: PredictParams) -> None:
    """Copy the model file ``src`` to ``dest`` with ``params`` stored as its predict settings."""
    payload = _read(src)
    payload["predict"] = params.model_dump(mode="json")
    _write(payload, dest)


@dataclasses.dataclass(frozen=True)
class Scale:
    """How a model wants images scaled, in space and in intensity: ``native`` when it was
    trained on the native set (then ``diameter``, the nucleus size in px it was trained at;
    None: the images' own scale), ``normalize``, the rule that brings each image to its
    input range (:func:`..preprocess.normalize_image`), and ``intensity``, the exposures of its
    training images by kind (empty: not recorded, as in files from before it)."""

    native: bool = False
    diameter: float | None = None
    normalize: str = "none"
    intensity: Mapping[str, IntensityRange] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Checkpoint:
    """A loaded model and what was saved with it."""

    model: UNet  # for inference: eval mode, batch norms folded into their convs
    input_size: int  # the side of the training images (pixels)
    epoch: int | None
    predict: PredictParams | None  # the predict stage's settings, when the file has them
    scale: Scale = Scale()  # how the model wants images scaled


def architecture(payload: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :class:`UNet` that a model file's weights were trained with."""
    return {
        "widths": list(payload["widths"]), "dropouts": list(payload["dropouts"]),
        "norm": payload.get("norm", "none"), "out_channels": payload.get("out_channels", 1),
        # files from before the edge class: two channels meant the softmax head
        "head": payload.get("head", "softmax" if payload.get("out_channels", 1) == 2 else "sigmoid"),
    }


def normalize_rule(payload: dict[str, Any], path: str | Path) -> str:
    """The ``model.normalize`` rule a model file's weights were trained with; a rule this
    version does not know is a DataError naming the file."""
    # files from before model.normalize took the pixel values as they are
    rule = payload.get("preprocessing", {}).get("normalize", "none")
    if rule not in NORMALIZE_RULES:
        raise DataError(f"{path}: unknown input normalisation {rule!r} (a newer nuclei-unet?)")
    return rule


def intensity_of(payload: dict[str, Any], path: str | Path) -> dict[str, IntensityRange]:
    """The :class:`IntensityRange` by kind a model file recorded (empty when it has none); a
    malformed record is a DataError naming the file."""
    try:
        return ranges_from_dict(payload.get("intensity", {}))
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from exc


def load_network(path: str | Path) -> tuple[UNet, dict[str, Any]]:
    """The U-Net of a model file as trained (eval mode, batch norms not folded) and the file's
    payload (architecture, input size, settings)."""
    payload = _read(path)
    try:
        model = UNet(**architecture(payload))
    except ValueError as exc:  # UNet refuses what it cannot build (an unknown norm or head)
        raise DataError(f"{path}: {exc} (a newer nuclei-unet?)") from exc
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the U-Net saved by :func:`save_model` (and :func:`add_predict_settings`)."""
    model, payload = load_network(path)
    normalize = normalize_rule(payload, path)
    stored = payload.get("predict")
    predict = build(PredictParams, stored, f"{path}: predict") if stored is not None else None
    return Checkpoint(
        fuse_batch_norm(model), int(payload.get("input_size", 128)), payload.get("epoch"), predict,
        Scale(
            payload.get("input") == "crops", payload.get("diameter"), normalize,
            intensity_of(payload, path),
        ),
    )


