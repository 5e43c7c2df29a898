"""The data stages: download (or synthesise) DSB-layout images, prepare them, split them."""
