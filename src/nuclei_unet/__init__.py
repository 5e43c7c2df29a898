"""nuclei-unet: a reproducible U-Net pipeline for cell-nucleus segmentation (DSB2018)."""

__version__ = "0.1.0"
