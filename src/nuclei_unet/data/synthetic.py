"""A deterministic synthetic nuclei dataset in the DSB2018 layout (the offline default).

Three looks, as in the real data: fluorescence (bright nuclei on a dark field, gray), brightfield
(dark nuclei on a light field) and H&E-like histology (dark purple nuclei on pink tissue).
Nuclei are irregular ellipses, partly in touching clusters, never overlapping; images get uneven
illumination, texture, blur and noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from nuclei_unet.config.schema import SyntheticParams
from nuclei_unet.io.files import atomic_path
from nuclei_unet.io.images import write_png
from nuclei_unet.parallel import parallel_map

log = logging.getLogger(__name__)

MODALITIES = ("fluorescence", "brightfield", "histology")
MODALITY_WEIGHTS = (0.6, 0.2, 0.2)
# (H, W) sizes found in stage1_train, with rough frequencies
SIZES = ((256, 256), (256, 320), (520, 696), (360, 360))
SIZE_WEIGHTS = (0.5, 0.2, 0.15, 0.15)


@dataclasses.dataclass(frozen=True)
class SyntheticImage:
    """One generated image: RGBA ``(H, W, 4) uint8`` and instance labels ``(H, W) int32``."""

    id: str
    modality: str
    image: np.ndarray
    labels: np.ndarray


def synthetic_id(seed: int, index: int) -> str:
    """A 64-hex-digit id like the DSB ones; sorting ids shuffles the images like the real set."""
    return hashlib.sha256(f"nuclei-unet:{seed}:{index}".encode()).hexdigest()


def _nucleus(rng: np.random.Generator, radius: float) -> tuple[np.ndarray, int, int]:
    """A boolean footprint ``(h, w)`` of one irregular elliptic nucleus, and its centre offset."""
    a = radius * rng.uniform(0.75, 1.3)
    b = a * rng.uniform(0.55, 1.0)
    theta = rng.uniform(0, np.pi)
    # low-order harmonics make the outline irregular without self-intersections
    amps = rng.normal(0.0, 0.06, size=3)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    half = int(np.ceil(a * 1.3)) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    rho = np.hypot(u / a, v / b)
    phi = np.arctan2(v, u)
    edge = 1.0 + sum(amp * np.cos((k + 2) * phi + p) for k, (amp, p) in enumerate(zip(amps, phases)))
    return rho <= edge, half, half


def make_labels(
    rng: np.random.Generator, shape: tuple[int, int], n_nuclei: int, radius: float
) -> np.ndarray:
    """Place up to ``n_nuclei`` non-overlapping nuclei; returns ``(H, W) int32`` labels 0..n."""
    h, w = shape
    labels = np.zeros(shape, dtype=np.int32)
    n_clusters = int(rng.integers(1, max(2, n_nuclei // 6) + 1))
    cluster_centres = rng.uniform((0, 0), (h, w), size=(n_clusters, 2))
    placed = 0
    for _ in range(4 * n_nuclei):
        if placed == n_nuclei:
            break
        footprint, cy, cx = _nucleus(rng, radius * rng.uniform(0.7, 1.3))
        if rng.random() < 0.5:
            # touching clusters: nuclei pack around a cluster centre
            centre = cluster_centres[rng.integers(n_clusters)] + rng.normal(0, 1.8 * radius, size=2)
        else:
            centre = rng.uniform((0, 0), (h, w))
        y0, x0 = int(centre[0]) - cy, int(centre[1]) - cx
        fy0, fx0 = max(0, -y0), max(0, -x0)
        y0c, x0c = max(0, y0), max(0, x0)
        y1c = min(h, y0 + footprint.shape[0])
        x1c = min(w, x0 + footprint.shape[1])
        if y1c <= y0c or x1c <= x0c:
            continue
        fp = footprint[fy0 : fy0 + (y1c - y0c), fx0 : fx0 + (x1c - x0c)]
        window = labels[y0c:y1c, x0c:x1c]
        free = fp & (window == 0)
        # accept only small overlaps (those pixels go to the earlier nucleus: touching, not
        # overlapping) and nuclei not mostly cut off by the border
        if free.sum() < max(12, 0.5 * footprint.sum()) or free.sum() < 0.75 * fp.sum():
            continue
        placed += 1
        window[free] = placed
    return labels


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std noise smoothed at scale ``sigma`` (texture, illumination)."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return noise / (noise.std() + 1e-8)


def render(rng: np.random.Generator, labels: np.ndarray, modality: str) -> np.ndarray:
    """Render labels as an RGBA ``(H, W, 4) uint8`` image of the given modality."""
    shape = labels.shape
    h, w = shape
    n = int(labels.max())
    strength = np.concatenate([[0.0], rng.uniform(0.45, 1.0, size=n)])
    density = strength[labels] * (1.0 + 0.25 * _smooth_noise(rng, shape, 1.5))
    density = ndimage.gaussian_filter(density * (labels > 0), rng.uniform(0.6, 1.6))
    density = np.clip(density, 0.0, 1.2)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle)
    illumination = 1.0 + rng.uniform(0.1, 0.5) * gradient + 0.05 * _smooth_noise(rng, shape, 40)
    if modality == "fluorescence":
        background = rng.uniform(0.01, 0.12)
        gray = background + rng.uniform(0.35, 0.9) * density
        rgb = np.repeat((gray * illumination)[:, :, None], 3, axis=2)
    elif modality == "brightfield":
        background = rng.uniform(0.65, 0.9)
        gray = background - rng.uniform(0.25, 0.5) * density
        tint = np.array([1.0, 0.97, rng.uniform(0.9, 1.05)])
        rgb = (gray * illumination)[:, :, None] * tint
    else:
        tissue = np.array([0.92, 0.70, 0.80]) + rng.normal(0, 0.03, size=3)
        stroma = 0.06 * _smooth_noise(rng, shape, 3.0)[:, :, None]
        nucleus = np.array([0.35, 0.20, 0.52]) + rng.normal(0, 0.04, size=3)
        alpha = np.clip(density * rng.uniform(0.7, 0.95), 0, 1)[:, :, None]
        rgb = ((tissue + stroma) * (1 - alpha) + nucleus * alpha) * illumination[:, :, None]
    rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.03), size=rgb.shape)
    rgba = np.empty((h, w, 4), dtype=np.uint8)
    rgba[:, :, :3] = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    rgba[:, :, 3] = 255  # the DSB PNGs are RGBA with opaque alpha
    return rgba


def generate_image(seed: int, index: int, params: SyntheticParams) -> SyntheticImage:
    """Generate image ``index`` of the dataset seeded by ``seed``; same inputs, same output."""
    rng = np.random.default_rng([seed, index])
    modality = MODALITIES[rng.choice(len(MODALITIES), p=MODALITY_WEIGHTS)]
    shape = SIZES[rng.choice(len(SIZES), p=SIZE_WEIGHTS)]
    scale = np.sqrt(shape[0] * shape[1] / (256 * 256))
    n_nuclei = int(rng.integers(params.min_nuclei, params.max_nuclei + 1))
    radius = rng.uniform(5.0, 13.0) * (scale if modality == "histology" else scale**0.5)
    labels = make_labels(rng, shape, n_nuclei, radius)
    # no image without nuclei: make_labels may place fewer than asked in a crowded image
    if labels.max() == 0:
        labels = make_labels(rng, shape, max(1, params.min_nuclei), radius)
    image = render(rng, labels, modality)
    return SyntheticImage(synthetic_id(seed, index), modality, image, labels)


def _write_one(index: int, seed: int, params: SyntheticParams, root: Path) -> str:
    sample = generate_image(seed, index, params)
    folder = root / sample.id
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    write_png(folder / "images" / f"{sample.id}.png", sample.image)
    for k in range(1, int(sample.labels.max()) + 1):
        mask = (sample.labels == k).astype(np.uint8) * 255
        if mask.any():
            write_png(folder / "masks" / f"{k:03d}.png", mask)
    return sample.modality


def write_dataset(out_dir: str | Path, seed: int, params: SyntheticParams, workers: int = 0) -> None:
    """Generate ``params.count`` images into ``out_dir`` (DSB layout), atomically."""
    out_dir = Path(out_dir)
    log.info("generating %d synthetic images (seed %d) into %s", params.count, seed, out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        job = partial(_write_one, seed=seed, params=params, root=tmp)
        modalities = parallel_map(job, list(range(params.count)), workers, "synthetic")
    counts = {m: modalities.count(m) for m in MODALITIES}
    log.info("synthetic dataset written: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
