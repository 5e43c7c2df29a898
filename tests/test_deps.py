"""dvc.yaml's code deps are complete and exact: every module of src/ that a stage script
imports (directly or not) is covered, nothing else is listed, and DVC reruns exactly the stages
that import an edited module."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "nuclei_unet"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
BIN = Path(sys.executable).parent


def module_file(name: str) -> Path | None:
    """The file of module ``name`` (``nuclei_unet.io.files``) in src/, or None outside it."""
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports, as dotted names; ``from m import x`` gives ``m`` and
    ``m.x`` (x may be a submodule)."""
    names = set()
    package = ".".join(path.relative_to(SRC).parent.parts) if SRC in path.parents else ""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def closure(script: Path) -> set[Path]:
    """The files of src/ that running ``script`` imports, package ``__init__``s included."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            parts = name.split(".")
            if parts[0] != "nuclei_unet":
                continue
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                found = module_file(".".join(parts[:i]))
                if found is not None:
                    todo.append(found)
    return {p for p in seen if SRC in p.parents}


def script_of(stage: dict) -> Path:
    return REPO / re.search(r"python (stages/\w+\.py)", stage["cmd"]).group(1)


def code_deps(stage: dict) -> list[Path]:
    """The deps of a stage that are code: stages/*.py and paths in src/."""
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
    return [REPO / d for d in deps if d.startswith(("src/", "stages/"))]


def covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


def unit_of(path: Path) -> Path:
    """The dep that should cover ``path``: its subpackage folder, or the top-level module."""
    rel = path.relative_to(PACKAGE)
    return PACKAGE / rel.parts[0] if len(rel.parts) > 1 else path


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_module_is_a_dep(name):
    stage = STAGES[name]
    deps = code_deps(stage)
    missing = sorted(str(p.relative_to(REPO)) for p in closure(script_of(stage)) if not covered(p, deps))
    assert not missing, f"{name} imports modules its deps do not cover: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_no_dep_is_listed_that_the_stage_does_not_import(name):
    stage = STAGES[name]
    needed = {unit_of(p) for p in closure(script_of(stage))} | {script_of(stage)}
    extra = sorted(str(d.relative_to(REPO)) for d in code_deps(stage) if d not in needed)
    assert not extra, f"{name} lists deps it never imports (needless reruns): {extra}"


def test_the_closure_follows_imports_through_packages():
    """Known answer: the split stage reaches the split code and the prepared-data reader, but
    neither the network nor the training code."""
    reached = {str(p.relative_to(PACKAGE)) for p in closure(REPO / "stages" / "split.py")}
    assert {"data/split.py", "io/prepared.py", "io/__init__.py", "__init__.py"} <= reached
    assert not any(p.startswith(("model/", "train/", "infer/")) for p in reached)


def _dvc(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def code_only_repo(tmp_path_factory) -> Path:
    """A copy of the project whose stages keep only their code deps and do nothing, locked."""
    root = tmp_path_factory.mktemp("deps")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    stages = {
        name: {"cmd": "true", "deps": [str(p.relative_to(REPO)) for p in code_deps(stage)]}
        for name, stage in STAGES.items()
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    _dvc(["init", "--no-scm", "-q"], root)
    _dvc(["repro", "-q"], root)
    return root


def _stages_marked(root: Path, edited: Path) -> set[str]:
    """The stages ``dvc status`` reports after appending a comment to ``edited``."""
    original = edited.read_text()
    edited.write_text(original + "\n# edited by test_deps\n")
    # byte code written beside an edited module must not count as an edit
    (edited.parent / "__pycache__").mkdir(exist_ok=True)
    (edited.parent / "__pycache__" / "stale.pyc").write_bytes(b"\0")
    try:
        return set(json.loads(_dvc(["status", "--json"], root) or "{}"))
    finally:
        edited.write_text(original)
        shutil.rmtree(edited.parent / "__pycache__")


UNITS = sorted({unit_of(p) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts})


@pytest.mark.slow
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: str(u.relative_to(PACKAGE)))
def test_dvc_reruns_exactly_the_stages_that_import_an_edited_module(code_only_repo, unit):
    modules = sorted(unit.rglob("*.py")) if unit.is_dir() else [unit]
    target = modules[-1]
    importers = {
        name for name, stage in STAGES.items()
        if any(unit_of(p) == unit for p in closure(script_of(stage)))
    }
    marked = _stages_marked(code_only_repo, code_only_repo / target.relative_to(REPO))
    assert marked == importers, f"editing {target.relative_to(REPO)}"


@pytest.mark.slow
@pytest.mark.parametrize("edited, expected", [
    ("evaluate/plots.py", {"evaluate"}),  # plotting code: not train, not predict
    ("model/unet.py", {"train", "predict"}),
    ("infer/tiling.py", {"predict"}),
    ("io/files.py", {"download", "prepare", "split", "train", "predict", "evaluate"}),
])
def test_known_edits_rerun_known_stages(code_only_repo, edited, expected):
    assert _stages_marked(code_only_repo, code_only_repo / "src" / "nuclei_unet" / edited) == expected
