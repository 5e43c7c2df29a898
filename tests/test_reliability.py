"""Interruption, determinism and multi-process training, through the train stage itself."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO

from nuclei_unet.config.schema import PrepareParams, SplitParams, SyntheticParams
from nuclei_unet.data.prepare import prepare_dataset
from nuclei_unet.data.split import split_ids
from nuclei_unet.data.synthetic import write_dataset
from nuclei_unet.cli import main
from nuclei_unet.errors import NucleiError
from nuclei_unet.io.files import _alive, atomic_path, remove_stale_temporaries, write_json
from nuclei_unet.io.prepared import load_prepared

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A tiny prepared dataset, its split and a params file for quick training."""
    root = tmp_path_factory.mktemp("train")
    write_dataset(root / "raw", 3, SyntheticParams(count=16, min_nuclei=3, max_nuclei=10), 1)
    prepare_dataset(root / "raw", root / "prepared", PrepareParams(size=32, workers=1))
    write_json(root / "split.json", split_ids(load_prepared(root / "prepared").ids, SplitParams(n_test=2, val_fraction=0.25)))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = {"widths": [8, 16, 32], "dropouts": [0.1, 0.1, 0.2]}
    params["train"].update(epochs=12, batch_size=4, patience=None, threads=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _train_cmd(root: Path, name: str, params: str = "params.yaml") -> list[str]:
    return [sys.executable, str(REPO / "stages" / "train.py"), "--params", params,
            "--prepared", "prepared", "--split", "split.json", "--trained", f"{name}/model.pt",
            "--live", f"{name}/live", "--details", f"{name}/details.json",
            "--resume", f"{name}/resume.pt"]


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def test_killed_run_resumes_to_the_same_weights(workdir):
    subprocess.run(_train_cmd(workdir, "straight"), cwd=workdir, env=_env(), check=True,
                   capture_output=True)
    proc = subprocess.Popen(_train_cmd(workdir, "killed"), cwd=workdir, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = workdir / "killed" / "resume.pt"
    deadline = time.time() + 120
    # kill it once a few epochs are checkpointed
    while time.time() < deadline:
        if resume.is_file() and torch.load(resume, weights_only=True)["epoch"] >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # it really was interrupted, not finished
    epoch_at_kill = torch.load(resume, weights_only=True)["epoch"]
    assert 3 <= epoch_at_kill < 12
    out = subprocess.run(_train_cmd(workdir, "killed"), cwd=workdir, env=_env(), check=True,
                         capture_output=True, text=True)
    assert f"resuming after epoch {epoch_at_kill}" in out.stderr
    a, b = _weights(workdir / "straight" / "model.pt"), _weights(workdir / "killed" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not resume.exists()  # removed once training ended
    # the resumed run's curves hold every epoch, once
    rows = (workdir / "killed" / "live" / "plots" / "metrics" / "val_loss.tsv").read_text().splitlines()
    assert len(rows) == 1 + 12
    straight = json.loads((workdir / "straight" / "live" / "metrics.json").read_text())
    killed = json.loads((workdir / "killed" / "live" / "metrics.json").read_text())
    assert killed["best_val_loss"] == straight["best_val_loss"]


def test_same_params_same_metrics_twice(workdir):
    for name in ("det1", "det2"):
        subprocess.run(_train_cmd(workdir, name), cwd=workdir, env=_env(), check=True,
                       capture_output=True)
    m1 = json.loads((workdir / "det1" / "live" / "metrics.json").read_text())
    m2 = json.loads((workdir / "det2" / "live" / "metrics.json").read_text())
    assert set(m1) == {"best_epoch", "best_val_loss", "best_val_iou", "best_val_dice", "step"}
    assert m1 == m2
    # and every epoch's figures
    for name in ("loss.tsv", "val_loss.tsv"):
        one, two = ((workdir / d / "live" / "plots" / "metrics" / name).read_text() for d in ("det1", "det2"))
        assert len(one.splitlines()) == 1 + 12 and one == two, name


def test_two_processes_with_ddp(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(processes=2, epochs=3)
    (workdir / "ddp.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run(_train_cmd(workdir, "ddp", "ddp.yaml"), cwd=workdir, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 process(es)" in out.stderr
    details = json.loads((workdir / "ddp" / "details.json").read_text())
    assert details["processes"] == 2 and details["epochs_run"] == 3
    # only the main process logs: one row per epoch, not two
    rows = (workdir / "ddp" / "live" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert len(rows) == 1 + 3
    assert (workdir / "ddp" / "model.pt").is_file()


def _start_download(folder: Path, count: int, until_writing: bool) -> subprocess.Popen:
    """The download stage writing ``count`` synthetic images to ``folder/raw``, returned at
    once or, ``until_writing``, once its temporary holds an image."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["synthetic"]["count"] = count
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    # Ctrl-C reaches a terminal's foreground job with SIGINT at its default; a shell starts
    # background jobs (a CI runner's, `cmd &`) with SIGINT ignored, and Python then raises no
    # KeyboardInterrupt, so the child gets the default back whatever ran this suite
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "stages" / "download.py"), "--params", "params.yaml",
         "--out", "raw"], cwd=folder, env=_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        start_new_session=True,  # a group of its own, so that a test can kill all of it
    )
    deadline = time.time() + 120
    while (until_writing and time.time() < deadline
           and not list(folder.glob(".raw.*.tmp/raw/*/images/*.png"))):
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("signum, how", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_a_stopped_stage_leaves_no_partial_output(tmp_path, signum, how):
    """`kill` (SIGTERM) or Ctrl-C mid-write: one line, the shell's exit status, no temporary
    beside the output, and the earlier output the stage would have replaced still there."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "keep.txt").write_text("the last run's data")
    # 2,000 images: minutes of work, stopped long before the end
    proc = _start_download(tmp_path, 2000, until_writing=True)
    assert list(tmp_path.glob(".raw.*.tmp")), "the stage never started writing"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert f"[download] stopped ({how}); no partial output left" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw"]
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["keep.txt"]


def test_the_next_run_removes_what_kill_9_left(tmp_path):
    """SIGKILL cannot be caught: the temporary stays, and the stage's next run removes it,
    and nothing else that looks like one (not its kind, or its writer still running)."""
    proc = _start_download(tmp_path, 2000, until_writing=True)
    (leftover,) = tmp_path.glob(".raw.*.tmp")
    os.killpg(proc.pid, signal.SIGKILL)  # the stage and its worker processes, as `kill -9 -PGID`
    proc.communicate(timeout=60)
    assert leftover.is_dir()
    dead = leftover.name.split(".")[2].split("@")[0]
    others = [
        tmp_path / ".raw.notes.tmp",  # not a temporary's name
        tmp_path / f".raw.{os.getpid()}@{socket.gethostname()}.abcdefgh.tmp",  # writer running
        tmp_path / f".raw.{dead}@another-host.abcdefgh.tmp",  # a shared disk's other host
    ]
    for path in others:
        path.mkdir()
    rerun = _start_download(tmp_path, 2, until_writing=False)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert f"removed {leftover.name}, left by a run that was killed" in err
    kept = [*others, tmp_path / "params.yaml", tmp_path / "raw"]
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert len(list((tmp_path / "raw").iterdir())) == 2


def test_another_users_running_writer_keeps_its_temporary(tmp_path, monkeypatch):
    """On a shared machine the signal check on another user's process is refused
    (PermissionError): that process exists, so its temporary is not stale."""
    theirs = tmp_path / f".raw.4242@{socket.gethostname()}.abcdefgh.tmp"
    theirs.mkdir()

    def refused(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refused)
    assert remove_stale_temporaries(tmp_path) == [] and theirs.is_dir()
    monkeypatch.undo()
    assert _alive(os.getpid()) and not _alive(2**22 + 1)  # above Linux's largest pid


def test_a_folder_is_swept_once_per_process(tmp_path, monkeypatch):
    """N outputs written to one folder list it once for stale temporaries, not N times (a
    user's folder of thousands of images would make that quadratic)."""
    listed: list[Path] = []
    real_scandir = os.scandir

    def spy(path):
        if isinstance(path, (str, os.PathLike)):  # shutil.rmtree lists by file descriptor
            listed.append(Path(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    for i in range(5):
        write_json(tmp_path / f"{i}.json", i)
    assert [path for path in listed if path == tmp_path] == [tmp_path]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.json" for i in range(5)]


def test_a_file_never_replaces_a_folder_nor_a_folder_a_file(tmp_path, caplog):
    """`nuclei-unet plots-template --out my_folder` replaced the user's folder, and all in it,
    by the page; now it is one error line and the folder stays. A stage's folder output still
    replaces the folder of its name."""
    folder = tmp_path / "my_folder"
    folder.mkdir()
    (folder / "thesis.txt").write_text("mine")
    assert main(["plots-template", "--out", str(folder)]) == 1  # refused by its name
    assert f"--out {folder}: the page template is written to a .html or .htm file" in caplog.text
    (tmp_path / "page.html").mkdir()  # a folder, whatever its name says
    assert main(["plots-template", "--out", str(tmp_path / "page.html")]) == 1
    assert f"{tmp_path / 'page.html'} is a folder: not replaced by a file" in caplog.text
    (tmp_path / "page.html").rmdir()
    assert [p.name for p in folder.iterdir()] == ["thesis.txt"]
    (tmp_path / "notes.txt").write_text("mine too")
    with pytest.raises(NucleiError, match="notes.txt is a file: not replaced by a folder"):
        with atomic_path(tmp_path / "notes.txt") as tmp:
            tmp.mkdir()
    with atomic_path(folder) as tmp:  # a folder by a folder: the stages' outputs
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_folder", "notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine too"


@pytest.mark.parametrize("writes", ["file", "folder"])
@pytest.mark.parametrize("points_to", ["file", "folder"])
def test_a_link_is_replaced_itself_never_what_it_points_to(tmp_path, writes, points_to):
    """DVC's symlink cache links outputs to its cache files, and users link a big output folder
    to another disk: a write replaces the link, never writes through it nor deletes its target
    (which would corrupt the cache or lose the other disk's data)."""
    kept = tmp_path / "kept"
    if points_to == "folder":
        kept.mkdir()
        (kept / "old.txt").write_text("theirs")
    else:
        kept.write_text("theirs")
    link = tmp_path / "out"
    link.symlink_to(kept, target_is_directory=points_to == "folder")
    with atomic_path(link) as tmp:
        if writes == "folder":
            tmp.mkdir()
            (tmp / "new.txt").write_text("ours")
        else:
            tmp.write_text("ours")
    assert not link.is_symlink()
    assert (link / "new.txt" if writes == "folder" else link).read_text() == "ours"
    assert (kept / "old.txt" if points_to == "folder" else kept).read_text() == "theirs"


def test_an_output_named_as_another_kind_of_file_is_refused(tmp_path, caplog):
    """`plots-template --out cells.png` wrote the page over the user's image; an output file
    must be named for what it holds (export's `.zip`, tested in test_bioimageio.py)."""
    image = tmp_path / "cells.png"
    image.write_bytes(b"\x89PNG mine")
    assert main(["plots-template", "--out", str(image)]) == 1
    assert (f"error: --out {image}: the page template is written to a .html or .htm file; "
            "give such a name") in caplog.text
    assert image.read_bytes() == b"\x89PNG mine"
    assert main(["plots-template", "--out", str(tmp_path / "Page.HTM")]) == 0
    assert "vega" in (tmp_path / "Page.HTM").read_text()


def test_an_output_that_cannot_be_written_is_one_error_naming_it(tmp_path):
    """A file where a folder of the path should be (or a full disk, a read-only folder): a
    NucleiError naming the output, which a stage or the command shows as one line."""
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(NucleiError, match=r"taken/out.json: not written \(File exists: .*taken\)"):
        write_json(tmp_path / "taken" / "out.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
