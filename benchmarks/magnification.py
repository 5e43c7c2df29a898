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

import numpy as np
from scoring import (  # beside this file
    Variant,
    add_data_args,
    load_scoring,
    score_variants,
)

from nuclei_unet.data.native import rescale_image, rescale_labels


def zoomed(zoom: float) -> Variant:
    """The image and its labels shrunk (or enlarged) by ``zoom``."""

    def variant(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        small = rescale_image(image, zoom)
        return small, rescale_labels(truth, small.shape[:2])

    return variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    parser.add_argument("--every", type=int, default=8, help="score every n-th image of the split")
    parser.add_argument("--zoom", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    args = parser.parse_args()
    scoring = load_scoring(args)
    variants = {zoom: zoomed(zoom) for zoom in args.zoom}
    for row in score_variants(scoring, scoring.samples[:: args.every], args.labels, variants, "zoom"):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
