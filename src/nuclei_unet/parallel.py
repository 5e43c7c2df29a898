"""One home for running a function over many items in worker processes with a progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

A = TypeVar("A")
R = TypeVar("R")


def resolve_workers(workers: int) -> int:
    """``0`` means all cores available to this process."""
    if workers > 0:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(
    fn: Callable[[A], R], items: Sequence[A], workers: int, desc: str
) -> list[R]:
    """Return ``[fn(x) for x in items]`` in order, using ``workers`` processes (0 = all cores).

    One worker runs in-process (no pickling, easy debugging). Exceptions raised by ``fn`` reach
    the caller unchanged, so a DataError still names its file.
    """
    n = min(resolve_workers(workers), max(1, len(items)))
    if n == 1:
        return [fn(x) for x in tqdm(items, desc=desc, unit="img")]
    # small chunks: item costs vary a lot (a DSB image has 1 to 375 masks), and big chunks
    # left one worker busy alone at the end; the results are small, so traffic stays low
    chunksize = max(1, len(items) // (n * 32))
    with ProcessPoolExecutor(max_workers=n) as pool:
        results = pool.map(fn, items, chunksize=chunksize)
        return list(tqdm(results, total=len(items), desc=desc, unit="img"))
