"""Instances, the DSB metric, RLE, overlap-tile prediction and the nuclei-unet command."""

import csv
import errno
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import disc
from PIL import Image

from nuclei_unet.cli import (
    _NOT_FLAGS, _flag, _parser, default_settings, find_images, main, settings,
)
from nuclei_unet.model.checkpoint import Checkpoint, Scale
from nuclei_unet.model.unet import UNet
from nuclei_unet.config.schema import PredictParams
from nuclei_unet.errors import ParamsError
from nuclei_unet.infer.instances import split_instances
from nuclei_unet.infer.segment import predict_full
import nuclei_unet.infer.tiling
from nuclei_unet.infer.tiling import blend_window, tile_origins
from nuclei_unet.io.rle import rle_decode, rle_encode, submission_rows
from nuclei_unet.metrics.dsb import THRESHOLDS, error_counts, image_scores, iou_matrix, match_labels

SHAPE = (60, 100)
A, B = disc(SHAPE, (30, 35), 15), disc(SHAPE, (30, 62), 15)  # touching at x ~ 48


def _labels(*masks):
    out = np.zeros(SHAPE, np.int32)
    for k, m in enumerate(masks, start=1):
        out[m & (out == 0)] = k
    return out


def test_dsb_perfect_and_one_missed():
    truth = _labels(A & ~B, disc(SHAPE, (30, 90), 6))
    assert image_scores(truth, truth)["dsb_score"] == 1.0
    missed = image_scores(truth, np.where(truth == 2, 0, truth))
    # every threshold: TP 1, FP 0, FN 1 -> 1/2
    assert missed["dsb_score"] == pytest.approx(0.5)
    assert (missed["tp_50"], missed["fp_50"], missed["fn_50"]) == (1, 0, 1)
    assert missed["precision_50"] == 1.0 and missed["recall_50"] == 0.5
    assert missed["f1_50"] == pytest.approx(2 / 3)


def test_dsb_split_nucleus_scores_zero():
    truth = _labels(disc(SHAPE, (30, 50), 20))
    thirds = np.where(truth > 0, np.digitize(np.arange(SHAPE[1]), [43, 57]) + 1, 0)
    s = image_scores(truth, thirds)
    # each third has IoU < 0.5 with the nucleus: no match, 1 FN and 3 FP at every threshold
    assert s["dsb_score"] == 0.0 and (s["tp_50"], s["fp_50"], s["fn_50"]) == (0, 3, 1)


def test_dsb_threshold_sweep_on_a_shifted_nucleus():
    truth = _labels(disc(SHAPE, (30, 50), 15))
    pred = _labels(disc(SHAPE, (30, 53), 15))
    iou = iou_matrix(truth, pred)[0, 0]
    s = image_scores(truth, pred)
    expected = np.mean([1.0 if iou > t else 0.0 for t in THRESHOLDS])
    assert s["dsb_score"] == pytest.approx(expected) and 0 < expected < 1


NONE = {"missed": 0, "merged": 0, "oversplit": 0, "extra": 0}


def test_error_kinds_of_known_mistakes():
    C = disc(SHAPE, (30, 88), 6)  # a third nucleus, apart from A and B
    truth = _labels(A & ~B, B, C)
    assert error_counts(truth, truth) == NONE
    # C left out, A and B predicted as one object, and a spot on the background
    pred = _labels(A | B, disc(SHAPE, (8, 8), 4))
    assert error_counts(truth, pred) == {"missed": 1, "merged": 2, "oversplit": 0, "extra": 1}
    # a 5 x 10 nucleus half covered: the background wins the tie (missed); 6 columns of 10 do not
    box = np.zeros(SHAPE, int)
    box[50:55, 80:90] = 1
    for cols, missed in ((5, 1), (6, 0)):
        cover = np.zeros(SHAPE, int)
        cover[50:55, 80:80 + cols] = 7
        assert error_counts(box, cover) == {**NONE, "missed": missed}
    # image_scores carries the same counts
    assert {k: image_scores(truth, pred)[k] for k in NONE} == error_counts(truth, pred)


def test_a_nucleus_cut_in_three_is_oversplit_once():
    truth = _labels(disc(SHAPE, (30, 50), 20))
    thirds = np.where(truth > 0, np.digitize(np.arange(SHAPE[1]), [43, 57]) + 1, 0)
    assert error_counts(truth, thirds) == {**NONE, "oversplit": 1}


@pytest.mark.parametrize("truth, pred, counts", [
    (np.zeros(SHAPE, int), np.zeros(SHAPE, int), NONE),
    (np.zeros(SHAPE, int), _labels(A, B), {**NONE, "extra": 2}),
    (_labels(A, B), np.zeros(SHAPE, int), {**NONE, "missed": 2}),
    # maps without any background pixel: the missing background is still index 0
    (np.ones(SHAPE, int), np.where(np.arange(SHAPE[1]) < 50, 2, 3) + np.zeros(SHAPE, int),
     {**NONE, "oversplit": 1}),
])
def test_error_kinds_of_empty_and_full_maps(truth, pred, counts):
    assert error_counts(truth, pred) == counts


def test_iou_without_background_pixels():
    halves = np.where(np.arange(SHAPE[1]) < 50, 2, 3) + np.zeros(SHAPE, int)
    np.testing.assert_allclose(iou_matrix(np.ones(SHAPE, int), halves), [[0.5, 0.5]])


@pytest.mark.parametrize(
    "truth, pred, score, precision, recall",
    [(np.zeros(SHAPE, int), np.zeros(SHAPE, int), 1.0, 1.0, 1.0),  # nothing to find, none found
     (np.zeros(SHAPE, int), _labels(A), 0.0, 0.0, 0.0),  # one side empty: 0, like the score
     (_labels(A), np.zeros(SHAPE, int), 0.0, 0.0, 0.0)],
)
def test_dsb_empty_cases(truth, pred, score, precision, recall):
    s = image_scores(truth, pred)
    assert (s["dsb_score"], s["precision_50"], s["recall_50"]) == (score, precision, recall)


def test_an_iou_of_exactly_a_threshold_is_no_match():
    """Kaggle's rule: a hit needs IoU above the threshold. A 4-pixel nucleus predicted as 2 of
    its pixels has IoU 0.5: no match at 0.5; 3 of them (IoU 0.75) match up to 0.70."""
    truth = np.zeros((3, 6), int)
    truth[1, 1:5] = 1
    half, three = (np.where(truth.cumsum(axis=1) <= n, truth, 0) for n in (2, 3))
    assert iou_matrix(truth, half)[0, 0] == 0.5
    s = image_scores(truth, half)
    assert (s["tp_50"], s["fp_50"], s["fn_50"], s["dsb_score"]) == (0, 1, 1, 0.0)
    assert match_labels(truth, half) == ([], [1], [1])
    s = image_scores(truth, three)
    assert s["dsb_score"] == pytest.approx(5 / 10)  # thresholds 0.50 ... 0.70 of the 10


def test_rle_roundtrip_and_format():
    assert rle_encode(np.array([[1, 0], [1, 1]], bool)) == "1 2 4 1"  # column-major, 1-based
    rng = np.random.default_rng(0)
    mask = rng.random((37, 23)) > 0.6
    assert np.array_equal(rle_decode(rle_encode(mask), mask.shape), mask)
    assert submission_rows("x", np.zeros((4, 4), int)) == [("x", "")]
    rows = submission_rows("y", _labels(A, disc(SHAPE, (30, 90), 6)))
    assert [r[0] for r in rows] == ["y", "y"]


def test_watershed_separates_touching_discs():
    mask = A | B
    assert split_instances(mask, "components").max() == 1
    labels = split_instances(mask, "watershed")
    assert labels.max() == 2
    # each disc is mostly one label
    for d in (A, B):
        values, counts = np.unique(labels[d], return_counts=True)
        assert counts.max() / d.sum() > 0.9


def test_min_size_drops_small_objects():
    mask = A | disc(SHAPE, (5, 95), 2)
    assert split_instances(mask, "components").max() == 2
    assert split_instances(mask, "components", min_size=20).max() == 1
    small = int(disc(SHAPE, (5, 95), 2).sum())  # an object of exactly min_size pixels stays
    assert split_instances(mask, "components", min_size=small).max() == 2
    assert split_instances(mask, "components", min_size=small + 1).max() == 1


@pytest.mark.parametrize("half_axes", [(6, 15), (7, 20), (5, 20)])
def test_watershed_keeps_an_elongated_nucleus_whole(half_axes):
    """An ellipse's distance transform has a ridge of 3 to 7 peaks min_distance apart; the
    smoothing leaves one, so the nucleus is not cut in pieces."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    a, b = half_axes
    mask = ((yy - 30) / a) ** 2 + ((xx - 50) / b) ** 2 <= 1
    assert split_instances(mask, "watershed").max() == 1


def test_a_component_without_a_seed_keeps_its_own_label():
    """Edge instances: a blob whose body never passes the seed threshold (all edge, say a
    thin fragment) is kept under a label of its own, not dropped and not merged."""
    fg = (A | disc(SHAPE, (30, 88), 6)).astype(np.float32)
    edge = np.zeros(SHAPE, np.float32)
    edge[:, 80:] = 0.9  # the small blob is all edge: body 0.1, below 0.5
    labels = split_instances(fg > 0.5, "edge", edge=edge, fg=fg)
    assert labels.max() == 2
    assert np.unique(labels[disc(SHAPE, (30, 88), 6)]).tolist() == [2]
    # two touching nuclei whose neck has a body of exactly the threshold: not a seed, so the
    # neck does not join their seeds
    body = np.where(A | B, 0.5, 0.0).astype(np.float32)
    body[disc(SHAPE, (30, 35), 10) | disc(SHAPE, (30, 62), 10)] = 0.6
    assert split_instances(A | B, "edge", edge=np.zeros_like(body), fg=body).max() == 2


class Constant(torch.nn.Module):
    def forward(self, x):
        return torch.full_like(x[:, :1], 0.7)


class Pointwise(torch.nn.Module):
    def forward(self, x):
        return (x.mean(1, keepdim=True) - 0.5) * 8


@pytest.mark.parametrize("shape,batch_size", [
    ((150, 170), 32), ((150, 170), 5), ((150, 170), 1), ((40, 30), 32), ((128, 128), 32),
])
def test_tiling_is_seamless(shape, batch_size):
    # 150 x 170: 16 tiles, so batches of 5 (5, 5, 5, 1) and of 1 blend the same maps as one of 32
    rng = np.random.default_rng(1)
    image = (rng.random((*shape, 3)) * 255).astype(np.uint8)
    options = PredictParams(
        mode="tile", tile_size=64, tile_overlap=16, tile_scale=1.0, tta=False, batch_size=batch_size
    )
    const = predict_full(Constant(), image, options, 32, torch.device("cpu"), torch.float32)[0][0]
    assert const.shape == shape
    np.testing.assert_allclose(const, 1 / (1 + np.exp(-0.7)), atol=1e-6)
    tiled = predict_full(Pointwise(), image, options, 32, torch.device("cpu"), torch.float32)[0][0]
    direct = torch.sigmoid((torch.from_numpy(image).float() / 255).mean(2).sub(0.5).mul(8)).numpy()
    np.testing.assert_allclose(tiled, direct, atol=1e-5)


def test_tiles_go_through_the_network_a_batch_at_a_time(monkeypatch):
    # the whole image's tiles are never held at once: each call sees at most a batch of them
    seen: list[int] = []
    real = nuclei_unet.infer.tiling.predict_maps

    def counting(model, tiles, *args, **kwargs):
        seen.append(len(tiles))
        return real(model, tiles, *args, **kwargs)

    monkeypatch.setattr(nuclei_unet.infer.tiling, "predict_maps", counting)
    image = np.zeros((150, 170, 3), np.uint8)
    options = PredictParams(
        mode="tile", tile_size=64, tile_overlap=16, tile_scale=1.0, tta=False, batch_size=5
    )
    predict_full(Constant(), image, options, 32, torch.device("cpu"), torch.float32)
    assert seen == [5, 5, 5, 1]  # 16 tiles (4 x 4)


def test_tile_geometry():
    assert tile_origins(300, 128, 96) == [0, 96, 172]
    assert tile_origins(100, 128, 96) == [0]
    w = blend_window(64, 16)
    assert w.min() > 0 and w[32, 32] == 1.0 and w[0, 32] < w[8, 32] < w[16, 32]


def test_resize_mode_gives_original_size():
    image = np.zeros((70, 90, 3), np.uint8)
    probs = predict_full(Constant(), image, PredictParams(tta=False, mode="resize"), 32, torch.device("cpu"))[0]
    assert probs.shape == (1, 70, 90)  # one map: the foreground


def test_command_on_mixed_images(tmp_path, tiny_model):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((50, 70), 30000, np.uint16)).save(folder / "gray16.tif")
    Image.fromarray(np.zeros((33, 47, 4), np.uint8)).save(folder / "rgba.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "rgb.jpg")
    (folder / "broken.png").write_bytes(b"not an image")
    status = main(["predict", str(folder), "--model", str(tiny_model), "--out", str(tmp_path / "out")])
    assert status == 2  # one unreadable file, the others done
    for stem, shape in (("gray16", (50, 70)), ("rgba", (33, 47)), ("rgb", (40, 40))):
        mask = np.asarray(Image.open(tmp_path / "out" / f"{stem}_mask.png"))
        labels = np.asarray(Image.open(tmp_path / "out" / f"{stem}_labels.png"))
        assert mask.shape == labels.shape == shape
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        assert labels.dtype == np.uint16
    assert not (tmp_path / "out" / "broken_mask.png").exists()
    with open(tmp_path / "out" / "objects.csv") as fh:
        assert next(csv.reader(fh))[:3] == ["image", "label", "area"]


def test_command_without_images(tmp_path, tiny_model):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--model", str(tiny_model), "--out", str(tmp_path / "o")]) == 1


def test_results_never_replace_an_input(tmp_path, tiny_model, caplog):
    """--out on the images' own folder: a.png's mask would replace the user's a_mask.png (and a
    later run would read the results as images), so nothing is written, in one error line."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(folder / "a_mask.png")  # their truth
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for inputs in ([folder], [folder / "a.png"]):
        assert main(["predict", *map(str, inputs), "--model", str(tiny_model), "--out", str(folder)]) == 1
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert f"--out {folder} holds the input {folder / 'a.png'}" in caplog.text
    assert main(["predict", str(folder), "--model", str(tiny_model), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "a_mask_mask.png").exists()  # their file is an image like the others


@pytest.mark.parametrize("cwd, inputs, out", [
    ("", ["in"], "in"), ("", ["in/a.png"], "./in/"), ("in", ["."], "."), ("in", ["a.png"], "../in"),
])
def test_results_never_replace_an_input_named_relatively(tmp_path, tiny_model, monkeypatch, cwd, inputs, out):
    """The same folder spelt as users type it, relative to where they stand: still refused."""
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "in" / "a.png")
    monkeypatch.chdir(tmp_path / cwd)
    assert main(["predict", *inputs, "--model", str(tiny_model), "--out", out]) == 1
    assert [p.name for p in (tmp_path / "in").iterdir()] == ["a.png"]


@pytest.mark.parametrize("names", [("one/cells.png", "two/cells.png"), ("one/cells.png", "one/cells.tif")])
def test_two_inputs_of_one_name_are_refused_before_any_work(tmp_path, tiny_model, caplog, names):
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / name)
    args = ["predict", *(str(tmp_path / n) for n in names), "--model", str(tiny_model)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()
    first, second = (tmp_path / n for n in names)
    assert f"{first} and {second} would both write cells_mask.png" in caplog.text
    caplog.clear()  # the check follows the formats asked for
    assert main([*args, "--out", str(tmp_path / "out"), "--format", "overlay"]) == 1
    assert f"{first} and {second} would both write cells_overlay.png" in caplog.text
    assert not (tmp_path / "out").exists()


def test_an_out_that_cannot_be_written_is_one_error_line(tmp_path, tiny_model, caplog, monkeypatch):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "taken").write_text("a file, not a folder")
    args = ["predict", str(tmp_path / "a.png"), "--model", str(tiny_model)]
    assert main([*args, "--out", str(tmp_path / "taken")]) == 1
    assert f"--out {tmp_path / 'taken'}: cannot make that folder (File exists)" in caplog.text

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)  # the last step of every atomic write
    assert main([*args, "--out", str(tmp_path / "o")]) == 1
    monkeypatch.undo()
    assert f"{tmp_path / 'o' / 'a_mask.png'}: not written (No space left on device)" in caplog.text
    assert [p.name for p in (tmp_path / "o").iterdir()] == []  # no temporary left behind


def test_an_input_given_twice_is_segmented_once(tmp_path, tiny_model, caplog):
    """Given, listed in its folder and spelt another way: one image, not two of one name."""
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "b.png")
    (tmp_path / "sub").mkdir()
    inputs = [str(tmp_path / "b.png"), str(tmp_path), str(tmp_path / "sub" / ".." / "b.png")]
    assert find_images(inputs) == [tmp_path / "b.png", tmp_path / "a.png"]
    with caplog.at_level(logging.INFO, logger="nuclei_unet"):
        assert main(["predict", *inputs, "--model", str(tiny_model), "--out", str(tmp_path / "o")]) == 0
    assert "segmented 2 of 2 images" in caplog.text


def test_a_folder_lists_its_images_by_suffix_in_any_case(tmp_path):
    """Microscopes write CELLS.TIF as often as cells.tif; a note and a folder named like an
    image are not images."""
    for name in ["B.PNG", "c.Tif", "a.jpeg"]:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "d.png").mkdir()
    assert find_images([str(tmp_path)]) == [tmp_path / n for n in ["B.PNG", "a.jpeg", "c.Tif"]]


def test_a_folder_of_folders_is_one_error_with_a_hint(tmp_path, tiny_model, caplog):
    """The DSB layout keeps images one level down; folders are not searched recursively."""
    (tmp_path / "dsb" / "abc" / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "dsb" / "abc" / "images" / "abc.png")
    (tmp_path / "plain" / "x").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    hints = {
        "dsb": f" (subfolders are not searched: give them too, e.g. {tmp_path / 'dsb' / '*' / 'images'})",
        "plain": f" (subfolders are not searched: give them too, e.g. {tmp_path / 'plain' / '*'})",
        "empty": "",
    }
    for name, hint in hints.items():
        caplog.clear()
        folder = str(tmp_path / name)
        assert main(["predict", folder, "--model", str(tiny_model), "--out", str(tmp_path / "o")]) == 1
        assert f"error: no images found in {folder}{hint}\n" in caplog.text
    assert not (tmp_path / "o").exists()


def test_edge_instances_need_a_model_with_the_edge_class(tmp_path, tiny_model, caplog):
    """tiny_model has one output (no edge class): --instances edge is one error line, exit 1."""
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a.png")
    args = ["predict", str(tmp_path / "a.png"), "--model", str(tiny_model), "--out", str(tmp_path / "o")]
    assert main([*args, "--instances", "edge"]) == 1
    assert "predict.instances 'edge' needs a model trained with train.edge: true" in caplog.text
    assert main(args) == 0  # its default: the watershed


def test_flags_override_the_model_files_settings():
    stored = PredictParams(tta=True, threshold=0.5, mode="tile")
    args = _parser().parse_args(["predict", "x.png", "--model", "m", "--out", "o", "--no-tta",
                                 "--threshold", "0.3", "--tile-size", "64", "--scales", "1", "1.25"])
    assert settings(args, stored) == stored.model_copy(
        update=dict(tta=False, threshold=0.3, tile_size=64, scales=(1.0, 1.25))
    )
    plain = _parser().parse_args(["predict", "x.png", "--model", "m", "--out", "o"])
    assert settings(plain, stored) == stored
    # a file without settings: params.yaml's defaults, fitted to what the model was trained on
    resized = Checkpoint(UNet((4, 8), (0.0, 0.0)), 32, None, None)
    assert default_settings(resized) == PredictParams(mode="resize", instances="watershed")
    native = Checkpoint(UNet((4, 8), (0.0, 0.0), out_channels=2), 128, None, None, Scale(True, 20.0))
    assert default_settings(native) == PredictParams()


@pytest.mark.parametrize("flags, message", [
    (["--tile-overlap", "15"], r"^--tile-overlap: must be even, >= 0 and smaller than tile_size, got 15$"),
    (["--tile-size", "64", "--tile-overlap", "64"], r"^--tile-overlap: .* smaller than tile_size, got 64$"),
    (["--threshold", "1.5"], r"--threshold: must be in \(0, 1\), got 1.5"),
    (["--scales", "1", "0"], r"^--scales: must be one or more factors in \(0, 4.0\], got \[1.0, 0.0\]$"),
    (["--scales", "1", "100"], r"^--scales: must be one or more factors in \(0, 4.0\], got \[1.0, 100.0\]$"),
    (["--tile-scale", "8"], r"^--tile-scale: must be in \(0, 4.0\], got 8.0$"),
    (["--scales", "1", "inf"], r"^--scales\[1\]: expected a finite number, got inf$"),
])
def test_bad_flags_are_named(flags, message):
    args = _parser().parse_args(["predict", "x.png", "--model", "m", "--out", "o", *flags])
    with pytest.raises(ParamsError, match=message):
        settings(args, PredictParams())


def test_help_shows_every_setting_and_its_default(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--threshold", "--batch-size", "--device", "--precision", "--tta, --no-tta",
                 "--mode", "--tile-size", "--tile-overlap", "--tile-scale", "--instances",
                 "--min-size", "--min-distance"):
        assert flag in text, flag
    assert "average the 8 flips/rotations of each image (model file's value; else True)" in text


def test_readme_lists_every_predict_flag():
    # README's list of the command's flags is written by hand: it must not fall behind the schema
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [_flag(name) for name in PredictParams.model_fields
               if name not in _NOT_FLAGS and f"`{_flag(name)}" not in readme]
    assert not missing, f"README lacks {missing}"
