"""What the benchmarks that score a model on training images share: their data arguments,
the predict flags of ``nuclei-unet predict`` over the model file's settings, and the model file,
device and precision they load from them."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import torch

from nuclei_unet.cli import add_setting_flags, checkpoint_settings
from nuclei_unet.io.dsb import Sample, list_samples
from nuclei_unet.io.files import read_json
from nuclei_unet.model.checkpoint import Checkpoint, load_checkpoint
from nuclei_unet.runtime import resolve_device, resolve_precision


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """The model file, the raw images, the prepared labels and the split to score, and one
    flag per predict setting (``--scale-start 1.0``), over the model file's own."""
    parser.add_argument("--model", default="models/model.pt")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--labels", default="data/prepared/labels")
    parser.add_argument("--split", default="data/split.json")
    parser.add_argument("--split-name", default="train", help="never val: val must stay honest")
    add_setting_flags(parser)


@dataclass
class Scoring:
    """A model file ready to predict with its own settings, and the split's samples."""

    checkpoint: Checkpoint
    device: torch.device
    dtype: torch.dtype
    samples: list[Sample]  # sorted by id


def load_scoring(args: argparse.Namespace) -> Scoring:
    """Load ``args.model`` (its predict settings, or the defaults, with the flags on top) and
    the samples of ``args.split_name``."""
    checkpoint = load_checkpoint(args.model)
    checkpoint = dataclasses.replace(checkpoint, predict=checkpoint_settings(args, checkpoint))
    device = resolve_device(checkpoint.predict.device)
    ids = set(read_json(args.split)[args.split_name])
    return Scoring(
        checkpoint, device, resolve_precision(checkpoint.predict.precision, device),
        [s for s in list_samples(args.raw) if s.id in ids],
    )
