"""The public API is small and stable: these names, and nothing else, at the top level."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import langchain_intercascade

PUBLIC = {
    "AutoJudge",
    "BaseJudge",
    "CascadeOptions",
    "CascadePrompts",
    "CascadeTurn",
    "ChatInterCascade",
    "EvaluationConfig",
    "LogprobJudge",
    "Strategy",
    "StrategyBank",
    "StrategyRetriever",
    "__version__",
    "build_intercascade_graph",
    "calibrate_threshold",
    "create_intercascade",
    "pick_answer",
    "run_evaluation",
    "track_cascade_costs",
}


def test_all_is_pinned() -> None:
    assert set(langchain_intercascade.__all__) == PUBLIC


def test_every_public_name_imports() -> None:
    for name in PUBLIC:
        assert getattr(langchain_intercascade, name) is not None


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert langchain_intercascade.__version__ == version("langchain-intercascade")


def test_every_subpackage_declares_its_api() -> None:
    for name in ("bank", "calibration", "evaluation", "graph", "judges", "models"):
        module = importlib.import_module(f"langchain_intercascade.{name}")
        assert module.__doc__, f"{name} has no map docstring"
        for exported in module.__all__:
            assert hasattr(module, exported), f"{name}.__all__ names missing {exported}"


def test_importing_the_models_leaves_the_optional_backends_alone() -> None:
    backends = ["llama_cpp", "sentence_transformers", "langchain_community"]
    loaded = f"[b for b in {backends} if b in sys.modules]"
    code = f"import sys, langchain_intercascade.models; print({loaded})"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
