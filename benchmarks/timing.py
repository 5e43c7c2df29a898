"""One way to time the benchmarks: a warm-up call, then the median of timed repetitions."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
