"""Typed, validated views of the sections of params.yaml.

Each stage reads only its own section (plus ``base.seed``). Every section is parsed into a frozen
dataclass; an unknown key, a wrong type or an out-of-range value raises :class:`ParamsError`
naming the key, before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from .errors import ParamsError

T = TypeVar("T")


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict; a missing or malformed file is a ParamsError."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ParamsError(f"{path}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


def _check_value(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type ``hint``; return it converted (lists to tuples)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ParamsError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(value, inner, key)
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return tuple(_check_value(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported params type {hint!r} for {key}")  # a bug in this module


def build(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from the mapping ``raw`` found at key path ``where``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(
            f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name in raw:
            values[name] = _check_value(raw[name], hints[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{key}: missing")
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj


def _require(ok: bool, key: str, what: str) -> None:
    if not ok:
        raise ParamsError(f"{key}: {what}")


@dataclasses.dataclass(frozen=True)
class SyntheticParams:
    """How many synthetic images to generate and how crowded they are."""

    count: int = 96
    min_nuclei: int = 3
    max_nuclei: int = 80

    def check(self, where: str) -> None:
        _require(self.count >= 1, f"{where}.count", f"must be >= 1, got {self.count}")
        _require(self.min_nuclei >= 1, f"{where}.min_nuclei", "must be >= 1")
        _require(
            self.max_nuclei >= self.min_nuclei,
            f"{where}.max_nuclei",
            f"must be >= min_nuclei ({self.min_nuclei}), got {self.max_nuclei}",
        )


@dataclasses.dataclass(frozen=True)
class DownloadParams:
    """Where the raw DSB-layout dataset comes from."""

    source: Literal["synthetic", "zip", "url", "bbbc038", "kaggle"] = "synthetic"
    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    cache_dir: str | None = None
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    synthetic: SyntheticParams = dataclasses.field(default_factory=SyntheticParams)

    def check(self, where: str) -> None:
        if self.source == "zip":
            _require(self.path is not None, f"{where}.path", "required when source is zip")
        if self.source == "url":
            ok = self.url is not None and self.url.split(":", 1)[0] in ("http", "https", "file")
            _require(ok, f"{where}.url", "an http, https or file URL is required when source is url")
        _require(self.timeout > 0, f"{where}.timeout", "must be > 0 seconds")
        _require(self.retries >= 0, f"{where}.retries", "must be >= 0")
        _require(self.backoff >= 0, f"{where}.backoff", "must be >= 0 seconds")
        if self.sha256 is not None:
            ok = len(self.sha256) == 64 and all(c in "0123456789abcdefABCDEF" for c in self.sha256)
            _require(ok, f"{where}.sha256", "must be 64 hexadecimal digits or null")


@dataclasses.dataclass(frozen=True)
class PrepareParams:
    """Resizing of images and merging of masks."""

    size: int = 128
    mask_rule: Literal["area", "any"] = "area"
    workers: int = 0
    weight_map: bool = False
    w0: float = 10.0
    sigma: float = 5.0

    def check(self, where: str) -> None:
        _require(
            self.size >= 16 and self.size % 16 == 0,
            f"{where}.size",
            f"must be a positive multiple of 16 (four 2x poolings), got {self.size}",
        )
        _require(self.workers >= 0, f"{where}.workers", "must be >= 0 (0 = all cores)")
        _require(self.sigma > 0, f"{where}.sigma", "must be > 0")


@dataclasses.dataclass(frozen=True)
class SplitParams:
    """Test and validation split, as in the seed notebook."""

    n_test: int = 2
    val_fraction: float = 0.1

    def check(self, where: str) -> None:
        _require(self.n_test >= 0, f"{where}.n_test", f"must be >= 0, got {self.n_test}")
        _require(
            0.0 < self.val_fraction < 1.0,
            f"{where}.val_fraction",
            f"must be in (0, 1), got {self.val_fraction}",
        )


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """U-Net widths and dropouts, one entry per level (top to bottleneck)."""

    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropouts: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2, 0.3)
    norm: Literal["none", "batch"] = "none"

    def check(self, where: str) -> None:
        _require(len(self.widths) >= 2, f"{where}.widths", "needs at least two levels")
        _require(all(w >= 1 for w in self.widths), f"{where}.widths", "must all be >= 1")
        _require(
            len(self.dropouts) == len(self.widths),
            f"{where}.dropouts",
            f"needs one value per level ({len(self.widths)}), got {len(self.dropouts)}",
        )
        _require(
            all(0.0 <= d < 1.0 for d in self.dropouts), f"{where}.dropouts", "must be in [0, 1)"
        )


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """On-the-fly augmentation; every number 0 (and both switches false) is off."""

    flip: bool = False
    rot90: bool = False
    elastic_sigma: float = 0.0  # px of displacement at a 256-px image, scaled to the size
    rotate_deg: float = 0.0
    scale: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    color: float = 0.0

    def check(self, where: str) -> None:
        for name in ("elastic_sigma", "rotate_deg", "scale", "brightness", "contrast", "gamma", "color"):
            _require(getattr(self, name) >= 0, f"{where}.{name}", "must be >= 0")
        _require(self.scale < 1, f"{where}.scale", "must be < 1")


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """Optimiser, schedule and early stopping."""

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.99
    weight_decay: float = 0.0
    scheduler: Literal["none", "cosine", "plateau"] = "none"
    loss: Literal["bce", "bce_dice", "dice", "softmax_ce"] = "bce"
    weight_map: bool = False
    batch_size: int = 16
    epochs: int = 40
    patience: int | None = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    threads: int = 0
    processes: int = 1
    workers: int = 0
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)

    def check(self, where: str) -> None:
        _require(self.lr > 0, f"{where}.lr", f"must be > 0, got {self.lr}")
        _require(0.0 <= self.momentum < 1.0, f"{where}.momentum", "must be in [0, 1)")
        _require(self.batch_size >= 1, f"{where}.batch_size", "must be >= 1")
        _require(self.epochs >= 1, f"{where}.epochs", "must be >= 1")
        _require(
            self.patience is None or self.patience >= 1, f"{where}.patience", "must be >= 1 or null"
        )
        _require(self.threads >= 0, f"{where}.threads", "must be >= 0 (0 = all cores)")
        _require(self.processes >= 1, f"{where}.processes", "must be >= 1")
        _require(self.workers >= 0, f"{where}.workers", "must be >= 0")
        _require(self.weight_decay >= 0, f"{where}.weight_decay", "must be >= 0")


@dataclasses.dataclass(frozen=True)
class PredictParams:
    """Thresholding, full-resolution prediction and instance separation."""

    threshold: float = 0.5
    batch_size: int = 32
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    tta: bool = False
    mode: Literal["resize", "tile"] = "resize"
    tile_size: int = 128
    tile_overlap: int = 32
    tile_scale: float = 0.5
    instances: Literal["watershed", "components"] = "watershed"
    min_size: int = 10
    min_distance: int = 5
    full_res_splits: tuple[str, ...] = ("val", "test")

    def check(self, where: str) -> None:
        _require(0.0 < self.threshold < 1.0, f"{where}.threshold", "must be in (0, 1)")
        _require(self.batch_size >= 1, f"{where}.batch_size", "must be >= 1")
        _require(
            self.tile_size >= 16 and self.tile_size % 16 == 0,
            f"{where}.tile_size", f"must be a positive multiple of 16, got {self.tile_size}",
        )
        _require(
            0 <= self.tile_overlap < self.tile_size and self.tile_overlap % 2 == 0,
            f"{where}.tile_overlap", "must be even, >= 0 and smaller than tile_size",
        )
        _require(self.tile_scale > 0, f"{where}.tile_scale", "must be > 0")
        _require(self.min_size >= 0, f"{where}.min_size", "must be >= 0")
        _require(self.min_distance >= 1, f"{where}.min_distance", "must be >= 1")
        bad = [s for s in self.full_res_splits if s not in ("train", "val", "test")]
        _require(not bad, f"{where}.full_res_splits", f"unknown split {bad[:1]} (train, val, test)")


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """Metric smoothing and how many samples the figures show."""

    smooth: float = 1e-3
    n_samples: int = 4

    def check(self, where: str) -> None:
        _require(self.smooth >= 0, f"{where}.smooth", "must be >= 0")
        _require(self.n_samples >= 0, f"{where}.n_samples", "must be >= 0")


SECTIONS: dict[str, type] = {
    "download": DownloadParams,
    "prepare": PrepareParams,
    "split": SplitParams,
    "model": ModelParams,
    "train": TrainParams,
    "predict": PredictParams,
    "evaluate": EvaluateParams,
}


def load_section(path: str | Path, name: str) -> Any:
    """Read and validate one section of the params file (e.g. ``"train"``)."""
    params = read_params(path)
    if name not in params:
        raise ParamsError(f"{path}: section '{name}' is missing")
    return build(SECTIONS[name], params[name], name)


def load_seed(path: str | Path) -> int:
    """Read ``base.seed``, the one value every stage shares."""
    base = read_params(path).get("base")
    if not isinstance(base, dict) or "seed" not in base:
        raise ParamsError(f"{path}: base.seed is missing")
    return _check_value(base["seed"], int, "base.seed")


def validate_all(path: str | Path) -> None:
    """Validate every section at once (used before a run, so bad params fail before any work)."""
    params = read_params(path)
    unknown = sorted(set(params) - set(SECTIONS) - {"base"})
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section in {path}")
    load_seed(path)
    for name in SECTIONS:
        load_section(path, name)
