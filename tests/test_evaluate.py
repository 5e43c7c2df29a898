"""Evaluate-stage pieces: overlays in the seed's colours, the per-image table, alignment."""

import csv

import numpy as np
import pytest

from nuclei_unet.evaluate import align, per_image_rows, pick_samples, write_csv
from nuclei_unet.plots import overlay


def test_overlay_uses_the_seed_colours():
    image = np.zeros((1, 4, 3), np.uint8)
    true = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    out = overlay(image, true, pred, alpha=0.0)
    assert out[0].tolist() == [[0, 255, 255], [255, 255, 0], [255, 0, 255], [0, 0, 0]]
    half = overlay(np.full((1, 4, 3), 100, np.uint8), true, pred, alpha=0.5)
    assert half[0, 0].tolist() == [50, 178, 178]  # 0.5 * 100 + 0.5 * cyan, rounded


def test_per_image_rows_and_csv(tmp_path):
    true = np.zeros((2, 2, 2), bool)
    true[0, 0, 0] = True
    pred = true.copy()
    rows = per_image_rows("val", ["a", "b"], pred, true, smooth=0.0)
    assert rows[0]["iou_fg"] == 1.0 and rows[0]["true_fg"] == 0.25
    # b: both empty -> defined as perfect
    assert rows[1]["iou_fg"] == 1.0 and rows[1]["dice_fg"] == 1.0
    write_csv(tmp_path / "x.csv", rows)
    with open(tmp_path / "x.csv") as fh:
        back = list(csv.DictReader(fh))
    assert [r["id"] for r in back] == ["a", "b"] and back[0]["split"] == "val"


def test_align_by_id():
    masks = np.arange(3)[:, None, None] * np.ones((3, 2, 2), int)
    got = align(["a", "b", "c"], masks, ["c", "a"])
    assert got[:, 0, 0].tolist() == [2, 0]
    with pytest.raises(KeyError, match="no prediction for image z"):
        align(["a"], masks[:1], ["z"])


@pytest.mark.parametrize("n, total, expected", [(3, 10, [0, 4, 9]), (5, 2, [0, 1]), (0, 4, [])])
def test_pick_samples(n, total, expected):
    picks = pick_samples([str(i) for i in range(total)], n)
    assert len(picks) == len(expected) and picks[0:1] == expected[0:1] and picks[-1:] == expected[-1:]
