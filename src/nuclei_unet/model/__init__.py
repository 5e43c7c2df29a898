"""The U-Net in named parts, its input convention, and the model file that carries both."""
