"""Evaluate-stage pieces: overlays in the seed's colours, the per-image table, alignment."""

import numpy as np
import pandas as pd
import pytest

from nuclei_unet.evaluate.outlines import draw_outlines
from nuclei_unet.evaluate.plots import COLORS, instance_figure, overlay
from nuclei_unet.evaluate.report import per_image_rows, pick_samples
from nuclei_unet.io.prepared import positions
from nuclei_unet.io.tables import write_table
from nuclei_unet.metrics.dsb import match_labels


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


def test_match_labels_sorts_objects_by_their_match():
    true = np.zeros((6, 12), np.uint16)
    pred = np.zeros((6, 12), np.uint16)
    true[1:5, 0:4] = 1  # found (pred 9 covers it exactly)
    pred[1:5, 0:4] = 9
    true[1:5, 5:7] = 2  # missed: pred 4 covers only a quarter of the union
    pred[1:3, 5:6] = 4
    pred[0:2, 9:12] = 5  # nothing there: a false positive
    assert match_labels(true, pred) == ([9], [4, 5], [2])
    assert match_labels(true, np.zeros_like(pred)) == ([], [], [1, 2])


def test_instance_figure_keeps_the_image_size_and_colours_by_match():
    image = np.zeros((60, 80, 3), np.uint8)
    true = np.zeros((60, 80), np.uint16)
    pred = np.zeros((60, 80), np.uint16)
    true[10:20, 10:20] = 1
    pred[10:20, 10:20] = 3
    pred[30:40, 50:60] = 7
    true[40:50, 20:30] = 2
    drawn = draw_outlines(image, pred, {3: COLORS["tp"], 7: COLORS["fp"]})
    drawn = draw_outlines(drawn, true, {2: COLORS["fn"]})
    assert tuple(drawn[10, 15]) == COLORS["tp"] and tuple(drawn[30, 55]) == COLORS["fp"]
    assert tuple(drawn[40, 25]) == COLORS["fn"] and tuple(drawn[15, 15]) == (0, 0, 0)
    fig = instance_figure(image, true, pred, ([3], [7], [2]), "title")
    width, height = fig.get_size_inches() * fig.dpi
    assert round(width) == 80 and round(height) == 100  # the image plus a 40-px title band


def test_full_res_scores_per_image_kind(tmp_path):
    from nuclei_unet.data.kinds import FLUORESCENCE, STAINED
    from nuclei_unet.evaluate.report import full_res_scores
    from nuclei_unet.io.images import write_png

    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    truth = np.zeros((20, 20), np.uint16)
    truth[2:8, 2:8], truth[12:18, 12:18] = 1, 2
    # image a: both nuclei found exactly (score 1); image b: one of two (score 1/2 everywhere)
    for k, pred in (("a", truth), ("b", np.where(truth == 2, 0, truth).astype(np.uint16))):
        write_png(truth_dir / f"{k}.png", truth)
        write_png(pred_dir / f"{k}_labels.png", pred)
        write_png(pred_dir / f"{k}_mask.png", (pred > 0).astype(np.uint8) * 255)
    table, summary, curve = full_res_scores(
        ["a", "b"], truth_dir, pred_dir, 1e-3, {"a": FLUORESCENCE, "b": STAINED}
    )
    assert summary["dsb_map"] == pytest.approx(0.75) and curve[0] == pytest.approx(0.75)
    assert summary["dsb_map_fluorescence"] == 1.0 and summary["dsb_map_stained"] == 0.5
    assert summary["f1_50_stained"] == pytest.approx(2 / 3) and summary["images_stained"] == 1
    assert list(table["kind"]) == [FLUORESCENCE, STAINED]
    # b's second nucleus is the one missed, counted per image, per split and per kind
    assert list(table["missed"]) == [0, 1] and summary["missed"] == summary["missed_stained"] == 1
    assert summary["missed_fluorescence"] == 0 and summary["extra"] == summary["merged"] == 0
    one_kind = full_res_scores(["a"], truth_dir, pred_dir, 1e-3, {"a": FLUORESCENCE})[1]
    assert "dsb_map_stained" not in one_kind  # no made-up figure for a kind the split lacks
