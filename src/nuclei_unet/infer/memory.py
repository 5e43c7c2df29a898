"""What segmenting an image needs in memory, checked against what the machine has free, so
that an image too large is refused by name instead of the kernel killing the whole run."""

from __future__ import annotations

from pathlib import Path

from nuclei_unet.errors import TooLargeError

# bytes per pixel, measured with benchmarks/predict_memory.py (README "Segment your own
# images"), rounded up: overlap-tiling holds the rescaled image, its mirrored copy and the
# blended maps (about 21); splitting into nuclei holds the maps, the mask and the
# watershed's arrays (about 33)
TILING_BYTES = 24
LABELLING_BYTES = 36

MEMINFO = Path("/proc/meminfo")


def available_bytes(meminfo: Path = MEMINFO) -> int | None:
    """The memory the kernel says a new allocation can get (``MemAvailable``), in bytes;
    None where that cannot be read (not Linux), and then nothing is checked.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix="meminfo") as f:
    ...     _ = f.write("MemTotal: 24683724 kB\\nMemAvailable: 1000 kB\\n"); f.flush()
    ...     available_bytes(Path(f.name))
    1024000
    """
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            number, _, unit = value.strip().partition(" ")
            return int(number) * (1024 if unit == "kB" else 1)
    return None


def require_memory(shape: tuple[int, int], bytes_per_pixel: int, what: str) -> None:
    """Raise TooLargeError when ``what`` (a step on an ``(h, w)`` array, e.g. "overlap-tiling
    at 3.50x") needs more than the available memory, ``bytes_per_pixel`` per pixel."""
    available = available_bytes()
    need = shape[0] * shape[1] * bytes_per_pixel
    if available is not None and need > available:
        raise TooLargeError(
            f"{what} ({shape[0]}x{shape[1]} px) needs about {_size(need)}, and "
            f"{_size(available)} is available: cut the image into parts"
        )


def _size(n: int) -> str:
    """Bytes as a person reads them: ``'2.4 GB'``, ``'310.2 MB'``."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
