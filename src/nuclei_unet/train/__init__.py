"""Training: the loop, losses, resumable checkpoints and multi-process training."""
