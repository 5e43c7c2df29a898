"""Score the model on stained training images as another lab's staining would colour them.

Haematoxylin and eosin differ from lab to lab (dye batch, staining time, section thickness,
scanner) as much as exposure differs between cameras; the held-out images this project is
judged on come from other labs. This script takes every n-th colour (stained slide) training
image, multiplies its haematoxylin (``--hematoxylin``) or eosin (``--eosin``) by each factor
(colour deconvolution, ``transforms.augment.restained``; rounded back to uint8), keeps its
masks, segments it as ``predict`` would and prints one JSON line per change, as
``exposure.py`` does (the DSB mAP and F1 at IoU 0.5, the nucleus size found, the images with
no nucleus).

    python benchmarks/stain.py --model models/model.pt --every 2 --hematoxylin 1 0.5 2 \\
        --eosin 0.5 2

Training images (never val), since what is measured is the stain handling, not the fit.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from scoring import (  # beside this file
    Variant,
    add_data_args,
    load_scoring,
    score_variants,
)

from nuclei_unet.data.kinds import has_colour
from nuclei_unet.io.images import read_image
from nuclei_unet.transforms.augment import restained

STAINS = ("hematoxylin", "eosin")


def stained_with(stain: str, factor: float) -> Variant:
    """The image with ``factor`` times its ``stain`` (one of :data:`STAINS`), as uint8; the
    labels as they are."""
    amounts = [1.0, 1.0, 1.0]
    amounts[STAINS.index(stain)] = factor

    def variant(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        light = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        changed = (restained(light, amounts) * 255.0).round().to(torch.uint8)
        return changed.permute(1, 2, 0).numpy(), truth

    return variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    parser.add_argument("--every", type=int, default=2,
                        help="score every n-th colour image of the split")
    parser.add_argument("--hematoxylin", type=float, nargs="*", default=[1.0, 0.5, 2.0])
    parser.add_argument("--eosin", type=float, nargs="*", default=[0.5, 2.0])
    args = parser.parse_args()
    scoring = load_scoring(args)
    colour = [s for s in scoring.samples if has_colour(read_image(s.image))]
    variants = {
        f"{stain} {factor:g}": stained_with(stain, factor)
        for stain in STAINS for factor in getattr(args, stain)
    }
    for row in score_variants(scoring, colour[:: args.every], args.labels, variants, "change"):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
