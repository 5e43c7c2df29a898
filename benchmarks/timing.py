"""What the benchmarks share: one way to time (a warm-up call, then the median of timed
repetitions), the seed model's FLOP count, and synthetic native-set images."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from nuclei_unet.data.native import NativeSample

# forward FLOPs of the seed model at 128x128 (2 per multiply-add); a training step about 3x
FORWARD_GFLOP = 1.52


def median_rate(fn: Callable[[], None], n_images: int, repeats: int) -> float:
    """Images per second of ``fn`` (which handles ``n_images``): one untimed warm-up call
    (allocators, oneDNN primitive caches, graph tracing), then the median of ``repeats``."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


def native_samples(rng: np.random.Generator, n: int) -> list[NativeSample]:
    """``n`` random 256x256 native-set images with random 0..4 targets."""
    return [
        NativeSample(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8),
                     rng.integers(0, 5, (256, 256), dtype=np.uint8), 1.0, False, 20.0)
        for _ in range(n)
    ]
