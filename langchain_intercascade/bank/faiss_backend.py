"""The default backend: records in memory, one FAISS index per namespace.

Each namespace has an index of its own, so a search or a dedup check costs
what its namespace holds, whatever the rest of the bank holds, and the filter
never runs after the search. The index keeps the only copy of each vector
(``reconstruct`` reads it back); a record is found from its index label.

The index type is chosen once, by :data:`IndexType`:

- ``"flat"``: exact inner-product scan (``IndexFlatIP``).
- ``"hnsw"``: an HNSW graph (``IndexHNSWFlat``, M=32) searched with efSearch 64,
  or one per 2,000 vectors it holds when that is more (recall@2 at 1M was 0.74
  with 64); removals rebuild the namespace's graph, which FAISS cannot remove from.
- ``"ivf"``: an inverted file (``IndexIVFFlat``) over √n clusters, probing 16 of
  them or one in 32, whichever is more (recall@2 fell to 0.948 at 1M with 16),
  trained on the namespace's own vectors once it holds 4,096 of them (flat
  before) and trained again each time it has grown fourfold.

Beside its index, each namespace keeps 256 sign bits per vector (of random
projections, so that Hamming distance tracks the angle), 32 bytes each. The
dedup check on every write scans those bits for vectors within a Hamming radius
that a near-duplicate at the threshold stays inside but for six standard
deviations (missed with probability below 1e-9), then checks the few found
exactly: 12x less memory to read than a flat scan, whatever the index type.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal, get_args

import numpy as np

from langchain_intercascade.bank.backend import BackendHit, _InProcessBackend
from langchain_intercascade.strategies import StrategyRecord

IndexType = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)

_HNSW_M = 32
_HNSW_EF_SEARCH = 64
_HNSW_EF_SHARE = 2000
_IVF_MIN_TRAIN = 4096
_IVF_GROWTH = 4
_IVF_NPROBE = 16
_IVF_PROBE_SHARE = 32
_CODE_BITS = 256
_GUARD_SD = 6.0


def _faiss() -> Any:
    with warnings.catch_warnings():
        # SWIG-generated classes warn on import under Python 3.12+.
        warnings.simplefilter("ignore", DeprecationWarning)
        import faiss

    return faiss


def check_index_type(index_type: object) -> IndexType:
    """Return ``index_type`` if it is one of :data:`INDEX_TYPES`; raise ValueError otherwise."""
    if index_type not in INDEX_TYPES:
        raise ValueError(
            f"index_type must be one of {', '.join(map(repr, INDEX_TYPES))}, got {index_type!r}"
        )
    return index_type  # type: ignore[return-value]


@functools.cache
def _projection(dim: int) -> np.ndarray:
    # Fixed, so that codes need not be saved: load recomputes them.
    return np.random.default_rng(0).standard_normal((dim, _CODE_BITS)).astype(np.float32)


def hamming_radius(threshold: float) -> int | None:
    """The Hamming radius, in sign bits, that keeps pairs at least ``threshold`` cosine-similar.

    A random hyperplane separates two unit vectors at angle θ with probability
    θ/π, so their Hamming distance is Binomial(256, θ/π); the radius is its mean
    plus six standard deviations at the threshold's angle. None when that radius
    would not exclude unrelated vectors (θ/π near 1/2): then there is no prefilter.
    """
    p = math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    radius = _CODE_BITS * p + _GUARD_SD * math.sqrt(_CODE_BITS * p * (1.0 - p))
    return int(radius) if radius < _CODE_BITS / 2 else None


class _Codes:
    """Sign bits of a namespace's vectors under :func:`_projection`, by label."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index = _faiss().IndexBinaryIDMap2(_faiss().IndexBinaryFlat(_CODE_BITS))

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        codes: np.ndarray = np.packbits(vectors @ _projection(self.dim) > 0, axis=1)
        return codes

    def add(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        if len(labels):
            self.index.add_with_ids(self.encode(vectors), labels)

    def within(self, vector: np.ndarray, radius: int) -> np.ndarray:
        _, _, labels = self.index.range_search(self.encode(vector.reshape(1, -1)), radius + 1)
        found: np.ndarray = labels
        return found


class _Space:
    """One namespace's FAISS index, its sign-bit codes and the record ids of its labels."""

    def __init__(self, index_type: IndexType, dim: int) -> None:
        self.index_type = index_type
        self.dim = dim
        self.ids: dict[str, int] = {}  # record id -> label
        self.trained_at = 0  # how many vectors the IVF index was trained on (0: flat)
        self.index = self._empty(0)
        self.codes = _Codes(dim)

    def _empty(self, size: int) -> Any:
        """A new index of this space's type for ``size`` vectors (IVF: untrained)."""
        faiss = _faiss()
        if self.index_type == "hnsw":
            graph = faiss.IndexHNSWFlat(self.dim, _HNSW_M, faiss.METRIC_INNER_PRODUCT)
            return faiss.IndexIDMap2(graph)
        if self.index_type == "ivf" and size >= _IVF_MIN_TRAIN:
            lists = int(math.sqrt(size))
            ivf = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(self.dim), self.dim, lists, faiss.METRIC_INNER_PRODUCT
            )
            ivf.nprobe = max(_IVF_NPROBE, lists // _IVF_PROBE_SHARE)
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct by label
            return ivf
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _rebuild(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Replace the index with a new one holding exactly these vectors."""
        index = self._empty(len(labels))
        if not index.is_trained:
            index.train(vectors)
        if len(labels):
            index.add_with_ids(vectors, labels)
        codes = _Codes(self.dim)
        codes.add(vectors, labels)
        self.index, self.codes = index, codes
        self.trained_at = (
            len(labels) if self.index_type == "ivf" and len(labels) >= _IVF_MIN_TRAIN else 0
        )

    def labels(self) -> np.ndarray:
        return np.fromiter(self.ids.values(), dtype=np.int64, count=len(self.ids))

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        if not len(labels):
            return np.empty((0, self.dim), dtype=np.float32)
        rows: np.ndarray = self.index.reconstruct_batch(labels)
        return rows

    def add(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        size = self.index.ntotal + len(labels)
        if self.index_type == "ivf" and size >= max(_IVF_MIN_TRAIN, _IVF_GROWTH * self.trained_at):
            # (Re)train on every vector the namespace will hold: clusters that fit them.
            held = self.labels()
            self._rebuild(
                np.concatenate([self.vectors(held), vectors]), np.concatenate([held, labels])
            )
        else:
            self.index.add_with_ids(vectors, labels)
            self.codes.add(vectors, labels)

    def remove(self, labels: np.ndarray) -> None:
        if self.index_type != "hnsw":
            self.index.remove_ids(labels)
            self.codes.index.remove_ids(labels)
            return
        held = self.labels()
        keep = held[~np.isin(held, labels)]
        self._rebuild(self.vectors(keep), keep)

    def restore(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Make the index hold exactly ``self.ids`` again after a write to it failed.

        Args:
            labels: Labels whose vectors the failed write may have removed.
            vectors: Their vectors, one row each.
        """
        held = self.labels()
        others = held[~np.isin(held, labels)]
        ours = np.isin(labels, held)
        self._rebuild(
            np.concatenate([self.vectors(others), vectors[ours]]),
            np.concatenate([others, labels[ours]]),
        )

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index_type == "hnsw":
            graph = _faiss().downcast_index(self.index.index)
            graph.hnsw.efSearch = max(_HNSW_EF_SEARCH, len(self.ids) // _HNSW_EF_SHARE)
        scores, labels = self.index.search(vector.reshape(1, -1), min(k, len(self.ids)))
        found = labels[0] >= 0
        return scores[0][found], labels[0][found]


class _FaissBackend(_InProcessBackend):
    """Records in this process, each vector only in its namespace's FAISS index.

    Args:
        index_type: The kind of index each namespace gets.
    """

    def __init__(self, index_type: IndexType = "flat") -> None:
        self.store = None
        self.index_type = check_index_type(index_type)
        self._records: dict[str, StrategyRecord] = {}
        self._spaces: dict[str, _Space] = {}
        self._ids: dict[int, str] = {}  # label -> record id
        self._next_label = 0
        self._dim: int | None = None

    def records(self, namespace: str | None) -> list[StrategyRecord]:
        if namespace is None:
            return list(self._records.values())
        space = self._spaces.get(namespace)
        return [self._records[i] for i in space.ids] if space else []

    def nearest(self, vector: np.ndarray, k: int, namespace: str, text: str) -> list[BackendHit]:
        space = self._spaces.get(namespace)
        if space is None or not space.ids:
            return []
        scores, labels = space.search(vector, k)
        rows = space.vectors(labels)
        return [
            BackendHit(self._records[self._ids[int(label)]], float(score), row)
            for score, label, row in zip(scores, labels, rows, strict=True)
        ]

    def near_duplicates(
        self, vector: np.ndarray, k: int, namespace: str, text: str, threshold: float
    ) -> list[BackendHit]:
        radius = hamming_radius(threshold)
        space = self._spaces.get(namespace)
        if radius is None or space is None:
            return super().near_duplicates(vector, k, namespace, text, threshold)
        labels = space.codes.within(vector, radius)
        rows = space.vectors(labels)
        scores = rows @ vector
        best = [i for i in np.argsort(-scores)[:k] if scores[i] >= threshold]
        return [
            BackendHit(self._records[self._ids[int(labels[i])]], float(scores[i]), rows[i])
            for i in best
        ]

    def insert(self, records: Sequence[StrategyRecord], vectors: np.ndarray) -> None:
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        labels = np.arange(self._next_label, self._next_label + len(records), dtype=np.int64)
        groups = self._group(r.namespace for r in records)
        added: list[str] = []
        try:
            for namespace, rows in groups.items():
                space = self._spaces.get(namespace) or _Space(self.index_type, self._dim)
                self._spaces[namespace] = space
                added.append(namespace)
                space.add(np.ascontiguousarray(vectors[rows]), labels[rows])
        except BaseException:
            for namespace in added:  # take back what the failed add kept
                self._spaces[namespace].restore(labels[:0], vectors[:0])
            self._drop_empty(added)
            raise
        self._next_label += len(records)
        for record, label in zip(records, labels.tolist(), strict=True):
            self._records[record.id] = record
            self._spaces[record.namespace].ids[record.id] = label
            self._ids[label] = record.id

    def delete(self, ids: Sequence[str]) -> None:
        known = [i for i in dict.fromkeys(ids) if i in self._records]
        groups = self._group(self._records[i].namespace for i in known)
        done: list[str] = []
        for namespace, rows in groups.items():
            space = self._spaces[namespace]
            labels = np.array([space.ids[known[row]] for row in rows], dtype=np.int64)
            kept = space.vectors(labels)
            try:
                space.remove(labels)
            except BaseException:
                space.restore(labels, kept)  # these records stay stored
                raise
            for row, label in zip(rows, labels.tolist(), strict=True):
                del self._records[known[row]], space.ids[known[row]], self._ids[label]
            done.append(namespace)
        self._drop_empty(done)

    def vectors(self, records: Sequence[StrategyRecord]) -> np.ndarray:
        out = np.empty((len(records), self._dim or 0), dtype=np.float32)
        for namespace, rows in self._group(r.namespace for r in records).items():
            space = self._spaces[namespace]
            out[rows] = space.vectors(np.array([space.ids[records[r].id] for r in rows]))
        return out

    def _drop_empty(self, namespaces: Iterable[str]) -> None:
        for namespace in namespaces:
            if not self._spaces[namespace].ids:
                del self._spaces[namespace]

    @staticmethod
    def _group(namespaces: Iterable[str]) -> dict[str, np.ndarray]:
        """The rows of each namespace, in order."""
        rows: dict[str, list[int]] = {}
        for row, namespace in enumerate(namespaces):
            rows.setdefault(namespace, []).append(row)
        return {space: np.array(found, dtype=np.int64) for space, found in rows.items()}
