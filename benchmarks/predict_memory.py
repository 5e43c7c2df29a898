"""Peak memory of segmenting one large image as predict does: a gray field of a given side
with a lattice of round nuclei of a given radius, segmented by ``--model`` with its stored
predict settings, as ``nuclei-unet predict`` without flags (``scaled`` mode estimates the
scale, so small nuclei mean a large rescaled image). Each case runs in a fresh process, whose peak resident memory (``ru_maxrss``) is read
before and after: the difference is what segmenting costs. The last line is one JSON object.

    python benchmarks/predict_memory.py --model models/model.pt [--side 2048] [--radius 10 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from nuclei_unet.cli import default_settings
from nuclei_unet.infer.segment import segment
from nuclei_unet.model.checkpoint import load_checkpoint
from nuclei_unet.runtime import resolve_precision


def lattice(side: int, radius: int) -> np.ndarray:
    """``(side, side, 3) uint8``: dim noise (0..19) with a nucleus (+150) of ``radius`` px
    centred in each ``4 radius`` px square, gray (the three channels equal)."""
    rng = np.random.default_rng(0)
    gray = (rng.random((side, side)) * 20).astype(np.uint8)
    period = 4 * radius
    yy, xx = np.ogrid[:side, :side]
    gray[((yy % period) - 2 * radius) ** 2 + ((xx % period) - 2 * radius) ** 2 < radius**2] += 150
    return np.repeat(gray[:, :, None], 3, axis=2)


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_case(model_path: str, side: int, radius: int) -> dict[str, float]:
    """Segment one lattice image in this process; its peak memory before and after, in MB."""
    checkpoint = load_checkpoint(model_path)
    options = checkpoint.predict or default_settings(checkpoint)  # as nuclei-unet predict
    device = torch.device("cpu")
    image = lattice(side, radius)
    before = peak_mb()
    start = time.perf_counter()
    _mask, labels = segment(
        checkpoint.model, image, options, checkpoint.input_size, device,
        resolve_precision(options.precision, device), checkpoint.scale, f"{side}px_r{radius}",
    )
    seconds, peak = time.perf_counter() - start, peak_mb()
    return {
        "side": side, "radius": radius, "nuclei": int(labels.max(initial=0)),
        "lattice_nuclei": (side // (4 * radius)) ** 2, "seconds": round(seconds, 1),
        "before_mb": round(before), "peak_mb": round(peak), "segment_mb": round(peak - before),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model file (its predict settings are used)")
    parser.add_argument("--side", type=int, nargs="+", default=[2048], help="image sides, px")
    parser.add_argument("--radius", type=int, nargs="+", default=[10, 3], help="nucleus radii, px")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child's case
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_case(args.model, args.side[0], args.radius[0])))
        return
    rows = []
    for side in args.side:
        for radius in args.radius:
            # a fresh process per case: ru_maxrss only ever grows
            child = subprocess.run(
                [sys.executable, __file__, "--one", "--model", args.model, "--side", str(side),
                 "--radius", str(radius)],
                check=True, stdout=subprocess.PIPE, text=True,
            )
            row = json.loads(child.stdout.splitlines()[-1])
            print(f"{side}x{side}, nuclei of radius {radius} px: {row['nuclei']} found "
                  f"({row['lattice_nuclei']} drawn) in {row['seconds']} s; segmenting took "
                  f"{row['segment_mb']} MB over the {row['before_mb']} MB before it", flush=True)
            rows.append(row)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
