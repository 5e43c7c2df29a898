"""`dvc plots show` renders with no network: checked the way a user would see it, in headless
Chromium with every outside address blocked (skipped where Chromium is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nuclei_unet.export.plots_page import write_page

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)
BIN = Path(sys.executable).parent
CURVE = "step\tloss\n" + "".join(f"{i}\t{1.0 / (i + 1):.4f}\n" for i in range(20))
DVC_YAML = """plots:
  - Loss:
      template: linear
      x: step
      y:
        loss.tsv: loss
"""


def _offline(cmd: list[str]) -> list[str]:
    """``cmd`` in a network namespace of its own (no interface but loopback) where allowed."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n", *cmd]
    return cmd


def _chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        # belt and braces with the namespace: every host name fails, no proxy is reachable
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
        "--virtual-time-budget=15000", "--window-size=900,700", *args, page.as_uri(),
    ]
    return subprocess.run(_offline([CHROMIUM, *flags]), capture_output=True, text=True, timeout=120)


def _plots_page(root: Path, template: bool) -> Path:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    root.mkdir()
    (root / "loss.tsv").write_text(CURVE)
    (root / "dvc.yaml").write_text(DVC_YAML)
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, env=env, check=True)
    if template:  # as the repository sets it up
        write_page(root / ".dvc" / "offline_plots.html")
        with open(root / ".dvc" / "config", "a") as fh:
            fh.write("[plots]\n    html_template = offline_plots.html\n")
    subprocess.run([str(BIN / "dvc"), "plots", "show", "-o", "out"], cwd=root, env=env,
                   check=True, capture_output=True)
    return root / "out" / "index.html"


def test_the_plots_page_draws_its_charts_offline(tmp_path):
    page = _plots_page(tmp_path / "ours", template=True)
    dom = _chromium(page, "--dump-dom").stdout
    assert 'class="marks"' in dom, dom[-2000:]  # vega-embed drew the chart (canvas or svg)
    shot = tmp_path / "page.png"
    _chromium(page, f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert (pixels < 128).mean() > 0.002  # axes, labels and the curve: not a blank page


def test_dvcs_own_page_stays_blank_offline(tmp_path):
    """The control: without the template the same page loads Vega from a CDN and draws nothing,
    so the check above can fail."""
    page = _plots_page(tmp_path / "cdn", template=False)
    assert "cdn.jsdelivr.net" in page.read_text()
    assert 'class="marks"' not in _chromium(page, "--dump-dom").stdout
