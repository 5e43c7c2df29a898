"""Score the model on training images as another camera or exposure would record them.

Microscopes differ in gain, background offset and response curve as much as in
magnification; the held-out images this project is judged on come from other labs. This
script changes each chosen image's intensities (``--gain``: multiplied, a shorter exposure
below 1; ``--offset``: added, a raised background; ``--gamma``: ``255 (x / 255) ** g``), each
clipped to 0-255 and rounded back to uint8 as a camera would, keeps its masks, segments it as
``predict`` would and prints one JSON line per change, as ``magnification.py`` does (the DSB
mAP and F1 at IoU 0.5 per image kind, the nucleus size found, the images with no nucleus).

    python benchmarks/exposure.py --model models/model.pt --every 12 --gain 1 0.5 0.2 \\
        --offset 40 --gamma 0.5 2

Training images (never val), since what is measured is the intensity handling, not the fit.
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


def exposed(how: str, value: float) -> Variant:
    """The image's intensities changed by ``how`` (gain, offset or gamma) ``value``, as a
    uint8 camera records them; the labels as they are."""

    def variant(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = image.astype(np.float32)
        if how == "gain":
            x = x * value
        elif how == "offset":
            x = x + value
        else:
            x = 255.0 * (x / 255.0) ** value
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), truth

    return variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    parser.add_argument("--every", type=int, default=12, help="score every n-th image of the split")
    parser.add_argument("--gain", type=float, nargs="*", default=[1.0, 0.5, 0.2])
    parser.add_argument("--offset", type=float, nargs="*", default=[40.0])
    parser.add_argument("--gamma", type=float, nargs="*", default=[0.5, 2.0])
    args = parser.parse_args()
    scoring = load_scoring(args)
    variants = {
        f"{how} {value:g}": exposed(how, value)
        for how in ("gain", "offset", "gamma") for value in getattr(args, how)
    }
    for row in score_variants(
        scoring, scoring.samples[:: args.every], args.labels, variants, "change"
    ):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
