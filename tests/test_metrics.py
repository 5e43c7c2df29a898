"""Known-answer tests for the metrics, empty masks included."""

import numpy as np
import pytest

from nuclei_unet.metrics.pixel import confusion_fractions, per_image_iou_dice, summarize

# truth: 4 pixels, prediction: 3 of them plus 1 extra -> I=3, U=5, |P|+|T|=8
TRUE = np.zeros((4, 4), bool)
TRUE[0, :4] = True
PRED = np.zeros((4, 4), bool)
PRED[0, :3] = True
PRED[3, 3] = True


def test_hand_computed_iou_dice_without_smoothing():
    iou, dice = per_image_iou_dice(PRED, TRUE, smooth=0.0)
    assert iou == pytest.approx([3 / 5])
    assert dice == pytest.approx([6 / 8])


def test_seed_smoothing_term():
    iou, dice = per_image_iou_dice(PRED, TRUE, smooth=1e-3)
    assert iou[0] == pytest.approx((3 + 1e-3) / (5 + 1e-3))
    assert dice[0] == pytest.approx((6 + 1e-3) / (8 + 1e-3))


@pytest.mark.parametrize(
    "pred, true, iou, dice",
    [
        (np.zeros((3, 3)), np.zeros((3, 3)), 1.0, 1.0),  # both empty: perfect agreement
        (np.ones((3, 3)), np.zeros((3, 3)), 1e-3 / (9 + 1e-3), 1e-3 / (9 + 1e-3)),  # all FP
        (np.zeros((3, 3)), np.ones((3, 3)), 1e-3 / (9 + 1e-3), 1e-3 / (9 + 1e-3)),  # all FN
        (np.ones((3, 3)), np.ones((3, 3)), 1.0, 1.0),
    ],
)
def test_empty_and_full_masks(pred, true, iou, dice):
    got_iou, got_dice = per_image_iou_dice(pred, true)
    assert got_iou[0] == pytest.approx(iou)
    assert got_dice[0] == pytest.approx(dice)


def test_per_image_mean_is_not_pooled():
    # image A perfect (1 px), image B misses its 3 px: mean IoU ~0.5, pooled IoU 1/4
    true = np.zeros((2, 2, 2), bool)
    pred = np.zeros((2, 2, 2), bool)
    true[0, 0, 0] = pred[0, 0, 0] = True
    true[1, 0, :] = True
    true[1, 1, 0] = True
    s = summarize(pred, true, smooth=0.0)
    assert s["iou_fg"] == pytest.approx(0.5)
    assert s["pooled_iou_fg"] == pytest.approx(1 / 4)
    assert s["pooled_dice_fg"] == pytest.approx(2 / 5)
    assert s["accuracy"] == pytest.approx(5 / 8)


def test_confusion_fractions_sum_to_one():
    cm = confusion_fractions(PRED, TRUE)
    assert cm == pytest.approx({"tp": 3 / 16, "fp": 1 / 16, "fn": 1 / 16, "tn": 11 / 16})


def test_background_and_mean_metrics():
    s = summarize(PRED, TRUE, smooth=0.0)
    # background: truth 12 px, prediction 12 px, intersection 11, union 13
    assert s["iou_bg"] == pytest.approx(11 / 13)
    assert s["dice_bg"] == pytest.approx(22 / 24)
    assert s["iou_mean"] == pytest.approx((3 / 5 + 11 / 13) / 2)
    assert s["dice_mean"] == pytest.approx((6 / 8 + 22 / 24) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        per_image_iou_dice(np.zeros((2, 3)), np.zeros((3, 2)))
