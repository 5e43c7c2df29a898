"""Where a model's DSB mAP goes: the splits between touching nuclei, or the foreground itself.

Predicts each chosen training image once (the model file's predict settings, TTA included, or
the flags of ``nuclei-unet predict`` on top), then scores four segmentations of it, each with
one part taken from the truth, and prints one JSON line per image group (kind, and with
``--by-size`` the image's size too): the mean per-image DSB score of each.

* ``as_predicted``: what predict writes (``infer.segment.label_nuclei``).
* ``true_foreground``: the true nucleus pixels, split by the model's own rule
  (``predict.instances``: its seeds, its flooding): what perfect foreground would give.
* ``true_nuclei``: the model's foreground, flooded along its body probability from the inner
  half of each true nucleus (one marker per nucleus, none elsewhere): what perfect splits
  would give; predicted pixels joined to a true nucleus still count against it.
* ``true_cut``: each true nucleus cut to the model's foreground: only its missed pixels count.

The gap ``true_nuclei`` -> ``true_cut`` is the predicted foreground outside the truth that is
joined to a true nucleus, plus where the flooding puts the line between touching nuclei.

    python benchmarks/error_sources.py --model models/model.pt --every 8 --every-stained 2 --by-size
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
import torch
from scipy import ndimage
from scoring import (  # beside this file
    add_data_args, add_sampling_args, load_scoring, sampled_images,
)
from skimage.segmentation import watershed

from nuclei_unet.config.schema import PredictParams
from nuclei_unet.infer.segment import label_nuclei, predict_full
from nuclei_unet.io.images import read_labels
from nuclei_unet.metrics.dsb import image_scores

SEGMENTATIONS = ("as_predicted", "true_foreground", "true_nuclei", "true_cut")


def nucleus_cores(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` labels -> the same labels kept only where a pixel lies at least half the
    nucleus's largest inner distance from its outline (one compact marker per nucleus)."""
    cores = np.zeros(labels.shape, dtype=np.int32)
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        inside = labels[box] == i
        # padded so that a nucleus at the image border still has an outline there
        distance = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        cores[box][inside & (distance >= distance.max() / 2)] = i
    return cores


def segmentations(
    maps: np.ndarray, truth: np.ndarray, options: PredictParams, diameter: float | None,
    factor: float | None,
) -> dict[str, np.ndarray]:
    """The four ``(H, W)`` labelings of :data:`SEGMENTATIONS` for ``(M, H, W) float32`` maps
    and ``(H, W)`` true labels."""
    fg = maps[0]
    edge = maps[1] if len(maps) > 1 else None
    body = fg if edge is None else fg * (1.0 - edge)
    mask = fg > options.threshold
    cores = nucleus_cores(truth)
    return {
        "as_predicted": label_nuclei(maps, options, diameter, factor),
        "true_foreground": label_nuclei(maps, options, diameter, factor, mask=truth > 0),
        # a core the mask misses still floods what of the mask touches it
        "true_nuclei": watershed(-body, cores, mask=mask | (cores > 0)),
        "true_cut": np.where(mask, truth, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    add_sampling_args(parser)
    parser.add_argument("--by-size", action="store_true", help="group by image size too")
    args = parser.parse_args()
    scoring = load_scoring(args)
    checkpoint = scoring.checkpoint
    options = checkpoint.predict
    scores: dict[str, dict[str, list[float]]] = {}
    model = checkpoint.model.to(scoring.device).eval()
    for sample, image, kind in sampled_images(scoring.samples, args, Counter()):
        truth = read_labels(f"{args.labels}/{sample.id}.png")
        with torch.inference_mode():
            maps, factor = predict_full(
                model, image, options, checkpoint.input_size, scoring.device, scoring.dtype,
                checkpoint.scale,
            )
        group = f"{kind} {image.shape[0]}x{image.shape[1]}" if args.by_size else kind
        per = scores.setdefault(group, {name: [] for name in SEGMENTATIONS})
        labels = segmentations(maps, truth, options, checkpoint.scale.diameter, factor)
        for name, labeled in labels.items():
            per[name].append(image_scores(truth, labeled)["dsb_score"])
    for group, per in sorted(scores.items()):
        row: dict[str, object] = {"group": group, "images": len(per["as_predicted"])}
        row.update({name: round(float(np.mean(v)), 4) for name, v in per.items()})
        print(json.dumps(row))


if __name__ == "__main__":
    main()
