"""Score post-processing choices on training images, so that val stays an honest estimate.

Predicts each chosen image once (the model file's predict settings, TTA included), then splits
the probabilities into nuclei with every combination of the grid and prints the mean DSB score
and F1 at IoU 0.5 per combination, best first, as JSON lines.

    python benchmarks/tune_postprocessing.py --model models/model.pt --every 10 \
        --grid '{"instances": ["edge", "watershed"], "seed_threshold": [0.5, 0.7]}'
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import torch
from tqdm import tqdm

from nuclei_unet.infer.segment import label_nuclei, predict_full
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.io.files import read_json
from nuclei_unet.io.images import read_image, read_labels
from nuclei_unet.metrics.dsb import image_scores
from nuclei_unet.model.checkpoint import load_checkpoint
from nuclei_unet.runtime import resolve_device, resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/model.pt")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--labels", default="data/prepared/labels")
    parser.add_argument("--split", default="data/split.json")
    parser.add_argument("--split-name", default="train", help="never val: val must stay honest")
    parser.add_argument("--every", type=int, default=10, help="score every n-th image of the split")
    parser.add_argument("--grid", default='{"seed_threshold": [0.5]}', help="predict params -> values")
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.model)
    options = checkpoint.predict
    device = resolve_device(options.device)
    dtype = resolve_precision(options.precision, device)
    ids = set(read_json(args.split)[args.split_name][:: args.every])
    samples = [s for s in list_samples(args.raw) if s.id in ids]
    grid = json.loads(args.grid)
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    scores: list[list[tuple[float, int, int, int]]] = [[] for _ in combos]
    for sample in tqdm(samples, desc="predict", unit="img"):
        image = read_image(sample.image)
        truth = read_labels(f"{args.labels}/{sample.id}.png")
        with torch.inference_mode():
            maps = predict_full(
                checkpoint.model, image, options, checkpoint.input_size, device, dtype,
                checkpoint.scale,
            )
        for k, combo in enumerate(combos):
            s = image_scores(truth, label_nuclei(maps, options.model_copy(update=combo)))
            scores[k].append((s["dsb_score"], s["tp_50"], s["fp_50"], s["fn_50"]))
    rows = []
    for combo, per_image in zip(combos, scores):
        dsb, tp, fp, fn = (np.array(c) for c in zip(*per_image))
        f1 = 2 * tp.sum() / max(1, 2 * tp.sum() + fp.sum() + fn.sum())
        rows.append({**combo, "dsb_map": round(float(dsb.mean()), 4), "f1_50": round(float(f1), 4),
                     "images": len(per_image), "split": args.split_name})
    for row in sorted(rows, key=lambda r: -r["dsb_map"]):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
