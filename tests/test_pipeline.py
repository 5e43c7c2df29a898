"""End to end: dvc repro, an experiment, metrics diff and plots on a tiny copy of the repo."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

from nuclei_unet.config.load import load_section
from nuclei_unet.export.plots_page import write_page
from nuclei_unet.metrics.dsb import ERROR_KINDS

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY_PARAMS = {
    "download": {"synthetic": {"count": 14, "min_nuclei": 3, "max_nuclei": 12}},
    "prepare": {"size": 32, "workers": 2},
    "split": {"val_fraction": 0.25},
    "model": {"widths": [4, 8, 16], "dropouts": [0.0, 0.0, 0.0]},
    # crops and tiles of 32 px: the native path's default at a tiny model's scale
    "train": {"epochs": 3, "batch_size": 4, "crop_size": 32, "crops_per_image": 1},
    # no TTA: an untrained tiny model can settle on a 4x scale, and 8 views of that are slow
    "predict": {"tile_size": 32, "tile_overlap": 8, "scale_passes": 2, "tta": False},
    "evaluate": {"n_samples": 2},
}


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        base[key] = _merge(base[key], value) if isinstance(value, dict) else value
    return base


def dvc_env(**extra: str) -> dict[str, str]:
    """The environment the project's commands run in: this venv's bin first, no analytics."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1", **extra}


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=dvc_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC copy of the project with tiny params, already reproduced once."""
    root = tmp_path_factory.mktemp("repo")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("stages", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    write_page(root / ".dvc" / "offline_plots.html")  # the page template the config names
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY_PARAMS)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], root)
    # a repo-local identity: experiments commit, and CI's machine may have no global one
    run(["git", "config", "user.name", "nuclei-unet test"], root)
    run(["git", "config", "user.email", "test@nuclei-unet.invalid"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    run([str(BIN / "dvc"), "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "repro"], root)
    return root


def test_repro_writes_every_output(repo):
    for path in ("data/raw", "data/prepared/dataset.npz", "data/split.json", "models/model.pt",
                 "data/predictions/predictions.npz", "data/predictions/full/submission.csv",
                 "metrics/per_image.csv", "metrics/dsb_curve.csv", "metrics/plots/confusion_val.png",
                 "metrics/plots/samples_val.png", "metrics/plots/samples_test.png",
                 "metrics/train/plots/metrics/val_loss.tsv"):
        assert (repo / path).exists(), path
    assert len(list((repo / "data/prepared/native").glob("*.npz"))) == 14  # the native set
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    # the default model trains on native crops: it is scored where it predicted whole images
    assert set(metrics) == {"val", "test"}
    assert 0.0 <= metrics["val"]["iou_fg"] <= 1.0
    # full resolution: the DSB metric and instance outputs for the val and test images
    assert 0.0 <= metrics["val"]["dsb_map"] <= 1.0 and "f1_50" in metrics["test"]
    split_ids = json.loads((repo / "data/split.json").read_text())
    for k in split_ids["val"] + split_ids["test"]:
        assert (repo / "data/predictions/full" / f"{k}_labels.png").is_file()
    # an instance panel per val sample (n_samples: 2) and test image, at the image's size
    panels = sorted(p.name for p in (repo / "metrics/plots/instances").iterdir())
    assert len(panels) == 4 and sum(p.startswith("test_") for p in panels) == 2
    # headline figures only; the rest is in the details file
    headline = list(metrics["val"])
    assert headline[:4] == ["iou_fg", "dice_fg", "dsb_map", "f1_50"]
    assert headline[-2:] == ["iou_mean", "dice_mean"]
    kinds = set(pd.read_csv(repo / "metrics/per_image.csv").query("split == 'val'")["kind"])
    assert set(headline[4:-2]) == {f"dsb_map_{k}" for k in kinds} and kinds
    details = json.loads((repo / "metrics/evaluate_details.json").read_text())
    cm = details["val"]
    assert cm["tp"] + cm["fp"] + cm["fn"] + cm["tn"] == pytest.approx(1.0)
    assert details["test"]["images"] == 2 and details["val"]["tp_50"] >= 0
    # the error kinds of each val image sum to the split's, and are written as whole numbers
    val_rows = pd.read_csv(repo / "metrics/per_image.csv").query("split == 'val'")
    for kind in ERROR_KINDS:
        assert val_rows[kind].dtype.kind == "i" and val_rows[kind].sum() == details["val"][kind]
    train = json.loads((repo / "metrics/train/metrics.json").read_text())
    assert set(train) == {"best_epoch", "best_val_loss", "best_val_iou", "best_val_dice", "step"}
    train_details = json.loads((repo / "metrics/train_details.json").read_text())
    assert train_details["epochs_run"] == 3 and train_details["parameters"] > 0
    split = json.loads((repo / "data/split.json").read_text())
    assert [len(split[k]) for k in ("train", "val", "test")] == [9, 3, 2]


def test_command_segments_as_the_predict_stage_did(repo, tmp_path):
    """`nuclei-unet predict` with no flag but --model writes the stage's files, byte for byte."""
    split = json.loads((repo / "data/split.json").read_text())
    ids = split["val"] + split["test"]
    images = [str(repo / "data/raw" / k / "images" / f"{k}.png") for k in ids]
    run([str(BIN / "nuclei-unet"), "predict", *images, "--model", "models/model.pt",
         "--out", str(tmp_path / "out")], repo)
    for k in ids:
        for suffix in ("_mask.png", "_labels.png"):
            stage = (repo / "data/predictions/full" / f"{k}{suffix}").read_bytes()
            assert (tmp_path / "out" / f"{k}{suffix}").read_bytes() == stage, k + suffix


def test_nothing_to_do_after_repro(repo):
    out = run([str(BIN / "dvc"), "status"], repo)
    assert "up to date" in out


def test_experiment_metrics_diff_and_plots(repo):
    out = run([str(BIN / "dvc"), "exp", "run", "-n", "sgd", "-S", "train.optimizer=sgd"], repo)
    # a train param reruns train and what depends on it, nothing upstream
    ran = {s for s in ("download", "prepare", "split", "train", "predict", "evaluate")
           if f"Running stage '{s}'" in out}
    assert ran == {"train", "predict", "evaluate"}, out
    shown = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], repo))
    text = json.dumps(shown)
    assert '"sgd"' in text and '"optimizer": "sgd"' in text
    # the workspace now holds the sgd run: diff it against the committed adam baseline
    diff = json.loads(run([str(BIN / "dvc"), "metrics", "diff", "--json", "--all"], repo))
    assert "metrics/evaluate.json" in diff and "val.iou_fg" in diff["metrics/evaluate.json"]
    params = json.loads(run([str(BIN / "dvc"), "params", "diff", "--json"], repo))
    assert params["params.yaml"]["train.optimizer"] == {"old": "adam", "new": "sgd"}
    run([str(BIN / "dvc"), "plots", "show", "-o", "plots_html"], repo)
    html = (repo / "plots_html" / "index.html").read_text()
    for title in ("Loss", "Validation IoU and Dice", "DSB2018 score", "confusion_val.png",
                  "instances/val_", "instances/test_"):
        assert title in html, title
    assert "cdn.jsdelivr.net" not in html  # the offline template: Vega is inside the page


def test_seed_recipe_and_nested_overrides(repo):
    dvc = str(BIN / "dvc")
    # the seed notebook's exact recipe is the one line that `make seed` runs, on top of the
    # committed defaults (an earlier test's experiment left its params in the workspace)
    run(["git", "checkout", "-q", "--", "params.yaml"], repo)
    recipe = run(["make", "-s", "-C", str(REPO), "seed-recipe"], repo).split()
    out = run([dvc, "exp", "run", "-n", "seed", *recipe], repo)
    assert "Running stage 'prepare'" in out and "Running stage 'evaluate'" in out
    # known answer: the seed notebook's recipe, read off the notebook
    path = repo / "params.yaml"
    assert load_section(path, "prepare").mask_rule == "any"
    assert load_section(path, "model").norm == "none"
    train = load_section(path, "train")
    assert (train.optimizer, train.lr, train.loss, train.scheduler) == ("adam", 1e-3, "bce", "none")
    assert (train.epochs, train.patience, train.weight_decay) == (40, 2, 0.0)
    assert train.keep == "best"  # the figures every release gave (the notebook's own: last)
    assert not any(train.augment.model_dump().values())  # every augmentation off
    predict = load_section(path, "predict")
    assert (predict.threshold, predict.tta, predict.min_size) == (0.5, False, 10)
    assert predict.exposure == "keep"  # the seed fed every image as it is
    assert train.precision == predict.precision == "fp32"  # Keras' float32
    run(["git", "checkout", "-q", "--", "params.yaml"], repo)
    # nested keys and lists
    run([dvc, "exp", "run", "-n", "nested", "-S", "train.augment.flip=true",
         "-S", "model.dropouts=[0.0,0.1,0.0]", "-S", "train.loss=bce_dice",
         "-S", "model.norm=batch", "-S", "train.scheduler=cosine"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["augment"]["flip"] is True
    assert params["model"]["dropouts"] == [0.0, 0.1, 0.0] and params["model"]["norm"] == "batch"
    shown = json.dumps(json.loads(run([dvc, "exp", "show", "--json"], repo)))
    assert '"seed"' in shown and '"nested"' in shown and '"mask_rule": "any"' in shown


def _exp_show(repo: Path, *flags: str) -> str:
    """``dvc exp show`` as a 160-column terminal prints it."""
    proc = subprocess.run([str(BIN / "dvc"), "exp", "show", "--no-pager", *flags], cwd=repo,
                          env=dvc_env(COLUMNS="160"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_exp_show_fits_a_terminal(repo):
    """After the experiments above, the table a user compares them with is readable on a
    160-column terminal: the names and the val headline figures, none hidden."""
    names = ("val.iou_fg", "val.dice_fg", "val.dsb_map")
    # which of them differ between the runs (--only-changed drops a column that does not:
    # the tiny runs' DSB score can be 0.0 in all of them)
    rows = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], repo))
    runs = [r for row in rows for r in [row] + [e["revs"][0] for e in row["experiments"] or []]]
    values = {
        name: {json.dumps(r["data"]["metrics"]["metrics/evaluate.json"]["data"]["val"].get(name[4:]))
               for r in runs}
        for name in names
    }
    changed = [name for name in names if len(values[name]) > 1]
    assert {"val.iou_fg", "val.dice_fg"} <= set(changed)
    table = _exp_show(repo, "--only-changed")
    assert max(len(line) for line in table.splitlines()) <= 160
    header = next(line for line in table.splitlines() if "Experiment" in line)
    # DVC hides columns from the right when short of room ("…"): the val headline is first
    shown = header.split("…")[0]
    for name in changed:
        assert name in shown, (name, table)
    for name in ("[sgd]", "[seed]", "[nested]"):
        assert name in table, (name, table)


def test_remote_push_delete_pull(repo, tmp_path):
    dvc = str(BIN / "dvc")
    run([dvc, "remote", "add", "--local", "-d", "scratch", str(tmp_path / "remote")], repo)
    run([dvc, "push"], repo)
    # lose the cache and every output, then get them back from the remote
    for path in (".dvc/cache", "data/raw", "data/prepared", "data/predictions", "models/model.pt",
                 "models/trained.pt"):
        target = repo / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert "deleted" in run([dvc, "status"], repo)
    run([dvc, "pull"], repo)
    assert "up to date" in run([dvc, "status"], repo)
    assert (repo / "models/model.pt").is_file() and (repo / "data/prepared/dataset.npz").is_file()


def test_queued_sweep_runs_two_at_a_time(repo):
    dvc = str(BIN / "dvc")
    for name, lr in (("lr-a", "0.002"), ("lr-b", "0.004")):
        run([dvc, "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}"], repo)
    # the workers outlive `queue start` and inherit its stdout: with a pipe there, waiting for
    # the command meant waiting for a worker (a CI run hung 600 s on one that stayed idle);
    # a log file instead, and the workers stopped at the end whatever happens
    with open(repo.parent / "queue_start.log", "w") as log:
        subprocess.run([dvc, "queue", "start", "--jobs", "2"], cwd=repo, env=dvc_env(), stdout=log,
                       stderr=subprocess.STDOUT, timeout=120, check=True)
    try:
        deadline = time.time() + 480
        while time.time() < deadline:
            status = run([dvc, "queue", "status"], repo)
            if not any(word in status for word in ("Queued", "Running")):
                break
            time.sleep(3)
    finally:
        run([dvc, "queue", "stop"], repo)
    assert "Failed" not in status and "Queued" not in status and "Running" not in status, status
    shown = json.dumps(json.loads(run([dvc, "exp", "show", "--json"], repo)))
    for name in ("lr-a", "lr-b"):
        assert f'"{name}"' in shown, name
    assert '"lr": 0.004' in shown
