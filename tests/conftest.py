"""Shared fixtures: tiny DSB-layout datasets written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nuclei_unet.model.checkpoint import save_model
from nuclei_unet.model.unet import UNet

REPO = Path(__file__).resolve().parents[1]


def write_sample(root: Path, sample_id: str, image: np.ndarray, masks: list[np.ndarray]) -> None:
    """Write one ``<id>/images/<id>.png`` + ``<id>/masks/<k>.png`` sample."""
    (root / sample_id / "images").mkdir(parents=True)
    (root / sample_id / "masks").mkdir()
    Image.fromarray(image).save(root / sample_id / "images" / f"{sample_id}.png")
    for k, mask in enumerate(masks):
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / sample_id / "masks" / f"{k}.png")


def disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """A boolean disc of ``radius`` at ``centre`` (row, col)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


class Threshold(torch.nn.Module):
    """A 'network' whose foreground logit is +8 where the image is bright: its objects are
    the image's own blobs at any scale."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(1, keepdim=True) - 0.5) * 16


def squares(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(size, size, 3) uint8`` with one bright 6x6 square on dark noise, and their
    masks ``(size, size)`` 0/1: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, size=(n, size, size, 3)).astype(np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        y, x = rng.integers(0, size - 6, size=2)
        masks[i, y : y + 6, x : x + 6] = 1
        images[i, y : y + 6, x : x + 6] = 220
    return images, masks


@pytest.fixture
def tiny_dsb(tmp_path: Path) -> Path:
    """Three RGBA images of different sizes, each with two or three disc nuclei."""
    root = tmp_path / "raw"
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(64, 64), (48, 80), (96, 64)]):
        masks = [disc(shape, (shape[0] * f, shape[1] * g), 7) for f, g in ((0.3, 0.3), (0.7, 0.6), (0.3, 0.75))]
        image = np.zeros((*shape, 4), dtype=np.uint8)
        image[..., 3] = 255
        image[..., :3] = rng.integers(0, 40, size=(*shape, 3))
        image[np.any(masks, axis=0), :3] = 200
        write_sample(root, f"img{i}", image, masks[: 2 + i % 2])
    return root


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A model file of an untrained two-level U-Net (4, 8 channels) for 32-px inputs."""
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(UNet((4, 8), (0.0, 0.0)), path, {"input_size": 32})
    return path
