"""The network's input convention: uint8 RGB images to float tensors in [0, 1].

The one place this conversion lives; training, inference and the exported model file all use
it, and the model file records it (see :func:`preprocessing`).

Two rules bring an image to the network's range (``model.normalize``):

- ``none`` (the seed): the pixel values as they are, divided by 255. A model trained so learns
  stage1_train's exposures: the same image at half the brightness, or on a raised background,
  is a different input to it.
- ``percentile``: each image first stretched so that its 1st percentile becomes 0 and its
  99.99th 255 (all channels together, so colours keep their balance; values outside are
  clipped), then divided by 255. The same image at another gain or offset gives the same
  input, up to rounding. The high percentile is 99.99, not StarDist's 99.8, so that an image
  whose few nuclei cover less than 0.2 % of it keeps them above its background.
"""

from __future__ import annotations

import numpy as np
import torch

DIVIDE_BY = 255.0
PERCENTILES = (1.0, 99.99)  # low, high: the stretch of the ``percentile`` rule
NORMALIZE_RULES = ("none", "percentile")


def preprocessing(rule: str = "none") -> dict:
    """What a model file records about its input (for a user, or another tool): the dtype
    and layout, the normalisation ``rule`` and the division."""
    spec: dict = {"input": "RGB uint8, (H, W, 3)", "normalize": rule, "divide_by": DIVIDE_BY}
    if rule == "percentile":
        spec["percentiles"] = list(PERCENTILES)
    return spec


def stretch(image: np.ndarray) -> np.ndarray:
    """``(H, W, C) uint8`` -> ``(H, W, C) uint8``: its :data:`PERCENTILES` mapped to 0 and 255,
    linearly, clipped, rounded. A flat image (the two percentiles less than one level apart)
    comes back unchanged."""
    low, high = np.percentile(image, PERCENTILES)
    if high - low < 1.0:
        return image
    out = (image.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def normalize_image(image: np.ndarray, rule: str) -> np.ndarray:
    """``(H, W, 3) uint8`` brought to the network's range by ``rule`` (``none``: as it is)."""
    if rule not in NORMALIZE_RULES:
        raise ValueError(f"unknown normalize rule {rule!r} (expected one of {NORMALIZE_RULES})")
    return stretch(image) if rule == "percentile" else image


def normalize_images(images: np.ndarray, rule: str) -> np.ndarray:
    """``(N, H, W, 3) uint8``, each image by :func:`normalize_image` (a new array for
    ``percentile``; the same one for ``none``)."""
    if rule == "none":
        return images
    return np.stack([normalize_image(image, rule) for image in images])


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(N, H, W, 3) uint8`` (numpy or tensor) -> ``(N, 3, H, W) float32`` in [0, 1], stored
    channels_last (the layout the CPU convolutions are fastest on)."""
    x = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    x = x.permute(0, 3, 1, 2).float().div_(DIVIDE_BY)
    return x.contiguous(memory_format=torch.channels_last)
