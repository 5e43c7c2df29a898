"""Where a training step's time goes, and what ``torch.compile`` would change.

On synthetic native images at params.yaml's model and train sections (the default: random
128-px crops with augmentation, edge targets, batch norm, BCE-Dice), prints

* the batch preparation's milliseconds per batch (crop, zoom, augment: the DataLoader's work,
  in this process as the default ``train.workers: 0`` does it) against the step's own;
* the step's CPU time by operator family (torch.profiler: convolutions forward and backward,
  batch norm, dropout, ReLU, loss, optimiser, the rest);
* eager against ``torch.compile`` (model and loss), the same batches interleaved, medians;
* the whole loop (batches drawn by the DataLoader, then stepped) with ``train.workers`` 0
  against 1, the worker preparing batches while this process steps;
* the machine's fp32 matmul rate (a 2048^3 sgemm), and the share of it the step reaches.

    python benchmarks/profile_step.py [--params params.yaml] [--precision fp32] [--batches 12]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
from timing import FORWARD_GFLOP, native_samples  # beside this file
from torch.profiler import ProfilerActivity, profile

from nuclei_unet.config.load import load_section
from nuclei_unet.model.unet import memory_format_for
from nuclei_unet.runtime import resolve_precision, set_threads
from nuclei_unet.train.build import make_crop_data, make_model, make_optimizer
from nuclei_unet.train.distributed import Dist
from nuclei_unet.train.losses import loss_for
from nuclei_unet.train.steps import train_step

# operator name fragments -> family (first match wins)
FAMILIES = [
    ("convolution_backward", "conv backward"),
    ("convolution", "conv forward"),
    ("batch_norm", "batch norm"),
    ("bernoulli", "dropout mask"),
    ("randint", "dropout mask"),
    ("random_", "dropout mask"),
    ("threshold", "ReLU"),
    ("relu", "ReLU"),
    ("clamp_min", "ReLU"),
    ("binary_cross_entropy", "loss"),
    ("sigmoid", "loss"),
    ("Adam", "optimizer"),
    ("_foreach", "optimizer"),
]


def family(name: str) -> str:
    """The family of a profiler operator name (:data:`FAMILIES`)."""
    for fragment, label in FAMILIES:
        if fragment in name:
            return label
    return "elementwise, copies, pooling, rest"


def matmul_gflops(repeats: int = 5, n: int = 2048) -> float:
    """The fp32 sgemm rate this process reaches (median of ``repeats``), in GFLOP/s."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--precision", default=None, help="override train.precision")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per variant")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile run")
    parser.add_argument("--no-workers", action="store_true", help="skip the DataLoader worker run")
    args = parser.parse_args()
    threads = set_threads(0)
    model_params = load_section(args.params, "model")
    params = load_section(args.params, "train")
    dtype = resolve_precision(args.precision or params.precision)
    rng = np.random.default_rng(0)
    n_images = -(-(args.batches + 2) * params.batch_size // params.crops_per_image)
    samples = native_samples(rng, n_images)
    loader, _ = make_crop_data(samples, samples[:1], params, 0, Dist())
    start = time.perf_counter()
    batches = list(loader)
    data_ms = (time.perf_counter() - start) / len(batches) * 1000

    def build(compiled: bool):
        torch.manual_seed(0)
        model = make_model(model_params, params.loss, params.edge)
        layout = memory_format_for(model)  # as the train stage lays it out
        model = model.to(memory_format=layout)
        model.train()
        optimizer = make_optimizer(model, params)
        loss_fn = loss_for(params.loss, params.edge)
        if compiled:
            model, loss_fn = torch.compile(model), torch.compile(loss_fn)

        def step(batch) -> None:
            x = batch[0].contiguous(memory_format=layout)
            weights = batch[2] if len(batch) > 2 else None
            train_step(model, optimizer, (x, batch[1], weights), dtype, loss_fn)

        start = time.perf_counter()
        step(batches[0])
        step(batches[1])
        return step, time.perf_counter() - start

    variants = {"eager": build(False)}
    if not args.no_compile:
        variants["compiled"] = build(True)
    times = defaultdict(list)
    for batch in batches[2:]:  # interleaved, so drifts of a shared machine hit both alike
        for name, (step, _) in variants.items():
            start = time.perf_counter()
            step(batch)
            times[name].append(time.perf_counter() - start)
    step_ms = {name: statistics.median(t) * 1000 for name, t in times.items()}

    loop_ms = {}
    if not args.no_workers:
        step = variants["eager"][0]
        for workers in (0, 1, 0, 1):  # twice each, alternating; the faster of each kept
            wloader, _ = make_crop_data(
                samples, samples[:1], params.model_copy(update={"workers": workers}), 0, Dist()
            )
            start = time.perf_counter()
            for batch in wloader:
                step(batch)
            ms = (time.perf_counter() - start) / len(wloader) * 1000
            loop_ms[workers] = min(ms, loop_ms.get(workers, ms))

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches[2:5]:
            variants["eager"][0](batch)
    shares: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        shares[family(event.key)] += event.self_cpu_time_total
    total = sum(shares.values())
    peak = matmul_gflops()

    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    print(f"\ntraining step, batch {params.batch_size}, {threads} threads, {precision}, "
          f"input {params.input}, edge {params.edge}, norm {model_params.norm}, loss {params.loss}")
    print(f"  batch preparation (crop, zoom, augment): {data_ms:6.1f} ms/batch "
          f"({data_ms / (data_ms + step_ms['eager']):.0%} of data + step)")
    for name, ms in step_ms.items():
        gflops = 3 * FORWARD_GFLOP * params.batch_size / (ms / 1000)
        print(f"  step, {name:<8} {ms:7.1f} ms/batch  {gflops:6.1f} GFLOP/s  "
              f"{gflops / peak:5.1%} of fp32 sgemm {peak:.0f} GFLOP/s"
              + (f"  (compile + 2 steps {variants[name][1]:.1f} s)" if name == "compiled" else ""))
    if "compiled" in step_ms:
        print(f"  eager / compiled: {step_ms['eager'] / step_ms['compiled']:.2f}x")
    for workers, ms in loop_ms.items():
        print(f"  loop (DataLoader + eager step), workers {workers}: {ms:7.1f} ms/batch")
    print("  eager step's CPU time by family (torch.profiler, 3 steps):")
    for name, us in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<36} {us / total:6.1%}")


if __name__ == "__main__":
    main()
