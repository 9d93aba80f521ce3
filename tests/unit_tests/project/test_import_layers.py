"""The package's import layers (``[tool.importlinter]`` in pyproject.toml) hold.

A lower layer importing a higher one (say, calibration driving the graph) fails
here; so does a new module that no layer names, which the check would not see.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # import-linter's own TOML reader there
    import tomli as tomllib

pytest.importorskip("importlinter", reason="the test extra is not installed")

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
CONTRACTS = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"][
    "contracts"
]


def _layered(container: str) -> set[str]:
    [contract] = [c for c in CONTRACTS if c["containers"] == [container]]
    return {name.strip() for layer in contract["layers"] for name in re.split(r"[|:]", layer)}


def _children(package: str) -> set[str]:
    return {info.name for info in pkgutil.iter_modules(importlib.import_module(package).__path__)}


def test_no_layer_imports_a_higher_one() -> None:
    # In its own process: import-linter reconfigures logging, which later tests read.
    check = "import sys, importlinter.cli as c; sys.exit(c.lint_imports(sys.argv[1], no_cache=1))"
    command = [sys.executable, "-c", check, str(PYPROJECT)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PYPROJECT.parent)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("package", ["langchain_intercascade", "langchain_intercascade.bank"])
def test_every_module_is_in_a_layer(package: str) -> None:
    assert _children(package) <= _layered(package), "add the new module to a layer"
