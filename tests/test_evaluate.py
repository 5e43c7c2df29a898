"""Evaluate-stage pieces: overlays in the seed's colours, the per-image table, alignment."""

import numpy as np
import pandas as pd
import pytest

from nuclei_unet.evaluate.plots import overlay
from nuclei_unet.evaluate.report import per_image_rows, pick_samples
from nuclei_unet.io.prepared import positions
from nuclei_unet.io.tables import write_table


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
    assert rows.loc[0, "iou_fg"] == 1.0 and rows.loc[0, "true_fg"] == 0.25
    # b: both empty -> defined as perfect
    assert rows.loc[1, "iou_fg"] == 1.0 and rows.loc[1, "dice_fg"] == 1.0
    write_table(tmp_path / "x.csv", rows)
    assert (tmp_path / "x.csv").read_bytes().startswith(b"id,split,iou_fg,dice_fg,iou_bg")
    back = pd.read_csv(tmp_path / "x.csv")
    assert back["id"].tolist() == ["a", "b"] and back.loc[0, "split"] == "val"
    assert back["true_fg"].tolist() == [0.25, 0.0]


def test_positions_by_id():
    assert positions(["a", "b", "c"], ["c", "a"]).tolist() == [2, 0]
    with pytest.raises(KeyError, match="no prediction for image z"):
        positions(["a"], ["z"], "prediction for image")


@pytest.mark.parametrize("n, total, expected", [(3, 10, [0, 4, 9]), (5, 2, [0, 1]), (0, 4, [])])
def test_pick_samples(n, total, expected):
    picks = pick_samples([str(i) for i in range(total)], n)
    assert len(picks) == len(expected) and picks[0:1] == expected[0:1] and picks[-1:] == expected[-1:]
