"""Every ```python example in the package's docstrings runs, offline, as written."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import textwrap
from collections.abc import Iterator
from types import ModuleType

import pytest

import langchain_intercascade

_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
# Importable only inside the LangGraph server, which configures langgraph_api
# (REDIS_URI, ...) before loading it; it has no examples (checked below).
SERVER_ONLY = "langchain_intercascade.server.app"


def _modules() -> Iterator[ModuleType]:
    yield langchain_intercascade
    for info in pkgutil.walk_packages(
        langchain_intercascade.__path__, prefix="langchain_intercascade."
    ):
        if info.name != SERVER_ONLY:
            yield importlib.import_module(info.name)


def _documented(module: ModuleType) -> Iterator[tuple[str, object]]:
    yield module.__name__, module
    for name, member in vars(module).items():
        if getattr(member, "__module__", None) != module.__name__:
            continue  # document each object where it is defined
        if getattr(member, "__name__", None) != name or not name.isidentifier():
            continue  # an alias, or a parametrized generic pydantic registers here
        if inspect.isclass(member):
            yield f"{module.__name__}.{name}", member
            for attr, value in vars(member).items():
                if inspect.isfunction(value) or isinstance(value, (property, classmethod)):
                    yield f"{module.__name__}.{name}.{attr}", value
        elif inspect.isfunction(member):
            yield f"{module.__name__}.{name}", member


def _examples() -> list[pytest.param]:
    examples = []
    for module in _modules():
        for where, obj in _documented(module):
            # Its own docstring only: an inherited one is documented where it is defined.
            doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
            for i, block in enumerate(_BLOCK.findall(doc)):
                examples.append(pytest.param(textwrap.dedent(block), id=f"{where}#{i}"))
    return examples


EXAMPLES = _examples()


def test_the_package_has_examples() -> None:
    assert len(EXAMPLES) >= 5


def test_the_server_only_module_has_no_examples_to_skip() -> None:
    spec = importlib.util.find_spec(SERVER_ONLY)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        assert "```python" not in source.read()


@pytest.mark.parametrize("code", EXAMPLES)
def test_docstring_example_runs(code: str) -> None:
    exec(compile(code, "<docstring example>", "exec"), {"__name__": "__example__"})
