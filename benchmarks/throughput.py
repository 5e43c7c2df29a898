"""Training and inference throughput of the U-Net, ours against the eager fp32 NCHW reference.

Prints images/s of (a) our full training loop (the train stage's own train_epoch: shuffling,
augmentation, batching and logging included) at the model and train params of params.yaml,
(b) the reference training step (the seed's model, eager, fp32, NCHW, plain loop), (c) our
inference (predict_probs on the model as the predict stage loads it: batch norms folded) and
(d) the reference inference, each as the median of several timed repetitions in this one
process, with the fraction of the compute limit reached. The last line is one JSON object.

    python benchmarks/throughput.py [--params params.yaml] [--images 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

from nuclei_unet.config.load import load_section
from nuclei_unet.infer.probs import predict_probs
from nuclei_unet.model.unet import UNet, fuse_batch_norm
from nuclei_unet.runtime import resolve_precision, set_threads
from nuclei_unet.train.build import make_loader, make_model, make_optimizer, to_tensors
from nuclei_unet.train.distributed import Dist
from nuclei_unet.train.losses import LOSSES
from nuclei_unet.train.steps import train_epoch

# forward FLOPs of the seed model at 128x128 (2 per multiply-add); training costs about 3x
FORWARD_GFLOP = 1.52


def _median_rate(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="model and train sections")
    parser.add_argument("--images", type=int, default=64, help="images per timed repetition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--peak-gflops", type=float, default=0.0,
                        help="the machine's fp32 matmul peak, to print the fraction reached")
    args = parser.parse_args()
    threads = set_threads(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(args.images, 128, 128, 3), dtype=np.uint8)
    masks = (rng.random((args.images, 128, 128)) > 0.8).astype(np.uint8)
    model_params = load_section(args.params, "model")
    params = load_section(args.params, "train").model_copy(update={"batch_size": args.batch_size})
    dtype = resolve_precision(params.precision)

    torch.manual_seed(0)
    ours = make_model(model_params, params.loss).to(memory_format=torch.channels_last)
    x, y = to_tensors(images, masks)
    optimizer = make_optimizer(ours, params)
    loader = make_loader(x, y, None, params, 0, Dist())

    def our_epoch() -> None:
        train_epoch(ours, optimizer, loader, dtype, LOSSES[params.loss], Dist(), "bench")

    reference = UNet()
    ref_x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).contiguous()
    ref_y = torch.from_numpy(masks).float()[:, None]
    ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()

    def reference_epoch() -> None:
        reference.train()
        for start in range(0, len(ref_x), args.batch_size):
            ref_opt.zero_grad()
            loss = bce(reference(ref_x[start : start + args.batch_size]), ref_y[start : start + args.batch_size])
            loss.backward()
            ref_opt.step()

    @torch.inference_mode()
    def reference_infer() -> None:
        reference.eval()
        for start in range(0, len(ref_x), args.batch_size):
            torch.sigmoid(reference(ref_x[start : start + args.batch_size]))

    def our_infer() -> None:
        predict_probs(inference_model, images, args.batch_size, progress=False)

    train_rate = _median_rate(our_epoch, args.images, args.repeats)
    inference_model = fuse_batch_norm(ours)
    rates = {
        "train_img_s": train_rate,
        "reference_img_s": _median_rate(reference_epoch, args.images, args.repeats),
        "infer_img_s": _median_rate(our_infer, args.images, args.repeats),
        "reference_infer_img_s": _median_rate(reference_infer, args.images, args.repeats),
    }
    print(
        f"\nthroughput, 128x128, batch {args.batch_size}, {threads} threads, precision "
        f"{params.precision}, norm {model_params.norm}, loss {params.loss}, augment {params.augment}"
    )
    for name, rate in rates.items():
        gflop = FORWARD_GFLOP * (3 if "infer" not in name else 1)
        frac = f"  {rate * gflop / args.peak_gflops:5.1%} of {args.peak_gflops:.0f} GFLOP/s" if args.peak_gflops else ""
        print(f"  {name:<24} {rate:8.1f} img/s  ({rate * gflop:6.1f} GFLOP/s){frac}")
    print(f"  training:  ours / reference = {rates['train_img_s'] / rates['reference_img_s']:.2f}x")
    print(f"  inference: ours / reference = {rates['infer_img_s'] / rates['reference_infer_img_s']:.2f}x")
    print(json.dumps({**{k: round(v, 2) for k, v in rates.items()},
                      "keras_img_s": None, "keras_predict_img_s": None}))


if __name__ == "__main__":
    main()
