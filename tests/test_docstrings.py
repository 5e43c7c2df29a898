"""Every example in the package's docstrings runs and gives what it shows.

The modules are found by walking the package, so a module that gains an example is tested
without being listed here (a hand-kept list had missed ``model.exposure``)."""

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import nuclei_unet


def modules_with_examples() -> list[str]:
    """Dotted names of the package's modules whose source holds a ``>>>`` example."""
    names = []
    for info in pkgutil.walk_packages(nuclei_unet.__path__, "nuclei_unet."):
        spec = importlib.util.find_spec(info.name)
        if spec and spec.origin and ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
            names.append(info.name)
    return sorted(names)


def test_the_walk_finds_the_known_modules():
    # a walk that found nothing would make the test below vacuous
    found = modules_with_examples()
    assert {"nuclei_unet.metrics.dsb", "nuclei_unet.model.exposure", "nuclei_unet.train.averaging"} <= set(found)


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
