"""The bank's saved folders, written crash-safely and read as untrusted input.

A saved folder holds ``manifest.json`` (format version, count, dimension, and
the names and SHA-256 checksums of the data files), a JSONL file of records and
a ``.npy`` file of unit vectors; no pickle. A save writes its data files under
new names, replaces the manifest in one rename, then removes every other data
file, so a crash at any point leaves the old or the new bank, and a reader that
finds its files gone reads the manifest again. Saves to one folder take turns
(a POSIX ``flock`` on the folder). Only names of the fixed forms below are ever
written, read or removed, whatever a manifest says.

A reader opens only regular files inside the folder, never through a symbolic
link (the folder itself may be one), and checks each file's size against what
the manifest's count and dimension allow before reading it: a FIFO, a device or
a huge sparse file is a :class:`BankCorruptedError`, promptly. A manifest with
checksums is verified whatever its version number says: ``sha256`` is the mark
of format 3, which format 2 never wrote, so a flipped version byte cannot turn
the checksums off. A format 2 manifest (no checksums) is read only with
``allow_unverified=True``. What is read is screened by a strategy filter
(:func:`screen`) before it is stored, as JSON-lines imports are
(:mod:`~langchain_intercascade.bank.jsonl`).
"""

from __future__ import annotations

import errno
import gc
import hashlib
import io
import json
import logging
import os
import re
import stat
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

from langchain_intercascade.bank.backend import BankBackend
from langchain_intercascade.guards import StrategyScreen
from langchain_intercascade.strategies import StrategyRecord

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger("langchain_intercascade.bank")


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
# Size caps, checked before a file is read. A manifest is a few hundred bytes; a
# record holds one strategy and one query (saves refuse a longer one, so that
# what is saved loads); an .npy header a save writes is under 200 bytes.
_MANIFEST_MAX_BYTES = 64 * 1024
RECORD_MAX_BYTES = 4 * 1024 * 1024
_NPY_HEADER_MAX_BYTES = 64 * 1024
_VECTOR_ITEM_MAX_BYTES = 8  # float64; saves write float32
# No link followed, no wait on a FIFO's writer (Windows has neither flag).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_DIR_FDS = os.open in os.supports_dir_fd
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
        ValueError: If a record takes more than ``RECORD_MAX_BYTES`` as JSON;
            nothing is written then.
        OSError: If a file cannot be written; the files of this save are removed
            and the bank saved before is left as it was.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    dim = int(vectors.shape[1]) if len(records) else 0
    generation = uuid.uuid4().hex[:12]
    names = {"records": f"strategies-{generation}.jsonl", "vectors": f"vectors-{generation}.npy"}
    lines = [r.model_dump_json().encode() + b"\n" for r in records]
    for record, line in zip(records, lines, strict=True):
        if len(line) > RECORD_MAX_BYTES:
            raise ValueError(
                f"strategy {record.id}: {len(line)} bytes as JSON, over the {RECORD_MAX_BYTES} "
                "a saved record may take"
            )
    text = b"".join(lines)
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


def read_bank(folder: str | os.PathLike[str], *, allow_unverified: bool = False) -> SavedBank:
    """Read and check the records and vectors of a folder written by :func:`write_bank`.

    Args:
        folder: The saved folder (it may be a symbolic link; the files in it may not).
        allow_unverified: Read a format 2 bank, whose manifest has no checksums;
            its files are then checked for everything but damage.

    Returns:
        The records, their vectors and the embedding dimension the manifest names.

    Raises:
        FileNotFoundError: If the folder is not a saved bank (no manifest).
        BankCorruptedError: If a file is missing, a symbolic link, not a regular
            file, larger than the manifest allows, unreadable, damaged (its
            checksum differs), malformed or inconsistent with the manifest; if
            the format version is unknown; or if the bank has no checksums and
            ``allow_unverified`` is False.
    """
    path = Path(folder)
    with _opened_folder(path) as dir_fd:
        for _ in range(_READ_ATTEMPTS):
            raw = _read_manifest(path, dir_fd)
            manifest = _parse_manifest(path / _MANIFEST, raw, allow_unverified)
            try:
                data = {
                    key: _read_file(path, dir_fd, manifest[key], _size_limit(key, manifest))
                    for key in _DATA_NAMES
                }
            except FileNotFoundError as exc:
                if _read_manifest(path, dir_fd) != raw:
                    continue  # a save replaced the bank and removed these files: read the new one
                raise BankCorruptedError(
                    f"{exc.filename}: missing (the manifest names it)"
                ) from None
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
    backend: BankBackend,
    lock: AbstractContextManager[object],
    folder: str | os.PathLike[str],
    embeddings: Embeddings,
    *,
    strategy_filter: StrategyScreen | None,
    allow_unverified: bool,
) -> None:
    """Insert a saved bank into a new bank's backend in one call, every file checked first.

    The records the filter rejects are left out (see :func:`screen`).

    Raises:
        ValueError: If ``embeddings`` or the backend has another dimension
            than the saved vectors.
    """
    with without_gc():
        saved = read_bank(folder, allow_unverified=allow_unverified)
        labels = [f"strategy {r.id}" for r in saved.records]
        kept = screen(saved.records, labels, strategy_filter, Path(folder))
        if not kept:
            return
        records = [saved.records[i] for i in kept]
        vectors = saved.vectors if len(kept) == len(saved.records) else saved.vectors[kept]
        probe = len(embeddings.embed_query("dimension check"))
        if probe != saved.dim:
            raise ValueError(
                f"{Path(folder)}: the bank was built with {saved.dim}-dimensional "
                f"embeddings, but the embeddings given produce {probe} dimensions"
            )
        with lock, backend.exclusive():
            if backend.dim not in (None, saved.dim):
                raise ValueError(
                    f"{Path(folder)}: the saved vectors have {saved.dim} dimensions, "
                    f"the store given {backend.dim}"
                )
            backend.insert(records, vectors)


def screen(
    records: Sequence[StrategyRecord],
    labels: Sequence[str],
    strategy_filter: StrategyScreen | None,
    source: Path,
) -> list[int]:
    """The indices of the records a strategy filter lets into the bank.

    Loads and imports skip a rejected record rather than fail, so that a filter
    stricter than the one a bank was built under does not make it unreadable;
    each rejection is logged as a warning (``langchain_intercascade.bank``) with
    its label and reason, never the strategy's text.

    Args:
        records: What was read.
        labels: How to name each record in the warning (its id, its line).
        strategy_filter: Why a strategy must not be stored, or None; None
            keeps every record.
        source: The file or folder read, for the warning.

    Returns:
        The indices of the records to store, in order.
    """
    if strategy_filter is None:
        return list(range(len(records)))
    kept, rejected = [], []
    for i, record in enumerate(records):
        reason = strategy_filter(record.strategy)
        if reason is None:
            kept.append(i)
        else:
            rejected.append(f"{labels[i]} ({reason})")
    if rejected:
        logger.warning(
            "%s: %d of %d strategies rejected by the strategy filter and not stored: %s",
            source, len(rejected), len(records), "; ".join(rejected),
        )  # fmt: skip
    return kept


# -- reading ----------------------------------------------------------------------------


@contextmanager
def _opened_folder(folder: Path) -> Iterator[int | None]:
    """The folder, held open so that every file is opened inside it (None on Windows)."""
    if not _DIR_FDS:
        yield None
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{folder} is not a saved strategy bank (no {_MANIFEST})") from None
    except OSError as exc:
        raise BankCorruptedError(f"{folder}: cannot be read ({exc.strerror})") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _read_manifest(folder: Path, dir_fd: int | None) -> bytes:
    try:
        return _read_file(folder, dir_fd, _MANIFEST, _MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} is not a saved strategy bank (no {_MANIFEST})") from None


def _size_limit(key: str, manifest: dict[str, Any]) -> int:
    """The most bytes a data file of a bank of the manifest's count and dimension takes."""
    count, dim = int(manifest["count"]), int(manifest["dim"])
    if key == "records":
        return count * RECORD_MAX_BYTES
    return _NPY_HEADER_MAX_BYTES + count * dim * _VECTOR_ITEM_MAX_BYTES


def _read_file(folder: Path, dir_fd: int | None, name: str, limit: int) -> bytes:
    """A regular file directly in the folder, at most ``limit`` bytes, never through a link.

    Raises:
        FileNotFoundError: If it is missing.
        BankCorruptedError: If it is a link, not a regular file, too large or unreadable.
    """
    path = folder / name
    try:
        if dir_fd is None:  # no dir_fd nor O_NOFOLLOW: refuse a link seen just before
            if path.is_symlink():
                raise OSError(errno.ELOOP, "a symbolic link")
            fd = os.open(path, _OPEN_FLAGS)
        else:
            fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(errno.ENOENT, "missing", str(path)) from None
    except OSError as exc:
        # O_NOFOLLOW on a link: ELOOP on Linux, EMLINK on FreeBSD.
        why = "a symbolic link" if exc.errno in (errno.ELOOP, errno.EMLINK) else exc.strerror
        raise BankCorruptedError(f"{path}: cannot be read ({why})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BankCorruptedError(f"{path}: cannot be read (not a regular file)")
        if info.st_size > limit:
            raise BankCorruptedError(
                f"{path}: {info.st_size} bytes, more than the manifest allows ({limit})"
            )
        with open(fd, "rb", closefd=False) as fh:
            content = fh.read(info.st_size + 1)
    except OSError as exc:
        raise BankCorruptedError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(content) != info.st_size:
        raise BankCorruptedError(f"{path}: changed while it was read")
    return content


def _parse_manifest(path: Path, raw: bytes, allow_unverified: bool) -> dict[str, Any]:
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
    if version >= 3 or "sha256" in manifest:
        sums = manifest.get("sha256")
        if not isinstance(sums, dict) or not all(
            isinstance(sums.get(key), str) and _SHA256.fullmatch(sums[key]) for key in _DATA_NAMES
        ):
            raise BankCorruptedError(f"{path}: 'sha256' lacks a checksum of each data file")
    elif not allow_unverified:
        raise BankCorruptedError(
            f"{path}: format version {version} has no checksums, so damage or edits to its "
            "files cannot be detected; load it with allow_unverified=True if you trust it"
        )
    return manifest


def _decode(folder: Path, manifest: dict[str, Any], data: dict[str, bytes]) -> SavedBank:
    if "sha256" in manifest:  # present in every format 3 manifest (see _parse_manifest)
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
