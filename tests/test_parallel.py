"""Worker processes: results in order, a failing item's error unchanged and the queued items
dropped, SIGTERM in a forked worker still its default."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nuclei_unet.errors import DataError
from nuclei_unet.parallel import parallel_map


def _square(x: int) -> int:
    return x * x


def _mark(item: tuple[Path, int]) -> None:
    """Item 0 fails at once; the others leave a file and take a while."""
    folder, i = item
    if i == 0:
        raise DataError(f"img{i}.png: cannot decode image")
    time.sleep(0.02)
    (folder / f"{i}.done").touch()


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_order(workers):
    assert parallel_map(_square, list(range(50)), workers, "squares") == [x * x for x in range(50)]


def test_a_failing_item_stops_the_rest(tmp_path):
    """Executor.map cancels the chunks still queued when an item raises (or SIGTERM's
    Stopped is raised while it waits), so the error is not held back until all have run."""
    items = [(tmp_path, i) for i in range(300)]
    with pytest.raises(DataError, match=r"^img0\.png: cannot decode image$"):
        parallel_map(_mark, items, 2, "marks")
    # the chunks in flight finish; the queued ones (all 299 would take 3 s) never run
    assert len(list(tmp_path.glob("*.done"))) < 150


def test_sigterm_stops_the_stage_but_kills_a_forked_worker():
    script = """
import os, signal, time
from nuclei_unet.stage import Stopped, _stop_on_sigterm
_stop_on_sigterm()
pid = os.fork()
if pid == 0:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("worker killed:", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except Stopped:
    print("stage stopped")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.splitlines() == ["worker killed: True", "stage stopped"]
