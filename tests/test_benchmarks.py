"""The benchmarks' shared loading: predict flags over the model file's settings."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from scoring import add_data_args, load_scoring  # beside the tests: benchmarks/ on sys.path


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
