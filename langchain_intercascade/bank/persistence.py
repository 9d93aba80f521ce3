"""The bank's files: saved folders and JSON-lines exports, written crash-safely.

A saved folder holds ``manifest.json`` (format version, count, dimension, and
the names and SHA-256 checksums of the data files), a JSONL file of records and
a ``.npy`` file of unit vectors; no pickle. A save writes its data files under
new names, replaces the manifest in one rename, then removes every other data
file, so a crash at any point leaves the old or the new bank, and a reader that
finds its files gone reads the manifest again. Saves to one folder take turns
(a POSIX ``flock`` on the folder). Only names of the fixed forms below are ever
written, read or removed, whatever a manifest says.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import re
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import ValidationError

from langchain_intercascade.bank.catalog import _Catalog, _check_namespace
from langchain_intercascade.strategies import Strategy, StrategyRecord, content_id

if sys.platform != "win32":
    import fcntl

FORMAT_VERSION = 3
_READABLE_VERSIONS = (2, 3)  # 2: the same files, without checksums
_MANIFEST = "manifest.json"
_DATA_NAMES = {
    "records": re.compile(r"strategies-[0-9a-f]{12}\.jsonl"),
    "vectors": re.compile(r"vectors-[0-9a-f]{12}\.npy"),
}
# What saves leave behind when killed: data files that no manifest names, and the
# temporary siblings of the manifest (and of format 2's records files).
_LEFTOVER = re.compile(
    r"strategies-[0-9a-f]{12}\.jsonl|vectors-[0-9a-f]{12}\.npy"
    r"|\.(manifest\.json|strategies-[0-9a-f]{12}\.jsonl)\.tmp-[0-9a-f]{8}"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A reader retries while saves keep replacing the bank under it.
_READ_ATTEMPTS = 10
# Saved vectors are unit vectors: their squared norms lie this close to 1, and
# float32 rounding stays far inside it.
_UNIT_TOLERANCE = 2e-3
_WINDOWS_SAVES = threading.Lock()


class BankCorruptedError(ValueError):
    """A saved bank's file is missing, damaged or inconsistent with its manifest.

    The message names the file and what is wrong with it, never its contents.
    """


class SavedBank(NamedTuple):
    """The contents of a saved folder, as :func:`read_bank` found them."""

    records: list[StrategyRecord]
    vectors: np.ndarray
    dim: int


def write_bank(
    folder: str | os.PathLike[str], records: Sequence[StrategyRecord], vectors: np.ndarray
) -> Path:
    """Write records and their vectors to a folder, replacing any bank saved there.

    New data files are written first and the manifest is replaced last, so a
    crash at any point leaves a complete bank: the new one or the previous one.
    Then the data files of earlier saves are removed, with whatever killed
    saves left behind. Concurrent saves to the folder take turns.

    Args:
        folder: Where to write; created if missing.
        records: The records to save.
        vectors: Their unit vectors, one row per record.

    Returns:
        The folder's path.

    Raises:
        OSError: If a file cannot be written; the files of this save are removed
            and the bank saved before is left as it was.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    dim = int(vectors.shape[1]) if len(records) else 0
    generation = uuid.uuid4().hex[:12]
    names = {"records": f"strategies-{generation}.jsonl", "vectors": f"vectors-{generation}.npy"}
    text = "".join(r.model_dump_json() + "\n" for r in records).encode()
    writers: dict[str, Callable[[_Hashing], object]] = {
        "records": lambda fh: fh.write(text),
        "vectors": lambda fh: np.save(fh, vectors.reshape(len(records), dim), allow_pickle=False),
    }
    with _saving(target):
        written: list[Path] = []
        try:
            checksums = {}
            for key, write in writers.items():
                written.append(target / names[key])
                checksums[key] = _write_new(written[-1], write)
            manifest = {
                "format_version": FORMAT_VERSION,
                "count": len(records),
                "dim": dim,
                **names,
                "sha256": checksums,
            }
            _write_durably(target / _MANIFEST, json.dumps(manifest, indent=2))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        for path in target.iterdir():
            if _LEFTOVER.fullmatch(path.name) and path.name not in names.values():
                with suppress(OSError):  # e.g. open in a reader on Windows: the next save
                    path.unlink()
    return target


def read_bank(folder: str | os.PathLike[str]) -> SavedBank:
    """Read and check the records and vectors of a folder written by :func:`write_bank`.

    Args:
        folder: The saved folder.

    Returns:
        The records, their vectors and the embedding dimension the manifest names.

    Raises:
        FileNotFoundError: If the folder is not a saved bank (no manifest).
        BankCorruptedError: If a file is missing, unreadable, damaged (its
            checksum differs), malformed or inconsistent with the manifest, or
            the format version is unknown.
    """
    path = Path(folder)
    for _ in range(_READ_ATTEMPTS):
        raw = _read_manifest(path)
        manifest = _parse_manifest(path / _MANIFEST, raw)
        try:
            data = {key: _read_data(path / manifest[key]) for key in _DATA_NAMES}
        except FileNotFoundError as exc:
            if _read_manifest(path) != raw:
                continue  # a save replaced the bank and removed these files: read the new one
            raise BankCorruptedError(f"{exc.filename}: missing (the manifest names it)") from None
        return _decode(path, manifest, data)
    raise BankCorruptedError(f"{path / _MANIFEST}: changed on each of {_READ_ATTEMPTS} reads")


@contextmanager
def without_gc() -> Iterator[None]:
    """Pause cyclic garbage collection while a bank is read and stored in bulk.

    Each collection would rescan the growing list of records: loading 100k
    records took 2.6 s instead of 1 s with it on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_into(
    catalog: _Catalog,
    lock: AbstractContextManager[object],
    folder: str | os.PathLike[str],
    embeddings: Embeddings,
) -> None:
    """Insert a saved bank into a new bank's catalog in one call, every file checked first.

    Raises:
        ValueError: If ``embeddings`` or the catalog has another dimension
            than the saved vectors.
    """
    with without_gc():
        saved = read_bank(folder)
        if not saved.records:
            return
        probe = len(embeddings.embed_query("dimension check"))
        if probe != saved.dim:
            raise ValueError(
                f"{Path(folder)}: the bank was built with {saved.dim}-dimensional "
                f"embeddings, but the embeddings given produce {probe} dimensions"
            )
        with lock, catalog.exclusive():
            if catalog.dim not in (None, saved.dim):
                raise ValueError(
                    f"{Path(folder)}: the saved vectors have {saved.dim} dimensions, "
                    f"the store given {catalog.dim}"
                )
            catalog.insert(saved.records, saved.vectors)


def write_jsonl(path: str | os.PathLike[str], records: Sequence[StrategyRecord]) -> int:
    """Write whole records as JSON lines, replacing the file in one rename.

    Args:
        path: The file to write.
        records: The records, in file order.

    Returns:
        How many records were written.
    """
    _write_durably(Path(path), "".join(r.model_dump_json() + "\n" for r in records))
    return len(records)


def read_jsonl(path: str | os.PathLike[str], namespace: str | None) -> list[StrategyRecord]:
    """Read records or bare strategies from JSON lines, as new records to store.

    A record's id is recomputed from its content and namespace, so edited
    strategies get ids that match their text.

    Args:
        path: The file to read.
        namespace: Put every record in this namespace; None keeps each record's
            own (bare strategies go to the default namespace).

    Returns:
        The records, in file order.

    Raises:
        ValueError: If a line is neither a record nor a strategy (the message
            names the line).
    """
    records = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    records.append(_imported(json.loads(line), namespace))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise ValueError(f"{path}, line {number}: {exc}") from exc
    return records


def _imported(data: Any, namespace: str | None) -> StrategyRecord:
    if isinstance(data, dict) and "strategy" in data:
        record = StrategyRecord.model_validate(data)
    else:
        record = StrategyRecord.create(Strategy.model_validate(data))
    space = _check_namespace(namespace or record.namespace)
    return record.model_copy(update={"namespace": space, "id": content_id(record.strategy, space)})


# -- reading ----------------------------------------------------------------------------


def _read_manifest(folder: Path) -> bytes:
    try:
        return (folder / _MANIFEST).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{folder} is not a saved strategy bank (no {_MANIFEST})") from None
    except OSError as exc:
        raise BankCorruptedError(f"{folder / _MANIFEST}: cannot be read ({exc.strerror})") from None


def _read_data(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BankCorruptedError(f"{path}: cannot be read ({exc.strerror})") from None


def _parse_manifest(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise BankCorruptedError(f"{path}: not valid JSON") from None
    if not isinstance(manifest, dict):
        raise BankCorruptedError(f"{path}: not a JSON object")
    version = manifest.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise BankCorruptedError(
            f"{path}: unsupported bank format version {version!r}; "
            f"this version reads {' and '.join(map(str, _READABLE_VERSIONS))}"
        )
    for key in ("count", "dim"):
        value = manifest.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BankCorruptedError(f"{path}: '{key}' is not a non-negative integer")
    if manifest["count"] and not manifest["dim"]:
        raise BankCorruptedError(f"{path}: 'dim' is 0 for a bank of {manifest['count']}")
    for key, pattern in _DATA_NAMES.items():
        # Only a bare name of the form saves write: never another folder's file.
        if not isinstance(manifest.get(key), str) or not pattern.fullmatch(manifest[key]):
            raise BankCorruptedError(f"{path}: '{key}' is not a {key} file name a save writes")
    if version >= 3:
        sums = manifest.get("sha256")
        if not isinstance(sums, dict) or not all(
            isinstance(sums.get(key), str) and _SHA256.fullmatch(sums[key]) for key in _DATA_NAMES
        ):
            raise BankCorruptedError(f"{path}: 'sha256' lacks a checksum of each data file")
    return manifest


def _decode(folder: Path, manifest: dict[str, Any], data: dict[str, bytes]) -> SavedBank:
    if manifest["format_version"] >= 3:
        for key, content in data.items():
            if hashlib.sha256(content).hexdigest() != manifest["sha256"][key]:
                raise BankCorruptedError(
                    f"{folder / manifest[key]}: its checksum differs from the manifest's "
                    "(the file was changed or damaged after the save)"
                )
    count, dim = manifest["count"], manifest["dim"]
    records = _decode_records(folder / manifest["records"], data["records"], count)
    vectors = _decode_vectors(folder / manifest["vectors"], data["vectors"], count, dim)
    return SavedBank(records, vectors, dim)


def _decode_records(path: Path, content: bytes, count: int) -> list[StrategyRecord]:
    records = []
    # Split on newlines only: a record's JSON may hold other line separators.
    for number, line in enumerate(content.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = StrategyRecord.model_validate_json(line)
        except ValidationError as exc:
            # Without the input: a message must not show what the file holds.
            error = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(map(str, error["loc"]))
            raise BankCorruptedError(
                f"{path}, line {number}: not a strategy record "
                f"({error['msg']}{f' at {where}' if where else ''})"
            ) from None
        if not record.namespace.strip():
            raise BankCorruptedError(f"{path}, line {number}: blank namespace")
        records.append(record)
    if len(records) != count:
        raise BankCorruptedError(f"{path}: holds {len(records)} records, the manifest says {count}")
    repeated = [i for i, n in Counter(r.id for r in records).items() if n > 1]
    if repeated:
        raise BankCorruptedError(f"{path}: strategy id {repeated[0]} appears more than once")
    return records


def _decode_vectors(path: Path, content: bytes, count: int, dim: int) -> np.ndarray:
    # The header is checked before any array is made: a damaged one may claim any shape.
    stream = io.BytesIO(content)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, TypeError):
        raise BankCorruptedError(f"{path}: not a NumPy .npy file") from None
    if dtype.kind != "f" or fortran_order:
        raise BankCorruptedError(f"{path}: holds {dtype} values, not C-ordered floats")
    if shape != (count, dim):
        raise BankCorruptedError(
            f"{path}: holds an array of shape {shape}, the manifest says ({count}, {dim})"
        )
    body = len(content) - stream.tell()
    if body != count * dim * dtype.itemsize:
        raise BankCorruptedError(
            f"{path}: {body} bytes of vectors where {count * dim * dtype.itemsize} belong"
        )
    vectors = np.frombuffer(content, dtype=dtype, offset=stream.tell()).reshape(shape)
    vectors = vectors.astype(np.float32, copy=False)
    squares = np.einsum("ij,ij->i", vectors, vectors)  # no temporary array, unlike norm()
    bad = np.flatnonzero(~(np.abs(squares - 1.0) <= _UNIT_TOLERANCE))  # NaN fails too
    if bad.size:
        raise BankCorruptedError(f"{path}: vector {bad[0]} is not a finite unit vector")
    return vectors


# -- writing ----------------------------------------------------------------------------


@contextmanager
def _saving(folder: Path) -> Iterator[None]:
    """Hold the folder's save lock: one save at a time, across threads and processes."""
    if sys.platform == "win32":  # no flock: saves take turns within this process only
        with _WINDOWS_SAVES:
            yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes, even on a kill
        yield
    finally:
        os.close(fd)


class _Hashing:
    """A binary file that hashes what is written to it, as it is written."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.fh.write(data)


def _write_new(path: Path, write: Callable[[_Hashing], object]) -> str:
    """Create a file (it must not exist) through ``write``, synced; return its SHA-256."""
    with open(path, "xb") as fh:
        hashing = _Hashing(fh)
        write(hashing)
        fh.flush()
        os.fsync(fh.fileno())
    return hashing.sha256.hexdigest()


def _write_durably(path: Path, text: str) -> None:
    """Write a file through a temporary sibling, synced, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
