"""Which kind of microscopy image: fluorescence (gray, dark background) or stained/brightfield.

DSB2018's stage1_train is mostly fluorescence; its stained tissue and brightfield images are
the rare kinds a model does worst on, so evaluate reports them apart and training can draw them
more often. The rule looks only at the image, so it applies to any user's image too.
"""

from __future__ import annotations

import numpy as np

FLUORESCENCE = "fluorescence"
STAINED = "stained"
KINDS = (FLUORESCENCE, STAINED)
# mean |R - G| + |G - B| above this many gray levels: a colour (stained) image; JPEG-like noise
# on a gray image stays well below it
COLOUR_LEVELS = 2.0
# median brightness above this: a bright background (brightfield), whatever the colour
BRIGHT_MEDIAN = 127.0


def image_kind(image: np.ndarray) -> str:
    """``(H, W, 3) uint8`` -> :data:`STAINED` when it has colour or a bright background,
    else :data:`FLUORESCENCE`.

    >>> image_kind(np.full((4, 4, 3), 10, np.uint8))
    'fluorescence'
    >>> image_kind(np.full((4, 4, 3), 200, np.uint8))
    'stained'
    >>> image_kind(np.dstack([np.full((4, 4), 90, np.uint8)] * 2 + [np.full((4, 4), 40, np.uint8)]))
    'stained'
    """
    pixels = image.reshape(-1, image.shape[-1]).astype(np.int16)
    bright = float(np.median(pixels.mean(axis=1)))
    colour = _colour_levels(pixels) > COLOUR_LEVELS
    return STAINED if colour or bright > BRIGHT_MEDIAN else FLUORESCENCE


def has_colour(image: np.ndarray) -> bool:
    """Whether ``(H, W, 3) uint8`` is a colour image: its channels differ by more than
    :data:`COLOUR_LEVELS` gray levels on average (a stained slide, not a gray brightfield or
    fluorescence image).

    >>> has_colour(np.full((4, 4, 3), 200, np.uint8))
    False
    >>> has_colour(np.dstack([np.full((4, 4), 90, np.uint8)] * 2 + [np.full((4, 4), 40, np.uint8)]))
    True
    """
    return _colour_levels(image.reshape(-1, image.shape[-1]).astype(np.int16)) > COLOUR_LEVELS


def _colour_levels(pixels: np.ndarray) -> float:
    """Mean ``|R - G| + |G - B|`` of ``(N, 3) int16`` pixels, in gray levels."""
    return float(
        np.abs(pixels[:, 0] - pixels[:, 1]).mean() + np.abs(pixels[:, 1] - pixels[:, 2]).mean()
    )
