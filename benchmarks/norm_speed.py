"""What a norm costs: a training step and an inference batch of the default U-Net with batch
norm against instance norm, each norm in the memory layout the train and predict stages give
it (``model.unet.memory_format_for``), and instance norm in channels_last too (the layout it
had before, to show why it no longer gets it). One process, the variants interleaved batch by
batch so a shared machine's drifts hit all alike; medians, and each as a ratio to batch norm.
The last line is one JSON object.

    python benchmarks/norm_speed.py [--params params.yaml] [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

import torch

from nuclei_unet.config.load import load_section
from nuclei_unet.model.unet import fuse_batch_norm, memory_format_for
from nuclei_unet.runtime import autocast, resolve_precision, set_threads
from nuclei_unet.train.build import make_model, make_optimizer
from nuclei_unet.train.losses import loss_for
from nuclei_unet.train.steps import train_step

VARIANTS = {  # name: (norm, layout; None: the stages' own)
    "batch": ("batch", None),
    "instance": ("instance", None),
    "instance_channels_last": ("instance", torch.channels_last),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="model and train sections")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant")
    args = parser.parse_args()
    model_params = load_section(args.params, "model")
    params = load_section(args.params, "train")
    set_threads(params.threads)
    dtype = resolve_precision(params.precision)
    loss_fn = loss_for(params.loss, params.edge)
    n, size, maps = params.batch_size, params.crop_size, 2 if params.edge else 1
    torch.manual_seed(0)
    x = torch.rand(n, 3, size, size)
    y = (torch.rand(n, maps, size, size) > 0.7).float()
    batch_for_inference = torch.rand(2 * n, 3, size, size)
    runs = {}
    for name, (norm, layout) in VARIANTS.items():
        model = make_model(model_params.model_copy(update={"norm": norm}), params.loss, params.edge)
        layout = layout or memory_format_for(model)
        model = model.to(memory_format=layout).train()
        runs[name] = (model, make_optimizer(model, params), layout)
    train_s, infer_s = defaultdict(list), defaultdict(list)
    for step in range(args.steps + 2):  # the first two warm the caches up and are not kept
        for name, (model, optimizer, layout) in runs.items():
            xb = x.contiguous(memory_format=layout)
            start = time.perf_counter()
            train_step(model, optimizer, (xb, y, None), dtype, loss_fn)
            elapsed = time.perf_counter() - start
            inference = fuse_batch_norm(model).to(memory_format=layout)
            xi = batch_for_inference.contiguous(memory_format=layout)
            start = time.perf_counter()
            with torch.inference_mode(), autocast(dtype, xi.device):
                inference(xi)
            if step >= 2:
                train_s[name].append(elapsed)
                infer_s[name].append(time.perf_counter() - start)
    result = {}
    for name in runs:
        result[name] = {
            "train_step_s": round(statistics.median(train_s[name]), 4),
            "infer_batch_s": round(statistics.median(infer_s[name]), 4),
        }
    for name, figures in result.items():
        figures["train_ratio"] = round(figures["train_step_s"] / result["batch"]["train_step_s"], 2)
        figures["infer_ratio"] = round(figures["infer_batch_s"] / result["batch"]["infer_batch_s"], 2)
        print(
            f"{name:<24} train step {figures['train_step_s']:.3f} s ({figures['train_ratio']:.2f}x), "
            f"inference of {2 * n} {figures['infer_batch_s']:.3f} s ({figures['infer_ratio']:.2f}x)"
        )
    result["precision"] = str(dtype).removeprefix("torch.")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
