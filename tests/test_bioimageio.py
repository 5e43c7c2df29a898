"""`nuclei-unet export`: a bioimage.io model package that the model zoo's own check passes."""

from __future__ import annotations

import zipfile

import pytest
import torch
import yaml

from nuclei_unet.cli import main
from nuclei_unet.model.checkpoint import save_model
from nuclei_unet.model.unet import UNet

core = pytest.importorskip("bioimageio.core", reason="the bioimageio extra is not installed")


# the exposures of stage1_train's fluorescence training images (seed split), as train records them
STAGE1 = {
    "fluorescence": {"top_min": 27.0, "top_median": 98.0, "background_max": 44.0, "background_median": 6.0},
    "stained": {"top_min": 184.0, "top_median": 192.7, "background_max": 231.0, "background_median": 181.0},
}
# a model of the resized input, and one of native crops with the edge class (two channels)
# trained on percentile-stretched images
MODELS = {
    "resized": (1, {"input_size": 32}, "none"),
    "edge": (2, {"input_size": 32, "input": "crops", "diameter": 20.0, "intensity": STAGE1,
                 "weights": "the mean of epochs 26-30"}, "percentile"),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def package(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("bmz")
    torch.manual_seed(0)
    channels, extra, normalize = MODELS[request.param]
    save_model(UNet((4, 8), (0.0, 0.0), norm="batch", out_channels=channels), root / "model.pt",
               {**extra, "epoch": 3, "val_loss": 0.5}, normalize)
    assert main(["export", str(root / "model.pt"), "--out", str(root / "m.bioimageio.zip")]) == 0
    return root / "m.bioimageio.zip"


def test_the_package_passes_the_bioimageio_model_test(package):
    summary = core.test_model(package)
    failed = [(d.name, [e.msg[:200] for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    names = {d.name for d in summary.details}
    # both weight formats reproduce the expected output from the test input
    assert "Reproduce test outputs from test inputs (pytorch_state_dict)" in names
    assert "Reproduce test outputs from test inputs (torchscript)" in names


def test_the_package_says_what_it_needs(package):
    with zipfile.ZipFile(package) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        files = set(z.namelist())
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5")
    assert set(rdf["weights"]) == {"pytorch_state_dict", "torchscript"}
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["import_from"] == "nuclei_unet.model.unet"
    (raw,) = rdf["inputs"]
    steps = [p["id"] for p in raw["preprocessing"]]
    channels = rdf["outputs"][0]["axes"][1]["channel_names"]
    readme = z_read(package, "README.md")
    if channels == ["nucleus"]:  # the model of plain pixel values, from before train.keep
        assert "the weights of epoch 3 (lowest val_loss), with validation loss 0.5000." in readme
        assert steps == ["ensure_dtype", "scale_linear", "ensure_dtype"]
        assert raw["preprocessing"][1]["kwargs"]["gain"] == pytest.approx(1 / 255)
        assert "Preprocessing: divide by 255." in readme
    else:  # the percentile-stretched one, of averaged weights
        assert "the weights of the mean of epochs 26-30, with validation loss 0.5000." in readme
        assert steps == ["ensure_dtype", "scale_range", "clip", "ensure_dtype"]
        kwargs = raw["preprocessing"][1]["kwargs"]
        assert (kwargs["min_percentile"], kwargs["max_percentile"]) == (1.0, 99.99)
        assert kwargs["axes"] == ["channel", "y", "x"]
        assert "percentiles 1 and 99.99 (over all channels together)" in readme
    assert [p["id"] for p in rdf["outputs"][0]["postprocessing"]][0] == "sigmoid"
    assert rdf["license"] == "MIT" and len(rdf["cite"]) == 2 and rdf["covers"]
    assert {"cover.png", "README.md", "test_input.npy", "test_output.npy"} <= files
    assert channels in (["nucleus"], ["nucleus", "edge"])
    if channels == ["nucleus", "edge"]:
        assert "channel `edge`" in readme and "median nucleus is 20 px" in readme
        assert ("for fluorescence images: at least 27 (median 98), their median at most 44 "
                "(median 6); stained images: at least 184 (median 192.7).") in readme
    else:
        assert "resizes whole images to that size" in readme
        assert "the training images' range was not recorded" in readme


def z_read(package, name: str) -> str:
    with zipfile.ZipFile(package) as z:
        return z.read(name).decode()


def test_export_refuses_a_two_class_model(tmp_path):
    save_model(UNet((4, 8), (0.0, 0.0), out_channels=2, head="softmax"), tmp_path / "two.pt",
               {"input_size": 32})
    assert main(["export", str(tmp_path / "two.pt"), "--out", str(tmp_path / "x.zip")]) == 1
    assert not (tmp_path / "x.zip").exists()


def test_export_never_replaces_the_model_file_a_folder_or_another_file(tmp_path, caplog):
    save_model(UNet((4, 8), (0.0, 0.0)), tmp_path / "model.pt", {"input_size": 32})
    before = (tmp_path / "model.pt").read_bytes()
    assert main(["export", str(tmp_path / "model.pt"), "--out", str(tmp_path / "." / "model.pt")]) == 1
    assert f"--out {tmp_path / '.' / 'model.pt'}: the bioimage.io package is written to a .zip file" in caplog.text
    (tmp_path / "model.zip").write_bytes(before)  # a model file that is named like a package
    assert main(["export", str(tmp_path / "model.zip"), "--out", str(tmp_path / "." / "model.zip")]) == 1
    assert f"--out {tmp_path / 'model.zip'} is the model file" in caplog.text
    assert (tmp_path / "model.pt").read_bytes() == before == (tmp_path / "model.zip").read_bytes()
    (tmp_path / "cells.png").write_bytes(b"mine")  # export --out cells.png zipped over the image
    assert main(["export", str(tmp_path / "model.pt"), "--out", str(tmp_path / "cells.png")]) == 1
    assert (tmp_path / "cells.png").read_bytes() == b"mine"
    (tmp_path / "results.zip").mkdir()
    assert main(["export", str(tmp_path / "model.pt"), "--out", str(tmp_path / "results.zip")]) == 1
    assert f"{tmp_path / 'results.zip'} is a folder: not replaced by a file" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.png", "model.pt", "model.zip", "results.zip"]


def test_a_model_file_without_an_epoch_says_so():
    from nuclei_unet.export.bioimageio import _weights_kept

    assert _weights_kept({}) == "an epoch not recorded"
