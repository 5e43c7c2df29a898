"""Seeding, threads and numeric precision, shared by training and prediction."""

from __future__ import annotations

import contextlib
import logging
import random
from pathlib import Path

import numpy as np
import torch

from nuclei_unet.errors import NucleiError
from nuclei_unet.parallel import resolve_workers

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch for real (the seed notebook's ``np.random.seed = seed``
    assigned to the function instead of calling it, and so seeded nothing)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads (0 = all cores); returns the number set."""
    n = resolve_workers(threads)
    torch.set_num_threads(n)
    return n


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU has native bf16 arithmetic (AVX512_BF16 or AMX), read from cpuinfo."""
    path = Path(cpuinfo)
    if not path.is_file():
        return False
    flags = path.read_text(encoding="utf-8", errors="replace")
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(
    precision: str, device: torch.device | str = "cpu", cpuinfo: str | Path = "/proc/cpuinfo"
) -> torch.dtype:
    """``fp32`` -> float32, ``bf16`` -> bfloat16, ``auto`` -> bf16 on CUDA or where the CPU
    has native bf16 (emulated bf16 on an AVX2 CPU is many times slower than fp32)."""
    if precision == "auto":
        native = torch.device(device).type == "cuda" or cpu_has_bf16(cpuinfo)
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(
    dtype: torch.dtype, device: torch.device | str = "cpu"
) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise NucleiError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return torch.device(device)
