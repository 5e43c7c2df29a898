"""Nuclei outlined on their image, each in a colour of its own or of its match, for people."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.measure import regionprops
from skimage.segmentation import find_boundaries

# the seed's overlay colours: a matched nucleus, a false positive, a missed (true) nucleus
MATCHED, FALSE_POSITIVE, MISSED = (0, 255, 255), (255, 0, 255), (255, 255, 0)


def label_colour(label: int) -> tuple[int, int, int]:
    """A bright colour for ``label``; neighbouring labels get far-apart hues (golden angle)."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618033988749895) % 1.0, 0.85, 1.0)
    return round(r * 255), round(g * 255), round(b * 255)


def draw_outlines(
    image: np.ndarray, labels: np.ndarray, colours: dict[int, tuple[int, int, int]]
) -> np.ndarray:
    """``image (H, W, 3) uint8`` with the inner boundary pixels of each label of ``labels (H,
    W)`` painted in ``colours[label]`` (labels not in ``colours`` are left out)."""
    out = image.copy()
    edge = find_boundaries(labels, mode="inner") & (labels > 0)
    lut = np.zeros((int(labels.max(initial=0)) + 1, 4), np.uint8)  # rgb + "draw" flag
    for label, colour in colours.items():
        lut[label] = (*colour, 1)
    painted = lut[labels]
    where = edge & (painted[..., 3] == 1)
    out[where] = painted[where][:, :3]
    return out


def numbered_overlay(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each nucleus outlined in its own colour with its label number at its centre:
    ``(H, W, 3) uint8``, for checking a segmentation by eye."""
    ids = [int(k) for k in np.unique(labels) if k]
    out = Image.fromarray(draw_outlines(image, labels, {k: label_colour(k) for k in ids}))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(9, min(labels.shape) // 40))
    for region in regionprops(labels):
        y, x = region.centroid
        draw.text((x, y), str(region.label), fill=label_colour(region.label), font=font,
                  anchor="mm", stroke_width=1, stroke_fill=(0, 0, 0))
    return np.asarray(out)
