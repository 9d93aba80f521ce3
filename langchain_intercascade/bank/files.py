"""StrategyBank's files: save and load a folder, export and import JSON lines.

:class:`BankFiles` is a base of :class:`~langchain_intercascade.bank.StrategyBank`
(the class to use) that holds the four methods moving a bank into and out of
files; ``bank.persistence`` writes and reads the folders, ``bank.jsonl`` the JSON
lines.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from langchain_intercascade.bank import jsonl, persistence
from langchain_intercascade.bank.backend import BankBackend, _unit_rows
from langchain_intercascade.guards import DEFAULT_FILTER, StrategyScreen
from langchain_intercascade.strategies import StrategyRecord


class _Bank(Protocol):
    """What these methods use of the bank they are methods of (a ``StrategyBank``)."""

    embeddings: Embeddings
    _backend: BankBackend
    _lock: threading.RLock

    def __init__(
        self, embeddings: Embeddings, *, vectorstore: VectorStore | None, **kwargs: Any
    ) -> None: ...

    def records(self, namespace: str | None = None) -> list[StrategyRecord]: ...

    def _write(
        self,
        records: Sequence[StrategyRecord],
        vectors: np.ndarray,
        strategy_filter: StrategyScreen | None,
    ) -> list[StrategyRecord]: ...


# What `load` returns: the class it is called on (a StrategyBank).
StrategyBankT = TypeVar("StrategyBankT", bound=_Bank)


class BankFiles:
    """Saving, loading, exporting and importing: the file methods of ``StrategyBank``."""

    def save(self: _Bank, folder: str | os.PathLike[str]) -> Path:
        """Write the whole bank to a folder, without pickle.

        The folder holds ``manifest.json`` (with the data files' checksums), a
        JSONL file of records and a ``.npy`` file of vectors (see
        ``bank.persistence``). A crash at any point leaves a complete bank (the
        new one or the previous one), and a load meanwhile reads one of the two.

        Args:
            folder: Where to write; the bank's folder (created if missing).

        Returns:
            The folder's path.

        Raises:
            OSError: If the folder cannot be written; the bank saved there
                before is left as it was.
        """
        with self._lock, self._backend.exclusive():  # records and vectors of one moment
            records = self.records()
            vectors = self._backend.vectors(records)
        return persistence.write_bank(folder, records, vectors)

    @classmethod
    def load(
        cls: type[StrategyBankT],
        folder: str | os.PathLike[str],
        *,
        embeddings: Embeddings,
        vectorstore: VectorStore | None = None,
        strategy_filter: StrategyScreen | None = DEFAULT_FILTER,
        allow_unverified: bool = False,
        **kwargs: Any,
    ) -> StrategyBankT:
        """Read a bank written by :meth:`save`, as it was saved, screened again.

        Every file is checked (regular files inside the folder, never followed
        through a link; sizes within what the manifest allows; checksums,
        shapes, finite unit vectors, valid records and ids) before anything is
        stored; the records and vectors then go into the store in one call.
        Each strategy is screened by ``strategy_filter``: one it rejects is not
        loaded, and a warning (logger ``langchain_intercascade.bank``) names its
        id and the reason.

        Args:
            folder: The folder :meth:`save` wrote.
            embeddings: The same embeddings the bank was built with.
            vectorstore: An empty store to load into; None uses FAISS.
            strategy_filter: Why a strategy must not be loaded, or None; the
                default is the cascade's default, ``guards.StrategyFilter()``.
                None loads every strategy.
            allow_unverified: Load a bank saved by format version 2, which has
                no checksums, so that edits or damage to its files go unnoticed
                but for the other checks. A manifest with checksums is verified
                whatever its version says.
            **kwargs: Other :class:`StrategyBank` options (``dedup_threshold``,
                ``dedup_policy``, ``max_size``) for later writes, or ``store=``
                (and ``store_prefix``) to load into a LangGraph store whose
                prefix holds no strategies yet.

        Returns:
            StrategyBank: The bank.

        Raises:
            FileNotFoundError: If the folder is not a saved bank (it has no
                ``manifest.json``).
            BankCorruptedError: If a file of the bank is missing, a link, not a
                regular file, too large, damaged, inconsistent with the manifest
                or of an unknown format version, or the bank has no checksums
                and ``allow_unverified`` is False; the message names the file
                and what is wrong.
            ValueError: If ``embeddings`` (or the store) has another dimension
                than the saved vectors.
        """
        bank = cls(embeddings, vectorstore=vectorstore, **kwargs)
        persistence.load_into(
            bank._backend, bank._lock, folder, embeddings,
            strategy_filter=strategy_filter, allow_unverified=allow_unverified,
        )  # fmt: skip
        return bank

    def export_jsonl(
        self: _Bank, path: str | os.PathLike[str], *, namespace: str | None = None
    ) -> int:
        """Write strategies as JSON lines, for people to review, edit and version.

        Each line is a whole record (strategy, provenance, counters). The file is
        written beside its target and renamed over it, so readers never see half
        a file.

        Args:
            path: The file to write.
            namespace: Only this namespace; None exports every namespace.

        Returns:
            How many strategies were written.
        """
        return jsonl.write_jsonl(path, self.records(namespace))

    def import_jsonl(
        self: _Bank,
        path: str | os.PathLike[str],
        *,
        namespace: str | None = None,
        strategy_filter: StrategyScreen | None = DEFAULT_FILTER,
    ) -> list[StrategyRecord]:
        """Add strategies from a JSON-lines file, embedding them anew.

        Each line is a record (as :meth:`export_jsonl` writes it, counters kept)
        or a bare strategy (``title``, ``applies_when``, ``steps``, ``pitfalls``).
        A record's id is recomputed from its content, namespace and source
        query, so edited strategies get ids that match their text. Imports are
        deduplicated like any write. Each strategy is screened by
        ``strategy_filter``: one it rejects is not imported, and a warning
        (logger ``langchain_intercascade.bank``) names its line and the reason.

        Args:
            path: The file to read.
            namespace: Put every strategy in this namespace; None keeps each
                record's own (bare strategies go to the default namespace).
            strategy_filter: Why a strategy must not be imported, or None; the
                default is the cascade's default, ``guards.StrategyFilter()``.
                It screens merges into near-duplicates too. None imports every
                strategy.

        Returns:
            The records now holding the imported strategies that passed the
            filter, in file order.

        Raises:
            ValueError: If a line is neither a record nor a strategy, or holds a
                malformed id (the message names the line), or the embeddings
                return an empty, all-zero or non-finite vector or one of another
                width than the stored ones; nothing is imported then. Nor is
                anything imported when the store fails: its error is raised with
                the bank as it was.
        """
        records = jsonl.read_jsonl(path, namespace, strategy_filter)
        if not records:
            return []
        vectors = self.embeddings.embed_documents([r.key_text for r in records])
        unit = _unit_rows(vectors, len(records), str(path))
        return self._write(records, unit, strategy_filter)
