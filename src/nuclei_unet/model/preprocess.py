"""The network's input convention: uint8 RGB images to float tensors in [0, 1].

The one place this conversion lives; training, inference and the exported model file all use
it, and the model file records it (see :data:`PREPROCESSING`).
"""

from __future__ import annotations

import numpy as np
import torch

# stored in every model file, so a user (or another tool) knows what the weights expect
PREPROCESSING = {"input": "RGB uint8, (H, W, 3)", "divide_by": 255.0}


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(N, H, W, 3) uint8`` (numpy or tensor) -> ``(N, 3, H, W) float32`` in [0, 1], stored
    channels_last (the layout the CPU convolutions are fastest on)."""
    x = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    x = x.permute(0, 3, 1, 2).float().div_(PREPROCESSING["divide_by"])
    return x.contiguous(memory_format=torch.channels_last)
