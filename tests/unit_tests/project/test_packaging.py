"""What a release needs, checked offline and fast: license, changelog, URLs, version, typing marker.

Building and installing the wheel is `.ci/wheel-smoke`'s job (too slow for a unit test).
"""

from __future__ import annotations

import json
from importlib.metadata import distribution, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

import langchain_intercascade

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[3]
DIST = "langchain-intercascade"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def test_license_file_is_the_declared_mit_license(project):
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 langchain-intercascade developers" in text
    assert "Permission is hereby granted, free of charge" in text
    # PEP 639: a license expression and a license classifier must not both be declared.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_changelog_has_a_section_for_the_current_version(project):
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = [line for line in changelog.splitlines() if line.startswith("## ")]
    assert any(h.startswith(f"## [{project['version']}]") for h in headings), headings


def test_project_urls_and_authors(project):
    urls = project["urls"]
    for key in ("Homepage", "Repository", "Issues", "Changelog", "Paper"):
        assert urls.get(key, "").startswith("https://"), key
    assert urls["Changelog"].endswith("/CHANGELOG.md")
    assert project["authors"] == [{"name": "langchain-intercascade developers"}]


def test_version_comes_from_the_installed_metadata():
    assert langchain_intercascade.__version__ == version(DIST)


def test_installed_version_is_pyprojects_when_installed_from_this_tree(project):
    # Only an install of this very source tree must match its pyproject.toml; an install of another
    # checkout (or from an index) may carry another version.
    direct_url = distribution(DIST).read_text("direct_url.json")
    source = json.loads(direct_url).get("url", "") if direct_url else ""
    if (
        not source.startswith("file:")
        or Path(url2pathname(urlparse(source).path)).resolve() != ROOT
    ):
        pytest.skip(f"{DIST} is installed from {source or 'an index'}, not from {ROOT}")
    assert version(DIST) == project["version"], "reinstall: pip install -e ."


def test_the_typing_marker_ships():
    with open(ROOT / "pyproject.toml", "rb") as file:
        setuptools = tomllib.load(file)["tool"]["setuptools"]
    assert "py.typed" in setuptools["package-data"]["langchain_intercascade"]
    assert (ROOT / "langchain_intercascade" / "py.typed").is_file()


def test_ci_runs_the_wheel_smoke_test():
    assert (ROOT / ".ci" / "wheel-smoke").is_file()
    assert ".ci/wheel-smoke" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
