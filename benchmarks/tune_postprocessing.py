"""Score post-processing choices on training images, so that val stays an honest estimate.

Predicts each chosen image once (the model file's predict settings, TTA included, or the flags of
``nuclei-unet predict`` given on top, e.g. ``--scale-start 1.0``), then splits
the probabilities into nuclei with every combination of the grid and prints, per combination,
best first, one JSON line: the DSB mAP and F1 at IoU 0.5 of each image kind (fluorescence,
stained; ``data/kinds.py``) and of the whole split, where each kind counts as often as it
occurs in the split (so a sample that takes every stained image but every 4th fluorescence one
still estimates the split's figures).

The defaults of ``predict.threshold``, ``seed_threshold`` and ``min_size`` were chosen with

    python benchmarks/tune_postprocessing.py --model models/model.pt --every 4 --every-stained 1 \
        --grid '{"threshold": [0.5, 0.55, 0.6, 0.65], "seed_threshold": [0.5, 0.6, 0.7],
                 "min_size": [10, 20, 25, 30]}'
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter

import numpy as np
import torch
from scoring import (  # beside this file
    add_data_args, add_sampling_args, load_scoring, sampled_images,
)

from nuclei_unet.data.kinds import KINDS
from nuclei_unet.infer.segment import label_nuclei, predict_full
from nuclei_unet.io.images import read_labels
from nuclei_unet.metrics.dsb import f1_score, image_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    add_sampling_args(parser)
    parser.add_argument("--grid", default='{"seed_threshold": [0.5]}', help="predict params -> values")
    args = parser.parse_args()
    scoring = load_scoring(args)
    checkpoint, device, dtype = scoring.checkpoint, scoring.device, scoring.dtype
    options = checkpoint.predict
    samples = scoring.samples
    grid = json.loads(args.grid)
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    in_split: Counter[str] = Counter()
    # per combination and kind: per-image DSB scores and summed TP / FP / FN at IoU 0.5
    scores = [{kind: ([], np.zeros(3)) for kind in KINDS} for _ in combos]
    model = checkpoint.model.to(device).eval()
    for sample, image, kind in sampled_images(samples, args, in_split):
        truth = read_labels(f"{args.labels}/{sample.id}.png")
        with torch.inference_mode():
            maps, factor = predict_full(
                model, image, options, checkpoint.input_size, device, dtype, checkpoint.scale
            )
        for k, combo in enumerate(combos):
            labels = label_nuclei(
                maps, options.model_copy(update=combo), checkpoint.scale.diameter, factor
            )
            s = image_scores(truth, labels)
            dsb, counts = scores[k][kind]
            dsb.append(s["dsb_score"])
            counts += (s["tp_50"], s["fp_50"], s["fn_50"])
    rows = []
    for combo, per_kind in zip(combos, scores):
        row: dict[str, object] = dict(combo)
        total_map, total_counts, weight = 0.0, np.zeros(3), 0
        for kind, (dsb, counts) in per_kind.items():
            if not dsb:
                continue
            row[f"dsb_map_{kind}"] = round(float(np.mean(dsb)), 4)
            row[f"f1_50_{kind}"] = round(f1_score(*counts), 4)
            row[f"images_{kind}"] = len(dsb)
            # each kind weighs as many images as it has in the split
            total_map += in_split[kind] * float(np.mean(dsb))
            total_counts += in_split[kind] / len(dsb) * counts
            weight += in_split[kind]
        row["dsb_map"] = round(total_map / max(weight, 1), 4)
        row["f1_50"] = round(f1_score(*total_counts), 4)
        row["split"] = args.split_name
        rows.append(row)
    for row in sorted(rows, key=lambda r: -float(r["dsb_map"])):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
