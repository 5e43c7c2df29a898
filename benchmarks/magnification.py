"""Score the model on training images shrunk as if taken at a lower magnification.

A user's microscope need not match stage1_train's: the held-out images this project is judged
on come from other labs and microscopes. This script shrinks each chosen image (and its masks)
by each ``--zoom`` factor, segments it as ``predict`` would (``infer.segment.segment``, the
model file's predict settings: scale estimate, TTA, min size) and prints, per zoom, one JSON
line: the DSB mAP and F1 at IoU 0.5 per image kind, the median estimated nucleus diameter the
model found, and how many images came out with no nucleus at all.

    python benchmarks/magnification.py --model models/model.pt --every 8 --zoom 1 0.5 0.25

Training images (never val), since what is measured is the scale handling, not the fit.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch
from scoring import add_data_args, load_scoring  # beside this file
from tqdm import tqdm

from nuclei_unet.data.kinds import image_kind
from nuclei_unet.data.native import median_diameter, rescale_image, rescale_labels
from nuclei_unet.infer.segment import segment
from nuclei_unet.io.images import read_image, read_labels
from nuclei_unet.metrics.dsb import f1_score, image_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    parser.add_argument("--every", type=int, default=8, help="score every n-th image of the split")
    parser.add_argument("--zoom", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    args = parser.parse_args()
    scoring = load_scoring(args)
    checkpoint, device, dtype = scoring.checkpoint, scoring.device, scoring.dtype
    options = checkpoint.predict
    samples = scoring.samples[:: args.every]
    model = checkpoint.model.to(device).eval()
    # per zoom and kind: DSB scores, summed TP / FP / FN at 0.5, found diameters, empty images
    results: dict[float, dict[str, dict]] = defaultdict(dict)
    for sample in tqdm(samples, desc="images", unit="img"):
        image = read_image(sample.image)
        truth = read_labels(f"{args.labels}/{sample.id}.png")
        kind = image_kind(image)
        for zoom in args.zoom:
            small = rescale_image(image, zoom)
            small_truth = rescale_labels(truth, small.shape[:2])
            with torch.inference_mode():
                _, labels = segment(
                    model, small, options, checkpoint.input_size, device, dtype, checkpoint.scale
                )
            s = image_scores(small_truth, labels)
            r = results[zoom].setdefault(
                kind, {"dsb": [], "counts": np.zeros(3), "diameters": [], "empty": 0}
            )
            r["dsb"].append(s["dsb_score"])
            r["counts"] += (s["tp_50"], s["fp_50"], s["fn_50"])
            found = median_diameter(labels)
            r["empty"] += found is None
            if found is not None:
                r["diameters"].append(found)
    for zoom, per_kind in results.items():
        row: dict[str, object] = {"zoom": zoom}
        for kind, r in sorted(per_kind.items()):
            row[f"images_{kind}"] = len(r["dsb"])
            row[f"dsb_map_{kind}"] = round(float(np.mean(r["dsb"])), 4)
            row[f"f1_50_{kind}"] = round(f1_score(*r["counts"]), 4)
            row[f"found_diameter_{kind}"] = round(float(np.median(r["diameters"] or [0.0])), 1)
            row[f"no_nucleus_{kind}"] = r["empty"]
        print(json.dumps(row))


if __name__ == "__main__":
    main()
