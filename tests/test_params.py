"""params.yaml validation: every bad value is caught, named, before any work."""

from pathlib import Path

import pytest
import yaml
from conftest import REPO

from nuclei_unet.config.load import build, load_seed, load_section, read_params
from nuclei_unet.config.schema import SECTIONS, DownloadParams, TrainParams
from nuclei_unet.errors import ParamsError


def test_repository_params_are_valid():
    """params.yaml holds exactly the stages' sections and base, each valid as it ships."""
    path = REPO / "params.yaml"
    assert set(read_params(path)) == {*SECTIONS, "base"}
    assert isinstance(load_seed(path), int)
    for name in SECTIONS:
        assert isinstance(load_section(path, name), SECTIONS[name])


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_params_yaml_spells_out_the_schema_defaults(name):
    """The schema is where a default lives; params.yaml writes every key out, equal to it."""
    raw = read_params(REPO / "params.yaml")[name]
    assert raw == SECTIONS[name]().model_dump(mode="json")


def _with(tmp_path: Path, section: str, key: str, value) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "optimizer", "rmsprop", r"train.optimizer: 'rmsprop' is not one of adam, sgd"),
        ("train", "lr", "fast", r"train.lr: expected a number"),
        ("train", "lr", -1.0, r"train.lr: must be > 0"),
        ("train", "batch_size", 2.5, r"train.batch_size: expected an integer"),
        ("train", "epochs", True, r"train.epochs: expected an integer"),
        ("train", "learning_rate", 0.1, r"train.learning_rate: unknown key"),
        ("prepare", "size", 100, r"prepare.size: must be a positive multiple of 16"),
        ("prepare", "mask_rule", "bool", r"prepare.mask_rule: 'bool' is not one of area, any"),
        ("split", "val_fraction", 1.0, r"split.val_fraction: must be in \(0, 1\)"),
        ("model", "dropouts", [0.1, 0.2], r"model.dropouts: needs one value per level"),
        ("download", "source", "ftp", r"download.source: 'ftp' is not one of"),
        ("download", "retries", -1, r"download.retries: must be >= 0"),
        ("predict", "threshold", 1.5, r"predict.threshold: must be in \(0, 1\)"),
        # an infinite scale crashed the predict stage deep inside the resize
        ("predict", "tile_scale", float("inf"), r"^predict.tile_scale: expected a finite number, got inf$"),
        ("predict", "scales", [1.0, float("nan")], r"^predict.scales\[1\]: expected a finite number, got nan$"),
        ("train", "lr", float("nan"), r"^train.lr: expected a finite number, got nan$"),
    ],
)
def test_bad_values_are_named(tmp_path, section, key, value, message):
    path = _with(tmp_path, section, key, value)
    with pytest.raises(ParamsError, match=message):
        load_section(path, section)


def test_zip_source_needs_a_path():
    with pytest.raises(ParamsError, match="download.path: required when source is zip"):
        build(DownloadParams, {"source": "zip"}, "download")


@pytest.mark.parametrize("url", [None, "ftp://example.org/x.zip", "x.zip"])
def test_url_source_needs_an_http_or_file_url(url):
    with pytest.raises(ParamsError, match="download.url: an http, https or file URL is required"):
        build(DownloadParams, {"source": "url", "url": url}, "download")


def test_patience_null_disables_early_stopping():
    assert build(TrainParams, {"patience": None}, "train").patience is None


def test_missing_file_and_section(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_section(tmp_path / "nope.yaml", "train")
    (tmp_path / "p.yaml").write_text("base: {seed: 1}\n")
    with pytest.raises(ParamsError, match="section 'train' is missing"):
        load_section(tmp_path / "p.yaml", "train")


@pytest.mark.parametrize("text, message", [
    ("train: [1\n", r"p\.yaml: not valid YAML \(ParserError\)"),
    ("- train\n- base\n", r"p\.yaml: expected a mapping of sections at the top level"),
    ("train: 3\n", r"^train: expected a mapping, got 3$"),
])
def test_malformed_params_files_are_named(tmp_path, text, message):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_section(tmp_path / "p.yaml", "train")


@pytest.mark.parametrize("text, message", [
    ("base: {seed: 7}\n", None),
    ("train: {}\n", r"p\.yaml: base\.seed is missing"),
    ("base: 42\n", r"p\.yaml: base\.seed is missing"),
    ("base: {seed: true}\n", r"^base\.seed: expected an integer, got True$"),
    ("base: {seed: '42'}\n", r"^base\.seed: expected an integer, got '42'$"),
])
def test_the_shared_seed(tmp_path, text, message):
    (tmp_path / "p.yaml").write_text(text)
    if message is None:
        assert load_seed(tmp_path / "p.yaml") == 7
        return
    with pytest.raises(ParamsError, match=message):
        load_seed(tmp_path / "p.yaml")
