"""What users take to other tools: per-image files for Fiji and napari, a bioimage.io model."""
