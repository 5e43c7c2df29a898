"""Benchmark of the prepare stage: the seed notebook's method against ours.

Prints images/s of (a) the seed's method (decode and resize every mask, then maximum; one
process, one run: it takes minutes), (b) ours in one process and (c) ours with all cores, the
median of ``--repeat`` runs each, on the real stage1_train.zip when it is there (else on
synthetic data). The last line is one JSON object.

    python benchmarks/prepare.py [--zip ../shared/data/stage1_train.zip] [--limit N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from skimage.io import imread
from skimage.transform import resize
from tqdm import tqdm

from nuclei_unet.config.schema import PrepareParams, SyntheticParams
from nuclei_unet.data.download import extract_zip
from nuclei_unet.data.prepare import prepare_dataset
from nuclei_unet.data.synthetic import write_dataset
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.parallel import resolve_workers

# the seed's mask loop lives with the tests, which check our fast path against it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from oracles import seed_mask  # noqa: E402


def seed_method(samples, size: int) -> None:
    """The notebook's loop: per image, read and resize it and every mask, maximum of the masks.

    The image as the notebook did it: scikit-image's imread, the first three channels, resize.
    """
    for sample in tqdm(samples, desc="seed method", unit="img"):
        image = imread(sample.image)[:, :, :3]
        resize(image, (size, size), mode="constant", preserve_range=True)
        seed_mask(sample, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", default="../shared/data/stage1_train.zip")
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    parser.add_argument("--synthetic", type=int, default=200, help="images when the zip is absent")
    parser.add_argument("--mask-rule", default="area", choices=("area", "any"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (the seed's: one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        if Path(args.zip).is_file():
            extract_zip(args.zip, raw)
            data = args.zip
        else:
            write_dataset(raw, 0, SyntheticParams(count=args.synthetic))
            data = f"synthetic ({args.synthetic} images)"
        samples = list_samples(raw)
        if args.limit:
            # a subset: keep only those folders so ours and the seed see the same images
            for extra in samples[args.limit :]:
                shutil.rmtree(raw / extra.id)
            samples = samples[: args.limit]
        n = len(samples)
        timings = {}
        start = time.perf_counter()
        seed_method(samples, 128)
        timings["seed_1_process"] = [time.perf_counter() - start]
        for workers in (1, 0):
            name = f"ours_{resolve_workers(workers)}_process"
            timings[name] = []
            for _ in range(args.repeat):
                out = Path(tmp) / f"out{workers}"
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                prepare_dataset(raw, out, PrepareParams(size=128, mask_rule=args.mask_rule, workers=workers))
                timings[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(runs) for name, runs in timings.items()}
    print(f"\nprepare benchmark on {data}: {n} images, mask rule {args.mask_rule}, median of each")
    for name, seconds in medians.items():
        speedup = medians["seed_1_process"] / seconds
        runs = ", ".join(f"{s:.2f}" for s in timings[name])
        print(f"  {name:<18} {seconds:8.2f} s  {n / seconds:8.1f} img/s  {speedup:6.1f}x the seed  (runs: {runs})")
    print(json.dumps({"images": n, **{f"{k}_s": round(v, 3) for k, v in medians.items()}}))

if __name__ == "__main__":
    main()
