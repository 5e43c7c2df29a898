"""The seed notebook's U-Net, in named parts (double conv, down, up, out).

With the default widths ``(16, 32, 64, 128, 256)`` and dropouts ``(0.1, 0.1, 0.2, 0.2, 0.3)`` it
has exactly 1,941,105 parameters, like the Keras model: 3x3 'same' convolutions with ReLU and a
dropout between the two convolutions of each block, 2x2 max pooling, 2x2 stride-2 transposed
convolutions, skip concatenation and a 1x1 output convolution. ``forward`` returns logits;
sigmoid and threshold belong to prediction and metrics.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from nuclei_unet.model.dropout import Dropout

# Keras' he_normal draws from a normal truncated at 2 std, rescaled so the std is sqrt(2/fan_in)
_TRUNC_STD_CORRECTION = 0.87962566103423978


def _he_normal_(weight: torch.Tensor) -> None:
    fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
    std = math.sqrt(2.0 / fan_in) / _TRUNC_STD_CORRECTION
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


NORMS = ("none", "batch", "instance")


def _conv_unit(in_ch: int, out_ch: int, norm: str) -> list[nn.Module]:
    """3x3 'same' conv [-> batch or instance norm] -> ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, padding=1)]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(out_ch))
    elif norm == "instance":
        # nnU-Net's choice: each sample's own statistics, in training and prediction alike
        layers.append(nn.InstanceNorm2d(out_ch, affine=True))
    return layers + [nn.ReLU(inplace=True)]


class DoubleConv(nn.Module):
    """(3x3 conv 'same' [-> BN] -> ReLU) -> dropout -> (3x3 conv 'same' [-> BN] -> ReLU)."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float, norm: str = "none") -> None:
        super().__init__()
        self.block = nn.Sequential(
            *_conv_unit(in_ch, out_ch, norm),
            Dropout(dropout),  # nn.Dropout with a cheaper CPU mask
            *_conv_unit(out_ch, out_ch, norm),
        )
        for module in self.block:
            if isinstance(module, nn.Conv2d):
                _he_normal_(module.weight)  # the seed's kernel_initializer='he_normal'
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_ch, H, W)`` -> ``(N, out_ch, H, W)``."""
        return self.block(x)


class Down(nn.Module):
    """2x2 max pooling, then a double conv."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float, norm: str = "none") -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_ch, out_ch, dropout, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_ch, H, W)`` -> ``(N, out_ch, H/2, W/2)``."""
        return self.conv(self.pool(x))


class Up(nn.Module):
    """2x2 stride-2 transposed conv, concatenation with the skip, then a double conv."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float, norm: str = "none") -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        nn.init.xavier_uniform_(self.up.weight)  # Keras' default glorot_uniform
        nn.init.zeros_(self.up.bias)
        self.conv = DoubleConv(2 * out_ch, out_ch, dropout, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``(N, in_ch, H, W)`` and skip ``(N, out_ch, 2H, 2W)`` -> ``(N, out_ch, 2H, 2W)``."""
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class OutConv(nn.Module):
    """1x1 convolution to one logit channel."""

    def __init__(self, in_ch: int, out_ch: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=1)
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_ch, H, W)`` -> ``(N, out_ch, H, W)`` logits."""
        return self.conv(x)


HEADS = ("sigmoid", "softmax")


class UNet(nn.Module):
    """U-Net over ``len(widths)`` levels; input sides must be multiples of ``2**(levels-1)``.

    ``norm="batch"`` adds batch norm after every 3x3 conv (the seed has none), ``"instance"``
    instance norm (each sample normalised by its own statistics, nnU-Net's choice). ``head``
    says what the output channels mean: ``sigmoid``: channel 0 is the foreground logit and
    channel 1, when there is one, the edge class's; ``softmax``: two-class logits for a softmax
    loss (see :func:`foreground_logit`).
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        dropouts: Sequence[float] = (0.1, 0.1, 0.2, 0.2, 0.3),
        in_channels: int = 3,
        norm: str = "none",
        out_channels: int = 1,
        head: str = "sigmoid",
    ) -> None:
        super().__init__()
        if len(widths) != len(dropouts) or len(widths) < 2:
            raise ValueError("widths and dropouts need the same length, at least 2")
        if norm not in NORMS:
            raise ValueError(f"norm {norm!r} is not one of {NORMS}")
        if head not in HEADS or (head == "softmax" and out_channels != 2):
            raise ValueError(f"head {head!r} with {out_channels} output channels")
        self.head = head
        self.widths = tuple(int(w) for w in widths)
        self.dropouts = tuple(float(d) for d in dropouts)
        self.norm = norm
        self.out_channels = out_channels
        self.inc = DoubleConv(in_channels, widths[0], dropouts[0], norm)
        self.downs = nn.ModuleList(
            Down(widths[i - 1], widths[i], dropouts[i], norm) for i in range(1, len(widths))
        )
        # the decoder mirrors the encoder, reusing each level's dropout as the seed did
        self.ups = nn.ModuleList(
            Up(widths[i], widths[i - 1], dropouts[i - 1], norm)
            for i in range(len(widths) - 1, 0, -1)
        )
        self.outc = OutConv(widths[0], out_channels)

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` float in [0, 1] -> ``(N, out_channels, H, W)`` logits."""
        if x.shape[-1] % self.divisor or x.shape[-2] % self.divisor:
            raise ValueError(
                f"input {tuple(x.shape[-2:])} is not a multiple of {self.divisor} on each side"
            )
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


def foreground_logit(logits: torch.Tensor, head: str = "sigmoid") -> torch.Tensor:
    """``(N, C, H, W)`` logits of a ``head`` -> ``(N, 1, H, W)`` foreground logit.

    With two softmax classes, the foreground probability is ``sigmoid(z1 - z0)``, so everything
    downstream (sigmoid, ``> 0`` threshold) treats both heads alike.
    """
    if head == "softmax":
        return logits[:, 1:2] - logits[:, 0:1]
    return logits[:, 0:1]


def head_of(model: nn.Module) -> str:
    """The ``head`` of a :class:`UNet`, also when DistributedDataParallel wraps it; a module
    without one (a test double, a user's network) is taken as one sigmoid logit."""
    return getattr(getattr(model, "module", model), "head", "sigmoid")


def memory_format_for(model: nn.Module) -> torch.memory_format:
    """The layout a model's weights and inputs are kept in, on any device: channels_last,
    where the CPU convolutions and batch norm are fastest, except for instance norm, whose
    channels_last CPU kernels cost more than that layout gains (a bf16 training step about
    1.6x batch norm's, against about 1.25x contiguous: ``benchmarks/norm_speed.py``). A
    wrapped model (DistributedDataParallel) is looked through."""
    norm = getattr(getattr(model, "module", model), "norm", None)
    return torch.contiguous_format if norm == "instance" else torch.channels_last


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fuse_batch_norm(model: UNet) -> UNet:
    """An eval-mode copy of ``model`` for inference, each batch norm folded into its conv.

    Equal to ``model.eval()`` up to float rounding and about 15 % faster on a CPU; a model
    without batch norm comes back as a plain eval copy. The copy cannot be trained further.
    """
    fused = copy.deepcopy(model).eval()
    for block in fused.modules():
        if not isinstance(block, DoubleConv):
            continue
        layers = list(block.block)
        for i, (layer, after) in enumerate(zip(layers, layers[1:])):
            if isinstance(layer, nn.Conv2d) and isinstance(after, nn.BatchNorm2d):
                layers[i], layers[i + 1] = fuse_conv_bn_eval(layer, after), nn.Identity()
        block.block = nn.Sequential(*layers)
    return fused
