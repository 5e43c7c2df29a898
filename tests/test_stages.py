"""Stage scripts end bad input with one plain line, before any work, and write nothing."""

import subprocess
import sys
import zipfile

import yaml
from conftest import REPO


def _stage(name: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{name}.py"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_unknown_optimizer_fails_before_reading_data(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["optimizer"] = "adamw"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage("train", "--prepared", "nowhere", "--split", "nowhere.json", "--trained",
                  "m.pt", "--live", "live", "--details", "d.json", "--resume", "r.pt", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "[train] error: train.optimizer: 'adamw' is not one of adam, sgd"
    )
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_missing_dataset_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    proc = _stage("prepare", "--raw", "missing", "--out", "prepared", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "[prepare] error: missing: dataset folder not found"
    assert not (tmp_path / "prepared").exists()


def test_zip_with_wrong_checksum(tmp_path, tiny_dsb):
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        for f in sorted(tiny_dsb.rglob("*.png")):
            zf.write(f, str(f.relative_to(tiny_dsb)))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"].update(source="zip", path="d.zip", sha256="ab" * 32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage("download", "--out", "data/raw", cwd=tmp_path)
    assert proc.returncode == 1
    assert "error: d.zip: sha256 is" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "raw").exists()


def test_a_finished_stage_reports_its_wall_time(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["synthetic"].update(count=2, max_nuclei=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage("download", "--out", "data/raw", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("[download] done in ") and last.endswith(" s")
    assert len(list((tmp_path / "data" / "raw").iterdir())) == 2


def test_a_line_logged_under_a_progress_bar_starts_its_own_line():
    # as when predict fits an image's exposure while its progress bar is drawn: the line is
    # written where the bar was (the bar cleared, then redrawn below), never after the bar
    code = (
        "import logging\n"
        "from tqdm import tqdm\n"
        "from nuclei_unet.stage import console_logging\n"
        "with console_logging('demo'):\n"
        "    for i in tqdm(range(2), desc='images'):\n"
        "        logging.getLogger('nuclei_unet.model.exposure').info('image %d fitted', i)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    pieces = [p.strip() for p in proc.stderr.replace("\r", "\n").split("\n")]
    said = [p for p in pieces if "fitted" in p]
    assert said == ["[demo] image 0 fitted", "[demo] image 1 fitted"]
    # the bar's own pieces stay apart from them
    assert any(p.startswith("images: 100%") for p in pieces)
