"""On-the-fly augmentation, identical for the image, its mask and its weight map.

Geometric: flips and 90-degree rotations (exact), then one resampling that combines a small
affine change (rotation, scale) with the paper's elastic deformation: random displacements on a
coarse 3x3 grid, smoothly (bicubic) interpolated to every pixel. Photometric (image only): a
camera's exposure (gain and background offset, recorded in 8 bits), brightness, contrast,
gamma, and for stained (non-gray) images another lab's staining (more or less haematoxylin,
eosin and DAB, :func:`restained`) and a per-channel colour gain.
Every transform is seeded per sample and epoch, so runs are reproducible with any number of
DataLoader workers; with everything switched off the sample is returned unchanged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import hed_from_rgb, rgb_from_hed
from torch.utils.data import Dataset

from nuclei_unet.config.schema import AugmentParams

# elastic sigma is given for a 256-px image and scaled to the training size
REFERENCE_SIZE = 256

# Ruifrok and Johnston's stain vectors, as scikit-image's rgb2hed / hed2rgb use them: optical
# density (3,) = stain amounts (haematoxylin, eosin, DAB) @ RGB_FROM_HED
RGB_FROM_HED = torch.from_numpy(rgb_from_hed).float()
HED_FROM_RGB = torch.from_numpy(hed_from_rgb).float()


def _uniform(spread: float, generator: torch.Generator) -> float:
    """A draw from U(-spread, spread); 0 without drawing when spread is 0."""
    if spread == 0:
        return 0.0
    return float(torch.empty(1).uniform_(-spread, spread, generator=generator))


@functools.lru_cache(maxsize=8)
def _bicubic_basis(h: int, w: int) -> torch.Tensor:
    """``(9, h, w)``: each of the 3x3 coarse grid's points bicubically upsampled to (h, w), so
    a displacement field is one weighted sum of them (the same numbers as upsampling the
    coarse grid itself, which took 2 ms per sample)."""
    eye = torch.eye(9).reshape(9, 1, 3, 3)
    return F.interpolate(eye, size=(h, w), mode="bicubic", align_corners=True)[:, 0]


@functools.lru_cache(maxsize=8)
def _identity_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The identity sampling grid's y and x, ``(h, w)`` each, in [-1, 1]."""
    return torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")


def sampling_grid(
    size: tuple[int, int], elastic_sigma: float, rotate_deg: float, scale: float,
    generator: torch.Generator,
) -> torch.Tensor | None:
    """A ``(1, H, W, 2)`` grid for ``grid_sample`` (align_corners=True): affine + elastic
    displacement in pixels; ``None`` when both are off."""
    h, w = size
    if elastic_sigma == 0 and rotate_deg == 0 and scale == 0:
        return None
    angle = math.radians(_uniform(rotate_deg, generator))
    zoom = 1.0 + _uniform(scale, generator)
    gy, gx = _identity_grid(h, w)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    sx = cos * gx - sin * gy
    sy = sin * gx + cos * gy
    if elastic_sigma > 0:
        coarse = torch.randn(2, 9, generator=generator) * elastic_sigma
        disp = torch.einsum("ck,khw->chw", coarse, _bicubic_basis(h, w))
        # pixels -> normalised units (align_corners=True: 2 / (n - 1) per pixel)
        sx = sx + disp[0] * 2.0 / max(w - 1, 1)
        sy = sy + disp[1] * 2.0 / max(h - 1, 1)
    return torch.stack([sx, sy], dim=-1)[None]


def warp(x: torch.Tensor, grid: torch.Tensor | None) -> torch.Tensor:
    """Resample ``(C, H, W)`` float at ``grid`` (bilinear, mirrored borders)."""
    if grid is None:
        return x
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="reflection", align_corners=True)[0]


def augment(
    image: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None, params: AugmentParams,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Augment ``image (3, H, W)`` in [0, 1], ``mask (C, H, W)`` 0/1 and ``weight (1, H, W)``."""
    # one tensor for every channel: one flip, one rotation, one resampling (a resampling per
    # part cost 6x as much: each part was a strided view)
    parts = [image, mask] + ([weight] if weight is not None else [])
    stack = torch.cat(parts)
    if params.flip:
        if torch.rand(1, generator=generator) < 0.5:
            stack = stack.flip(-1)
        if torch.rand(1, generator=generator) < 0.5:
            stack = stack.flip(-2)
    if params.rot90:
        k = int(torch.randint(0, 4, (1,), generator=generator))
        stack = stack.rot90(k, dims=(-2, -1))
    size = stack.shape[-2:]
    sigma = params.elastic_sigma * size[0] / REFERENCE_SIZE
    grid = sampling_grid(tuple(size), sigma, params.rotate_deg, params.scale, generator)
    stack = warp(stack.contiguous(), grid)
    image, mask, rest = stack.split([len(image), len(mask), len(stack) - len(image) - len(mask)])
    mask = (mask > 0.5).float()
    image = photometric(image, params, generator)
    return image, mask, rest if weight is not None else None


def _chance(p: float, generator: torch.Generator) -> bool:
    """True with probability ``p``; draws nothing when ``p`` is 0 (so the draws of a run without
    this transform are unchanged)."""
    return p > 0 and bool(torch.rand(1, generator=generator) < p)


def stain(image: torch.Tensor, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Channel permutation, gray (channel mean) and inversion, each with its probability, so
    one stain's images also look like the others' (fluorescence is a dark-background gray
    image; stained tissue and brightfield are colour or bright): ``(3, H, W)`` in [0, 1]."""
    if _chance(params.channel_shuffle, generator):
        image = image[torch.randperm(3, generator=generator)]
    if _chance(params.gray, generator):
        image = image.mean(dim=0, keepdim=True).expand(3, -1, -1).clone()
    if _chance(params.invert, generator):
        image = 1.0 - image
    return image


def optical_density(image: torch.Tensor) -> torch.Tensor:
    """``image (3, ...)`` in [0, 1], transmitted light of 8-bit levels -> optical density
    ``-log((255 x + 1) / 256)``: one level added, so black has a finite density (as in
    Macenko's stain normalisation); white is 0. :func:`light` inverts it."""
    return -torch.log((image * 255.0 + 1.0) / 256.0)


def light(density: torch.Tensor) -> torch.Tensor:
    """Optical density ``(3, ...)`` -> light in [0, 1] (:func:`optical_density` inverted,
    clipped)."""
    return ((torch.exp(-density) * 256.0 - 1.0) / 255.0).clamp(0.0, 1.0)


def restained(image: torch.Tensor, amounts: Sequence[float]) -> torch.Tensor:
    """``image (3, H, W)`` in [0, 1], a stained slide in transmitted light, as it would look
    with its haematoxylin, eosin and DAB multiplied by ``amounts`` (3,): each pixel's optical
    density split into the three stains (colour deconvolution, as ``skimage.color.rgb2hed``),
    scaled, and turned back into light. White and black stay as they are; amounts of 1 change
    nothing.

    >>> density = 0.5 * RGB_FROM_HED[0]  # haematoxylin alone
    >>> slide = torch.stack([density, torch.zeros(3)], dim=1)[:, None]  # and a white background
    >>> darker = restained(light(slide), [2.0, 1.0, 1.0])
    >>> torch.allclose(darker[:, 0, 0], light(2.0 * density), atol=1e-5)
    True
    >>> darker[:, 0, 1].tolist()
    [1.0, 1.0, 1.0]
    """
    mixing = HED_FROM_RGB @ torch.diag(torch.as_tensor(amounts, dtype=torch.float32)) @ RGB_FROM_HED
    return light(torch.einsum("chw,cd->dhw", optical_density(image), mixing))


def exposure(image: torch.Tensor, gain: float, offset: float = 0.0) -> torch.Tensor:
    """``image (3, H, W)`` in [0, 1] as an 8-bit camera records it at ``gain`` times the
    exposure on a background raised by ``offset`` (of full scale): scaled, shifted, rounded to
    1/255 and clipped, so a dim image also loses grey levels.

    >>> exposure(torch.tensor([0.2, 0.5, 0.9]).reshape(3, 1, 1), 2.0).flatten().mul(255).tolist()
    [102.0, 255.0, 255.0]
    >>> exposure(torch.tensor([0.0, 0.2, 0.9]).reshape(3, 1, 1), 0.5, 0.1).flatten().mul(255).tolist()
    [26.0, 51.0, 140.0]
    """
    return (image * (gain * 255.0) + offset * 255.0).round().clamp(0.0, 255.0) / 255.0


def photometric(image: torch.Tensor, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Stain changes (:func:`stain`), another lab's staining (:func:`restained`) and colour
    gains on colour images, exposure and offset (:func:`exposure`), contrast (scale about the
    mean), brightness (add), gamma; ``(3, H, W)``."""
    image = stain(image, params, generator)
    colour = (params.hed or params.color) and not (
        torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    )
    if params.hed and colour:
        amounts = torch.empty(3).uniform_(-params.hed, params.hed, generator=generator).exp()
        image = restained(image, amounts)
    if params.color and colour:
        gains = 1.0 + torch.empty(3, 1, 1).uniform_(-params.color, params.color, generator=generator)
        image = image * gains
    if params.gain or params.offset:
        gain = math.exp(_uniform(params.gain, generator))
        offset = 0.0
        if params.offset:  # one-sided: a background is raised, never below black
            offset = float(torch.empty(1).uniform_(0.0, params.offset, generator=generator))
        image = exposure(image, gain, offset)
    if params.contrast:
        mean = image.mean()
        image = (image - mean) * (1.0 + _uniform(params.contrast, generator)) + mean
    if params.brightness:
        image = image + _uniform(params.brightness, generator)
    image = image.clamp(0.0, 1.0)
    if params.gamma:
        image = image.pow(math.exp(_uniform(params.gamma, generator)))
    return image


class AugmentedSet(Dataset):
    """Training samples augmented on the fly; ``set_epoch`` changes the draws each epoch."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, params: AugmentParams,
        seed: int,
    ) -> None:
        self.x, self.y, self.w, self.params, self.seed = x, y, w, params, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        # one stream per (seed, epoch, sample): the same draws with any number of workers
        state = np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(state))
        w = self.w[i] if self.w is not None else None
        image, mask, weight = augment(self.x[i], self.y[i], w, self.params, generator)
        return (image, mask) if weight is None else (image, mask, weight)
