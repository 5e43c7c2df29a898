"""Inference: probabilities with TTA, tiling, full-resolution masks, instances, object tables."""
