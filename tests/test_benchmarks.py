"""The benchmarks: their shared loading (predict flags over the model file's settings), the
exposure and stain changes, the error sources' segmentations, the label fixes and the stained
specialist's hold-out and fine-tuning, on hand-computed cases."""

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from scoring import add_data_args, load_scoring, score_variants  # benchmarks/ on sys.path


def _args(tiny_dsb: Path, tiny_model: Path, *flags: str) -> argparse.Namespace:
    split = tiny_dsb.parent / "split.json"
    split.write_text(json.dumps({"train": ["img0", "img2"], "val": [], "test": ["img1"]}))
    parser = argparse.ArgumentParser()
    add_data_args(parser)
    return parser.parse_args(["--model", str(tiny_model), "--raw", str(tiny_dsb),
                              "--split", str(split), *flags])


def test_scoring_takes_the_train_split_and_the_files_settings(tiny_dsb, tiny_model):
    scoring = load_scoring(_args(tiny_dsb, tiny_model))
    assert [s.id for s in scoring.samples] == ["img0", "img2"]
    # a file without settings, of a model trained on whole images without the edge class
    options = scoring.checkpoint.predict
    assert (options.mode, options.instances, options.scale_start) == ("resize", "watershed", 0.5)


def test_scoring_flags_override_the_settings(tiny_dsb, tiny_model):
    scoring = load_scoring(_args(tiny_dsb, tiny_model, "--scale-start", "1.0", "--mode", "scaled",
                                 "--split-name", "test"))
    assert [s.id for s in scoring.samples] == ["img1"]
    options = scoring.checkpoint.predict
    assert (options.mode, options.scale_start, options.instances) == ("scaled", 1.0, "watershed")


def test_sampled_images_take_every_nth_of_each_kind_and_count_all(tiny_dsb):
    from collections import Counter

    from scoring import sampled_images

    from nuclei_unet.io.dsb import list_samples

    samples = list_samples(str(tiny_dsb))
    # the tiny images' colour noise makes all three stained (data.kinds)
    for every, every_stained, taken in ((1, None, ["img0", "img1", "img2"]), (1, 2, ["img1"]),
                                        (2, 3, ["img2"])):
        in_split: Counter[str] = Counter()
        args = argparse.Namespace(every=every, every_stained=every_stained, ids=None)
        got = [(s.id, image.shape, kind) for s, image, kind in sampled_images(samples, args, in_split)]
        assert [g[0] for g in got] == taken and {g[2] for g in got} == {"stained"}
        assert in_split == Counter(stained=3)
    assert got[0][1] == (96, 64, 3)
    # --ids: every image whose id starts with one of them, in the split's order
    args = argparse.Namespace(every=2, every_stained=3, ids=["img2", "img0"])
    assert [s.id for s, _, _ in sampled_images(samples, args, Counter())] == ["img0", "img2"]
    args.ids = ["img", "nope"]
    with pytest.raises(SystemExit, match="starts with nope"):
        next(sampled_images(samples, args, Counter()))


def test_exposure_changes_are_a_cameras_hand_computed():
    from exposure import exposed

    image = np.array([[[0, 100, 255]]], np.uint8)
    truth = np.ones((1, 1), np.uint16)
    assert exposed("gain", 0.5)(image, truth)[0].tolist() == [[[0, 50, 128]]]  # 127.5 rounds up
    assert exposed("offset", 40.0)(image, truth)[0].tolist() == [[[40, 140, 255]]]  # clipped
    # 255 (100 / 255) ** 2 = 39.2
    changed, same = exposed("gamma", 2.0)(image, truth)
    assert changed.tolist() == [[[0, 39, 255]]] and same is truth


def test_stain_changes_are_a_restaining_in_8_bits_hand_computed():
    from skimage.color import hed_from_rgb, rgb_from_hed
    from stain import stained_with

    # a purple (mostly haematoxylin) and a pink (more eosin) pixel, white, and black
    image = np.array([[[184, 180, 221], [230, 150, 200], [255, 255, 255], [0, 0, 0]]], np.uint8)
    truth = np.ones((1, 4), np.uint16)
    same, kept = stained_with("hematoxylin", 1.0)(image, truth)
    assert np.array_equal(same, image) and kept is truth
    for stain, factor, amounts in (("hematoxylin", 2.0, [2.0, 1.0, 1.0]),
                                   ("eosin", 0.5, [1.0, 0.5, 1.0])):
        changed = stained_with(stain, factor)(image, truth)[0]
        # by hand: optical density -log((x + 1) / 256), split into stains, one scaled, back
        stains = -np.log((image[0, :2] + 1.0) / 256.0) @ hed_from_rgb
        expected = np.rint(256 * np.exp(-(stains * amounts) @ rgb_from_hed) - 1)
        assert changed[0, :2].tolist() == expected.tolist() and not np.array_equal(changed, image)
        assert changed[0, 2:].tolist() == image[0, 2:].tolist()  # white and black kept


def test_stain_scores_the_colour_images_only(tiny_dsb, tiny_model, tmp_path, monkeypatch, capsys):
    import scoring as scoring_module
    import stain
    from PIL import Image
    from scipy import ndimage

    from nuclei_unet.config.schema import PrepareParams
    from nuclei_unet.data.prepare import prepare_dataset

    # img1 made gray (a brightfield or fluorescence image): no stain to change, so not scored
    path = tiny_dsb / "img1" / "images" / "img1.png"
    rgba = np.asarray(Image.open(path)).copy()
    rgba[..., :3] = rgba[..., :1]
    Image.fromarray(rgba).save(path)
    prepare_dataset(tiny_dsb, tmp_path / "prepared", PrepareParams(size=32))
    split = tiny_dsb.parent / "split.json"
    split.write_text(json.dumps({"train": ["img0", "img1", "img2"], "val": [], "test": []}))

    def threshold_segment(model, image, *args):  # a stand-in for predict, as above
        mask = image[..., 0] > 100
        return mask.astype(np.uint8), ndimage.label(mask)[0]

    monkeypatch.setattr(scoring_module, "segment", threshold_segment)
    monkeypatch.setattr(sys, "argv", [
        "stain.py", "--model", str(tiny_model), "--raw", str(tiny_dsb), "--split", str(split),
        "--labels", str(tmp_path / "prepared" / "labels"), "--every", "1",
        "--hematoxylin", "1", "--eosin", "2",
    ])
    stain.main()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["change"] for r in rows] == ["hematoxylin 1", "eosin 2"]
    # img0 and img2: two nuclei in their masks and a third painted disc, as above
    assert rows[0]["images_stained"] == 2 and rows[0]["dsb_map_stained"] == 0.6667
    assert rows[1]["images_stained"] == 2 and "images_fluorescence" not in rows[1]


def test_score_variants_scores_each_change_per_kind(tiny_dsb, tiny_model, tmp_path, monkeypatch):
    import scoring as scoring_module
    from exposure import exposed
    from scipy import ndimage

    from nuclei_unet.config.schema import PrepareParams
    from nuclei_unet.data.prepare import prepare_dataset

    prepare_dataset(tiny_dsb, tmp_path / "prepared", PrepareParams(size=32))

    # a stand-in for predict: the tiny images' nuclei are 200 on a background under 40
    def threshold_segment(model, image, *args):
        mask = image[..., 0] > 100
        return mask.astype(np.uint8), ndimage.label(mask)[0]

    monkeypatch.setattr(scoring_module, "segment", threshold_segment)
    scoring = load_scoring(_args(tiny_dsb, tiny_model))
    variants = {"same": exposed("gain", 1.0), "dim": exposed("gain", 0.4)}
    rows = score_variants(scoring, scoring.samples, str(tmp_path / "prepared" / "labels"), variants,
                          "change")
    same, dim = rows
    # the colour noise makes them stained images (data.kinds); both have two nuclei in their
    # masks and a third painted disc without one: TP 2, FP 1 exactly at every IoU threshold,
    # so DSB 2 / 3 per image and F1 2 * 4 / (2 * 4 + 2) = 0.8 over both
    assert same["change"] == "same" and same["images_stained"] == 2
    assert same["dsb_map_stained"] == 0.6667 and same["f1_50_stained"] == 0.8
    assert same["no_nucleus_stained"] == 0 and same["found_diameter_stained"] == 14.0
    # at 0.4x the nuclei are 80, under the stand-in's threshold: nothing found
    assert dim["dsb_map_stained"] == 0.0 and dim["no_nucleus_stained"] == 2


def test_nucleus_cores_keep_each_nucleus_inner_half():
    from error_sources import nucleus_cores

    labels = np.zeros((8, 10), np.int32)
    labels[1:7, 1:7] = 3  # 6x6: inner distances 1, 2, 3 from the outline
    labels[0:2, 8:10] = 5  # 2x2 at the image's corner: the border is an outline too
    cores = nucleus_cores(labels)
    expected = np.zeros_like(labels)
    expected[2:6, 2:6] = 3  # distance >= 3 / 2
    expected[0:2, 8:10] = 5  # all at distance 1 = the maximum
    assert cores.tolist() == expected.tolist()


@pytest.mark.parametrize(
    "contact_edge, expected",
    [
        # a learned edge between the two: split as predicted; only the extra column costs
        (0.9, {"as_predicted": 0.8667, "true_foreground": 1.0, "true_nuclei": 0.8667,
               "true_cut": 1.0}),
        # no edge between them: one seed, one object of both; only true splits part them
        (0.2, {"as_predicted": 0.0, "true_foreground": 0.0, "true_nuclei": 0.8667,
               "true_cut": 1.0}),
    ],
)
def test_error_sources_put_the_truth_in_part_by_part(contact_edge, expected):
    from error_sources import segmentations

    from nuclei_unet.config.schema import PredictParams
    from nuclei_unet.metrics.dsb import image_scores

    truth = np.zeros((12, 20), np.int32)
    truth[2:10, 2:10] = 1  # two touching 8x8 nuclei, 64 px each
    truth[2:10, 10:18] = 2
    fg = np.full(truth.shape, 0.05, np.float32)
    fg[2:10, 1:18] = 0.9  # both nuclei and one extra column joined to the first
    edge = np.zeros_like(fg)
    edge[2:10, 9:11] = contact_edge  # body 0.09 or 0.72 where they touch (seed level 0.7)
    options = PredictParams(instances="edge", threshold=0.5, seed_threshold=0.7, min_size=0)
    labels = segmentations(np.stack([fg, edge]), truth, options, None, None)
    # nucleus 1 with the extra column: IoU 64 / 72 = 0.89, matched at 8 of the 10 thresholds
    # (0.5-0.85), at the other 2 TP 1, FP 1, FN 1: (8 + 2 / 3) / 10; the two as one object
    # has IoU 64 / 136 or 64 / 128 with each, never above 0.5: 0
    scores = {name: round(image_scores(truth, lab)["dsb_score"], 4) for name, lab in labels.items()}
    assert scores == expected


def test_error_sources_prints_one_row_per_group(tiny_dsb, tiny_model, tmp_path, monkeypatch, capsys):
    import error_sources

    from nuclei_unet.config.schema import PrepareParams
    from nuclei_unet.data.prepare import prepare_dataset

    prepare_dataset(tiny_dsb, tmp_path / "prepared", PrepareParams(size=32))
    split = tiny_dsb.parent / "split.json"
    split.write_text(json.dumps({"train": ["img0", "img1", "img2"], "val": [], "test": []}))
    monkeypatch.setattr(sys, "argv", [
        "error_sources.py", "--model", str(tiny_model), "--raw", str(tiny_dsb), "--split", str(split),
        "--labels", str(tmp_path / "prepared" / "labels"), "--every", "1", "--by-size",
    ])
    error_sources.main()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["group"], r["images"]) for r in rows] == [
        ("stained 48x80", 1), ("stained 64x64", 1), ("stained 96x64", 1)
    ]
    # an untrained model: only the rows' form is known, each a mean DSB score
    for r in rows:
        assert set(r) == {"group", "images", *error_sources.SEGMENTATIONS}
        assert all(0.0 <= r[name] <= 1.0 for name in error_sources.SEGMENTATIONS)


def test_norm_speed_times_each_norm_in_its_layout(tmp_path, monkeypatch, capsys):
    import norm_speed
    import yaml

    from conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"].update(widths=[4, 8], dropouts=[0.0, 0.0])
    params["train"].update(batch_size=2, crop_size=32, precision="fp32", threads=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    layouts = []
    real = norm_speed.train_step

    def spy(model, optimizer, batch, dtype, loss_fn):
        layouts.append((model.norm, batch[0].is_contiguous(memory_format=torch.channels_last)))
        return real(model, optimizer, batch, dtype, loss_fn)

    monkeypatch.setattr(norm_speed, "train_step", spy)
    monkeypatch.setattr(sys, "argv", ["norm_speed.py", "--params", str(tmp_path / "params.yaml"), "--steps", "1"])
    norm_speed.main()
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(result) == {*norm_speed.VARIANTS, "precision"} and result["precision"] == "float32"
    assert result["batch"]["train_ratio"] == result["batch"]["infer_ratio"] == 1.0
    # batch norm channels_last, instance norm contiguous, then instance norm channels_last
    assert layouts[:3] == [("batch", True), ("instance", False), ("instance", True)]
    assert len(layouts) == 3 * 3  # two warm-up steps and one timed, each variant


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8) * 255).save(buffer, format="PNG")
    return buffer.getvalue()


def _square(top: int, left: int, size: int = 2) -> np.ndarray:
    mask = np.zeros((4, 4), dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


@pytest.mark.parametrize("source", ["zip", "folder"])
def test_label_fixes_replace_train_masks_only_and_separate_overlaps(tmp_path, capsys, source):
    import zipfile

    import label_fixes
    from PIL import Image

    from nuclei_unet.io.dsb import list_samples, load_instances

    image = _png(np.zeros((4, 4), dtype=bool))
    original = {  # id -> mask name -> pixels; "gone" is dropped by the fixes
        "a": {"m1.png": _square(0, 0)}, "b": {"m1.png": _square(2, 2)},
        "c": {"m1.png": _square(0, 0)}, "gone": {"m1.png": _square(1, 1)},
    }
    with zipfile.ZipFile(tmp_path / "original.zip", "w") as archive:
        for image_id, masks in original.items():
            archive.writestr(f"{image_id}/images/{image_id}.png", image)
            for name, mask in masks.items():
                archive.writestr(f"{image_id}/masks/{name}", _png(mask))
    fixes = {  # a: split in two masks sharing pixel (1, 1); c: changed but in val
        "a": {"m1-1.png": _square(0, 0), "m1-2.png": _square(1, 1)},
        "b": {"m1.png": _square(2, 2)}, "c": {"m1.png": _square(2, 0)},
    }
    with zipfile.ZipFile(tmp_path / "fixes.zip", "w") as archive:  # GitHub's top folder
        for image_id, masks in fixes.items():
            for name, mask in masks.items():
                archive.writestr(f"fixes-123/stage1_train/{image_id}/masks/{name}", _png(mask))
    if source == "folder":  # a clone of the repository
        with zipfile.ZipFile(tmp_path / "fixes.zip") as archive:
            archive.extractall(tmp_path)
    (tmp_path / "split.json").write_text(
        json.dumps({"train": ["a", "b", "gone"], "val": ["c"], "test": []}))
    fixes_path = tmp_path / ("fixes.zip" if source == "zip" else "fixes-123")
    label_fixes.main(["--original", str(tmp_path / "original.zip"), "--fixes", str(fixes_path),
                      "--split", str(tmp_path / "split.json"), "--out", str(tmp_path / "out.zip")])
    log = capsys.readouterr().out
    assert "a/masks/m1-2.png: 1 pixel(s) shared with an earlier mask taken out" in log
    assert "3 images of train: 1 take corrected masks, 1 unchanged, 1 dropped" in log
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        archive.extractall(tmp_path / "raw")
        assert "a/masks/m1.png" not in archive.namelist()
    labels = {s.id: load_instances(s)[1] for s in list_samples(tmp_path / "raw")}
    expected_a = np.zeros((4, 4), dtype=np.uint16)
    expected_a[1:3, 1:3] = 2
    expected_a[0:2, 0:2] = 1  # the shared pixel (1, 1) stays with the earlier mask
    np.testing.assert_array_equal(labels["a"], expected_a)
    np.testing.assert_array_equal(labels["c"], _square(0, 0))  # val keeps its original
    np.testing.assert_array_equal(labels["gone"], _square(1, 1))
    assert np.asarray(Image.open(tmp_path / "raw/a/masks/m1-2.png")).max() == 255


def test_label_fixes_name_a_source_without_masks_a_missing_image_and_an_unknown_split(tmp_path):
    import zipfile

    import label_fixes

    from nuclei_unet.errors import DataError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no stage1_train/<id>/masks"):
        label_fixes.read_fixed_masks(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: neither a folder nor a zip"):
        label_fixes.read_fixed_masks(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "original.zip", "w") as archive:
        archive.writestr("a/images/a.png", b"")
    with pytest.raises(DataError, match="original.zip: no images \\['b'\\] named in the split"):
        label_fixes.build(tmp_path / "original.zip", {"b": {}}, {"a", "b"}, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a"], "val": []}))
    with pytest.raises(SystemExit, match="split.json: no split \\['tran'\\]"):
        label_fixes.main(["--original", str(tmp_path / "original.zip"), "--fixes", "x",
                          "--split", str(tmp_path / "split.json"), "--splits", "tran",
                          "--out", str(tmp_path / "out.zip")])


def test_label_fixes_drop_a_mask_inside_earlier_ones_and_name_a_size_mismatch():
    import label_fixes

    from nuclei_unet.errors import DataError

    masks = {"a.png": _png(_square(0, 0, 3)), "b.png": _png(_square(1, 1))}
    kept, notes = label_fixes.separate(masks, "x/masks")
    assert kept == {"a.png": masks["a.png"]}
    assert notes == ["x/masks/b.png: lies wholly inside earlier masks, dropped"]
    with pytest.raises(DataError, match="x/masks/b.png: mask is \\(2, 2\\), earlier ones \\(4, 4\\)"):
        label_fixes.separate({**masks, "b.png": _png(np.ones((2, 2), dtype=bool))}, "x/masks")


def test_stained_specialist_holds_out_every_nth_from_the_middle():
    from stained_specialist import held_out

    ids = [f"i{k}" for k in range(11)]
    assert held_out(ids, 5) == ([i for i in ids if i not in ("i2", "i7")], ["i2", "i7"])
    assert held_out(ids[:2], 3) == (["i0"], ["i1"])
    assert held_out(ids[:1], 3) == (["i0"], [])


def _specialist_setup(tiny_dsb: Path, tmp_path: Path, out_channels: int) -> list[str]:
    """The tiny set prepared (its three noisy images are all stained), a split that trains on
    all three, a tiny model with ``out_channels``; the benchmark's flags for them."""
    from nuclei_unet.config.schema import PrepareParams
    from nuclei_unet.data.prepare import prepare_dataset
    from nuclei_unet.model.checkpoint import save_model
    from nuclei_unet.model.unet import UNet

    prepare_dataset(tiny_dsb, tmp_path / "prepared", PrepareParams(size=32))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["img0", "img1", "img2"], "val": ["img2"], "test": []}))
    model = tmp_path / f"model{out_channels}.pt"
    torch.manual_seed(0)
    save_model(UNet((4, 8), (0.0, 0.0), out_channels=out_channels), model, {"input_size": 32})
    repo = Path(__file__).parents[1]
    return ["stained_specialist.py", "--model", str(model), "--raw", str(tiny_dsb),
            "--split", str(split), "--labels", str(tmp_path / "prepared" / "labels"),
            "--prepared", str(tmp_path / "prepared"), "--params", str(repo / "params.yaml"),
            "--hold-every", "3", "--crops-per-image", "1"]


def test_stained_specialist_without_epochs_scores_as_the_model(tiny_dsb, tmp_path, monkeypatch, capsys):
    import stained_specialist

    argv = _specialist_setup(tiny_dsb, tmp_path, 2)
    monkeypatch.setattr(sys, "argv", [*argv, "--epochs", "0", "--check-split", "val"])
    stained_specialist.main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "3 stained images: fine-tuning on 2, 1 held out"
    assert out[1].startswith("fine-tuned in ")
    rows = [json.loads(line) for line in out[2:]]
    assert [(r["images"], r["model"], r["images_stained"]) for r in rows] == [
        ("held out", "model", 1), ("held out", "specialist", 1), ("val", "model", 1),
        ("val", "specialist", 1),
    ]
    # no epoch: the copy keeps the model's weights, so it scores as the model on each image set
    for model, specialist in (rows[:2], rows[2:]):
        assert {**model, "model": "specialist"} == specialist


def test_fine_tune_changes_the_weights_and_folds_the_norms(tiny_dsb, tmp_path):
    import copy

    from stained_specialist import fine_tune

    from nuclei_unet.config.load import load_section
    from nuclei_unet.data.native import load_native
    from nuclei_unet.model.unet import UNet, fuse_batch_norm

    _specialist_setup(tiny_dsb, tmp_path, 2)
    samples = load_native(tmp_path / "prepared", ["img0", "img1"])
    params = load_section(Path(__file__).parents[1] / "params.yaml", "train").model_copy(
        update={"epochs": 1, "crops_per_image": 1, "batch_size": 2}
    )
    torch.manual_seed(0)
    net = UNet((4, 8), (0.0, 0.0), norm="batch", out_channels=2)
    before = fuse_batch_norm(copy.deepcopy(net).eval()).state_dict()
    # no epoch: the weights as predict would load them from the file
    kept = fine_tune(copy.deepcopy(net), samples, params.model_copy(update={"epochs": 0}), 0, "none")
    assert not kept.training and set(kept.state_dict()) == set(before)
    assert all(torch.equal(kept.state_dict()[k], v) for k, v in before.items())
    tuned = fine_tune(net, samples, params, 0, "none").state_dict()
    assert any(not torch.equal(tuned[k], v) for k, v in before.items())


def test_stained_specialist_names_params_that_do_not_fit_the_model(tiny_dsb, tmp_path, monkeypatch):
    import stained_specialist

    argv = _specialist_setup(tiny_dsb, tmp_path, 1)  # no edge channel; params.yaml trains one
    monkeypatch.setattr(sys, "argv", [*argv, "--epochs", "0"])
    with pytest.raises(SystemExit, match=r"model1\.pt: 1 output channel\(s\), but train\.loss bce_dice"):
        stained_specialist.main()


def test_memory_lattice_and_one_case(tiny_model):
    from predict_memory import lattice, one_case

    image = lattice(16, 2)
    # 2 x 2 squares of 8 px, a 3x3-px disc (squared distance under 4) centred in each
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 2])
    bright = image[..., 0] >= 150
    assert bright.sum() == 4 * 9 and bright[3:6, 3:6].all() and not bright[2, 4]
    assert image[~bright].max() < 20
    row = one_case(str(tiny_model), 64, 4)
    # the untrained model finds what it finds; the bookkeeping is what is checked
    assert row["lattice_nuclei"] == 16 and row["side"] == 64 and row["radius"] == 4
    assert row["peak_mb"] >= row["before_mb"] and row["segment_mb"] >= 0
    assert abs(row["segment_mb"] - (row["peak_mb"] - row["before_mb"])) <= 1  # each rounded
