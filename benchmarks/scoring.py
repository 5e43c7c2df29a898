"""What the benchmarks that score a model on training images share: their data arguments,
the predict flags of ``nuclei-unet predict`` over the model file's settings, the model file,
device and precision they load from them, and the scoring of training images changed as
another microscope would change them (:func:`score_variants`)."""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nuclei_unet.cli import add_setting_flags, checkpoint_settings
from nuclei_unet.data.kinds import KINDS, STAINED, image_kind
from nuclei_unet.data.native import median_diameter
from nuclei_unet.infer.segment import segment
from nuclei_unet.io.dsb import Sample, list_samples
from nuclei_unet.io.files import read_json
from nuclei_unet.io.images import read_image, read_labels
from nuclei_unet.metrics.dsb import f1_score, image_scores
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


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    """``--every`` n-th image of each kind, ``--every-stained`` for the rare stained kind, or
    ``--ids``: the images whose ids start with these."""
    parser.add_argument("--every", type=int, default=10, help="score every n-th image of a kind")
    parser.add_argument("--every-stained", type=int, default=None,
                        help="every n-th stained image instead (the rare kind; default: --every)")
    parser.add_argument("--ids", nargs="+", default=None, metavar="PREFIX",
                        help="only the images whose ids start with one of these (every one of them)")


def sampled_images(
    samples: list[Sample], args: argparse.Namespace, in_split: Counter[str],
) -> Iterator[tuple[Sample, np.ndarray, str]]:
    """The every-th, 2 x every-th, ... image of each kind (:func:`add_sampling_args`), or with
    ``args.ids`` every image whose id starts with one of them, each as ``(sample, (H, W, 3)
    uint8 image, kind)``, with a progress bar; ``in_split`` counts every image of each kind
    read, sampled or not. An id prefix that matches no image is a ``SystemExit`` naming it."""
    every = {kind: args.every for kind in KINDS}
    every[STAINED] = args.every_stained or args.every
    prefixes = tuple(args.ids or ())
    if prefixes:
        unmatched = [p for p in prefixes if not any(s.id.startswith(p) for s in samples)]
        if unmatched:
            raise SystemExit(f"--ids: no image of the split starts with {', '.join(unmatched)}")
        samples = [s for s in samples if s.id.startswith(prefixes)]
    for sample in tqdm(samples, desc="predict", unit="img"):
        image = read_image(sample.image)
        kind = image_kind(image)
        in_split[kind] += 1
        if prefixes or in_split[kind] % every[kind] == 0:
            yield sample, image, kind


# (image (H, W, 3) uint8, true labels (H, W)) -> the same pair as another microscope gives it
Variant = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def score_variants(
    scoring: Scoring, samples: list[Sample], labels_dir: str, variants: dict[str | float, Variant],
    key: str,
) -> list[dict[str, object]]:
    """Segment every sample under every variant as predict does (``infer.segment.segment``,
    the model file's settings with the flags on top) and score it against its changed labels.

    One row per variant, ``{key: name}`` plus per image kind: the images, the DSB mAP, F1 at
    IoU 0.5 over all their nuclei, the median nucleus diameter found and how many images came
    out with no nucleus at all.
    """
    checkpoint = scoring.checkpoint
    model = checkpoint.model.to(scoring.device).eval()
    # per variant and kind: DSB scores, summed TP / FP / FN at 0.5, found diameters, empty images
    results: dict[str | float, dict[str, dict]] = {name: {} for name in variants}
    for sample in tqdm(samples, desc="images", unit="img"):
        image = read_image(sample.image)
        truth = read_labels(f"{labels_dir}/{sample.id}.png")
        kind = image_kind(image)
        for name, variant in variants.items():
            changed, changed_truth = variant(image, truth)
            with torch.inference_mode():
                _, labels = segment(
                    model, changed, checkpoint.predict, checkpoint.input_size, scoring.device,
                    scoring.dtype, checkpoint.scale,
                )
            s = image_scores(changed_truth, labels)
            r = results[name].setdefault(
                kind, {"dsb": [], "counts": np.zeros(3), "diameters": [], "empty": 0}
            )
            r["dsb"].append(s["dsb_score"])
            r["counts"] += (s["tp_50"], s["fp_50"], s["fn_50"])
            found = median_diameter(labels)
            r["empty"] += found is None
            if found is not None:
                r["diameters"].append(found)
    rows = []
    for name, per_kind in results.items():
        row: dict[str, object] = {key: name}
        for kind, r in sorted(per_kind.items()):
            row[f"images_{kind}"] = len(r["dsb"])
            row[f"dsb_map_{kind}"] = round(float(np.mean(r["dsb"])), 4)
            row[f"f1_50_{kind}"] = round(f1_score(*r["counts"]), 4)
            row[f"found_diameter_{kind}"] = round(float(np.median(r["diameters"] or [0.0])), 1)
            row[f"no_nucleus_{kind}"] = r["empty"]
        rows.append(row)
    return rows
