"""The docs site stays true to the code: its examples run, offline, and its reference is whole.

Each page's ```python blocks run in order in one namespace (a page builds its models once and
later blocks use them), in a fresh working folder. A block that cannot run offline says why in
an HTML comment on the line before it, ``<!-- not-run: needs a LangGraph server -->``; there
must stay few of those.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import langchain_intercascade

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

_FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_NOT_RUN = re.compile(r"<!-- not-run: (.+?) -->\n\Z")
_DIRECTIVE = re.compile(r"^::: ([\w.]+)$", re.MULTILINE)
# A fence in any other language is not run, so "py" or a bare fence would hide an example.
LANGUAGES = {"python", "bash", "text", "mermaid"}
MAX_NOT_RUN = 3
# The deployment wing is reached through langgraph.json, not imported: the reference leaves it out.
UNDOCUMENTED = ("langchain_intercascade.server", "langchain_intercascade.settings")


def _blocks(page: Path) -> list[tuple[str, int, str, str | None]]:
    """Each fenced block of a page: language, first line, code, and why it is not run."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        reason = _NOT_RUN.search(text[: match.start()])
        skip = reason.group(1) if reason else None
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((match.group(1), line, match.group(2), skip))
    return blocks


def _directives() -> list[str]:
    return [d for page in PAGES for d in _DIRECTIVE.findall(page.read_text(encoding="utf-8"))]


def test_there_are_pages_with_examples() -> None:
    assert len(PAGES) >= 9
    assert sum(lang == "python" for page in PAGES for lang, *_ in _blocks(page)) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_block_names_a_known_language(page: Path) -> None:
    for language, line, _, _ in _blocks(page):
        assert language in LANGUAGES, f"{page.name}:{line}: fence language {language!r}"
    # An indented fence (in a list or an admonition) would escape the runner.
    indented = re.search(r"^[ \t]+```", page.read_text(encoding="utf-8"), re.MULTILINE)
    assert indented is None, f"{page.name}: fences start at the line's start"


def test_blocks_not_run_are_few_and_say_why() -> None:
    skipped = [
        (page.name, line, reason)
        for page in PAGES
        for language, line, _, reason in _blocks(page)
        if reason is not None
    ]
    assert len(skipped) <= MAX_NOT_RUN, skipped
    for name, line, reason in skipped:
        assert len(reason.split()) >= 3, f"{name}:{line}: say why it cannot run"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that save a bank write here
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for language, line, code, reason in _blocks(page):
        if language == "python" and reason is None:
            # Padded so that a traceback names the page's own line.
            source = "\n" * (line - 1) + code
            exec(compile(source, str(page.relative_to(ROOT)), "exec"), namespace)


def _rendered(module: ModuleType) -> set[str]:
    """The names a ``::: module`` directive renders: its ``__all__``, else what it defines."""
    if hasattr(module, "__all__"):
        return set(module.__all__)
    tree = ast.parse(inspect.getsource(module))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    return {name for name in defined if not name.startswith("_")}


def test_the_reference_covers_the_public_api() -> None:
    modules = [importlib.import_module(name) for name in _directives()]
    for module in modules:
        assert not module.__name__.startswith(UNDOCUMENTED), f"::: {module.__name__}"
    rendered = {m.__name__: (m, _rendered(m)) for m in modules if m is not langchain_intercascade}
    for name in (n for n in langchain_intercascade.__all__ if n != "__version__"):
        obj = getattr(langchain_intercascade, name)
        assert any(
            name in names and getattr(module, name, None) is obj
            for module, names in rendered.values()
        ), f"no ::: directive renders langchain_intercascade.{name}"
    for package in ("bank", "calibration", "evaluation", "graph", "judges", "models"):
        assert f"langchain_intercascade.{package}" in rendered, package


def test_the_overview_graph_picture_is_the_compiled_graph() -> None:
    from langchain_intercascade import StrategyBank, create_intercascade
    from langchain_intercascade.testing import fake_models

    weak, strong, embeddings = fake_models()
    graph = create_intercascade(weak, strong, bank=StrategyBank(embeddings)).get_graph()
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- graph -->\n```mermaid\n(.*?)```", text, re.DOTALL)
    assert match and match.group(1).strip() == graph.draw_mermaid().strip()


def test_links_into_the_repository_name_files_that_exist() -> None:
    # mkdocs checks links between pages; these leave the site (README's too, relative on GitHub).
    blob = "https://github.com/langchain-intercascade/langchain-intercascade/blob/main/"
    links = [
        (page, target)
        for page in PAGES
        for target in re.findall(rf"\]\({re.escape(blob)}([^)#]+)", page.read_text("utf-8"))
    ]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links += [(ROOT / "README.md", t) for t in re.findall(r"\]\((?!https?:)([^)#]+)", readme)]
    assert links
    for page, target in links:
        assert (ROOT / target).is_file(), f"{page.name} links to a missing {target}"


def test_the_nav_lists_every_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert str(page.relative_to(DOCS)) in config, f"{page.name} is not in mkdocs.yml's nav"
