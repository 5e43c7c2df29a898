"""Scores: pixel IoU/Dice and confusion (the seed's), and the DSB2018 object metric."""
