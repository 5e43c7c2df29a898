"""The benchmarks' shared loading: predict flags over the model file's settings."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

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


def test_exposure_changes_are_a_cameras_hand_computed():
    from exposure import exposed

    image = np.array([[[0, 100, 255]]], np.uint8)
    truth = np.ones((1, 1), np.uint16)
    assert exposed("gain", 0.5)(image, truth)[0].tolist() == [[[0, 50, 128]]]  # 127.5 rounds up
    assert exposed("offset", 40.0)(image, truth)[0].tolist() == [[[40, 140, 255]]]  # clipped
    # 255 (100 / 255) ** 2 = 39.2
    changed, same = exposed("gamma", 2.0)(image, truth)
    assert changed.tolist() == [[[0, 39, 255]]] and same is truth


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
