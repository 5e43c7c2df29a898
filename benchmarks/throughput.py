"""Training and inference throughput of the U-Net: ours, the eager reference, the seed's Keras.

Prints images/s of (a) our full training loop (the train stage's own train_epoch: shuffling,
augmentation, batching and logging included) at the model and train params of params.yaml,
(b) the same loop at the seed notebook's recipe (no batch norm, BCE, no augmentation: the
work Keras does), (c) the reference training step (the seed's model, with our dropout, eager, fp32,
NCHW, plain loop), (d) the seed notebook's own Keras model and ``model.fit`` when TensorFlow is installed
(``pip install 'nuclei-unet[bench]'``), and the same for inference (ours: predict_probs on the
model as the predict stage loads it, batch norms folded; Keras: ``model.predict``); each the
median of several timed repetitions in this one process, on the same synthetic batches. The
last line is one JSON object.

    python benchmarks/throughput.py [--params params.yaml] [--images 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json

import numpy as np
import torch
from timing import FORWARD_GFLOP, median_rate, native_samples  # beside this file
from torch import nn

from nuclei_unet.config.load import load_section
from nuclei_unet.config.schema import AugmentParams
from nuclei_unet.infer.probs import predict_probs
from nuclei_unet.model.unet import UNet, fuse_batch_norm, memory_format_for
from nuclei_unet.runtime import cpu_has_bf16, resolve_precision, set_threads
from nuclei_unet.train.build import (
    make_crop_data,
    make_loader,
    make_model,
    make_optimizer,
    to_tensors,
)
from nuclei_unet.train.distributed import Dist
from nuclei_unet.train.losses import LOSSES, loss_for
from nuclei_unet.train.steps import train_epoch


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
    ours = make_model(model_params, params.loss, params.edge)
    ours = ours.to(memory_format=memory_format_for(ours))  # as the train stage lays it out
    x, y = to_tensors(images, masks)
    optimizer = make_optimizer(ours, params)
    if params.input == "crops":  # the default: crops of 256-px native images, edge targets
        loader, _ = make_crop_data(
            native_samples(rng, args.images // params.crops_per_image),
            native_samples(rng, 1), params, 0, Dist(),
        )
    else:
        loader = make_loader(x, y, None, params, 0, Dist())

    def our_epoch() -> None:
        train_epoch(ours, optimizer, loader, dtype, loss_for(params.loss, params.edge), Dist(), "bench")

    # the seed's recipe through the same loop: the work Keras' fit does
    seed_params = params.model_copy(update={
        "loss": "bce", "augment": AugmentParams(flip=False, rot90=False, elastic_sigma=0.0, hed=0.0),
    })
    torch.manual_seed(0)
    seed_net = make_model(model_params.model_copy(update={"norm": "none"}), "bce").to(
        memory_format=torch.channels_last
    )
    seed_opt = make_optimizer(seed_net, seed_params)
    seed_loader = make_loader(x, y, None, seed_params, 0, Dist())

    def seed_epoch() -> None:
        train_epoch(seed_net, seed_opt, seed_loader, dtype, LOSSES["bce"], Dist(), "bench")

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

    predict_dtype = resolve_precision(load_section(args.params, "predict").precision)

    def our_infer() -> None:  # as the predict stage runs it: its precision, no TTA
        predict_probs(inference_model, images, args.batch_size, dtype=predict_dtype, progress=False)

    train_rate = median_rate(our_epoch, args.images, args.repeats)
    inference_model = fuse_batch_norm(ours)
    rates = {
        "train_img_s": train_rate,
        "seed_recipe_img_s": median_rate(seed_epoch, args.images, args.repeats),
        "reference_img_s": median_rate(reference_epoch, args.images, args.repeats),
        "infer_img_s": median_rate(our_infer, args.images, args.repeats),
        "reference_infer_img_s": median_rate(reference_infer, args.images, args.repeats),
    }
    keras, reason = _keras(images, masks, args, threads)
    rates.update({k: v for k, v in keras.items()})
    print(
        f"\nthroughput on {_cpu()}, 128x128, batch {args.batch_size}, {threads} threads, "
        f"precision {params.precision} (train {_name(dtype)}, predict {_name(predict_dtype)}), "
        f"norm {model_params.norm}, loss {params.loss}, augment {params.augment}"
    )
    for name, rate in rates.items():
        gflop = FORWARD_GFLOP * (3 if "infer" not in name and "predict" not in name else 1)
        frac = f"  {rate * gflop / args.peak_gflops:5.1%} of {args.peak_gflops:.0f} GFLOP/s" if args.peak_gflops else ""
        print(f"  {name:<24} {rate:8.1f} img/s  ({rate * gflop:6.1f} GFLOP/s){frac}")
    print(f"  training:  ours / reference = {rates['train_img_s'] / rates['reference_img_s']:.2f}x")
    print(f"  inference: ours / reference = {rates['infer_img_s'] / rates['reference_infer_img_s']:.2f}x")
    if keras:
        print(f"  training:  ours / Keras fit = {rates['train_img_s'] / rates['keras_img_s']:.2f}x "
              f"(seed recipe: {rates['seed_recipe_img_s'] / rates['keras_img_s']:.2f}x)")
        print(f"  inference: ours / Keras predict = "
              f"{rates['infer_img_s'] / rates['keras_predict_img_s']:.2f}x")
    else:
        print(f"  Keras: not timed ({reason})")
    out = {k: round(v, 2) for k, v in rates.items()}
    out.setdefault("keras_img_s", None)
    out.setdefault("keras_predict_img_s", None)
    print(json.dumps({**out, "keras_reason": reason, "cpu": _cpu(),
                      "train_precision": _name(dtype), "predict_precision": _name(predict_dtype)}))


def _name(dtype: torch.dtype) -> str:
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def _cpu() -> str:
    """The CPU's model name and whether it has native bf16 (AVX512_BF16/AMX)."""
    name = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({'native bf16' if cpu_has_bf16() else 'no native bf16'})"


def _keras(images, masks, args, threads) -> tuple[dict[str, float], str | None]:
    """The seed's Keras rates, or none and the one-line reason."""
    if importlib.util.find_spec("tensorflow") is None:
        return {}, "TensorFlow is not installed (pip install 'nuclei-unet[bench]')"
    from keras_seed import keras_rates  # beside this file; imports TensorFlow

    return keras_rates(images, masks, args.batch_size, args.repeats, threads), None


if __name__ == "__main__":
    main()
