"""Image transforms: the seed-exact resize and the training augmentations."""
