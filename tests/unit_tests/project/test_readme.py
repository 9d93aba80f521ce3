"""The README stays true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import langchain_intercascade
from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

README = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")


def _block_after(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```\w+\n(.*?)```", README, re.DOTALL)
    assert match, f"README has no block after <!-- {marker} -->"
    return match.group(1)


def test_readme_graph_picture_is_the_compiled_graph():
    model = ScriptedChatModel(respond=lambda messages: "ok")
    graph = create_intercascade(model, model, bank=StrategyBank(BagOfWordsEmbeddings()))
    assert _block_after("graph").strip() == graph.get_graph().draw_mermaid().strip()


def test_readme_test_command_installs_the_test_extra_and_runs_pytest():
    command = _block_after("test-command")
    assert '".[local,test]"' in command and "python -m pytest" in command
    ci = (Path(__file__).parents[3] / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci  # CI runs the README's command, not a copy


def test_public_api_is_exported():
    for name in langchain_intercascade.__all__:
        assert getattr(langchain_intercascade, name) is not None


def test_readme_examples_import_names_that_exist():
    import ast
    import importlib

    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert blocks
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "langchain_intercascade"
            ):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
