"""Scale benchmark: filling, loading, namespaced search, memory and index types of a bank.

Synthetic records with 384-dim unit vectors; the embeddings hash each text to a
seeded random vector, so nothing is embedded by a model. Ratios are measured in
one process, side by side, over ``--rounds`` interleaved rounds (median):

- fill: ``add()`` per second into a bank already holding n strategies (10
  namespaces), at each of ``--fill-sizes``: flat with the default dedup, flat
  without dedup (the write path alone), HNSW with the default dedup;
- load: ``StrategyBank.load`` of a saved 100k bank (wall and CPU seconds);
- namespaces: ``search`` p50 in namespaces of 5 / 35 / 1,020 strategies of a
  100k bank, against a bank holding only that many, on the bank's own backend
  and on a LangChain ``FAISS`` store given as ``vectorstore``;
- memory: bytes per strategy beyond its record (RSS growth of a bulk insert
  of 100k records built beforehand, and the tracemalloc share of it);
- index types: ``search`` p50 and recall@2 against flat for each
  ``index_type`` in one namespace of each of ``--index-sizes`` strategies
  (clustered vectors: 50 per cluster at cosine ~0.7; queries near a stored one).

Results go into ``scale.json`` beside this file:

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bank/scale.py
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bank/scale.py --index-sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

import langchain_intercascade
from langchain_intercascade.bank import StrategyBank, persistence
from langchain_intercascade.strategies import Strategy, StrategyRecord

DIM = 384
N = 100_000


class HashEmbeddings(Embeddings):
    """A seeded random unit vector per text, or a given one for a registered text."""

    def __init__(self) -> None:
        self.known: dict[str, np.ndarray] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        if text in self.known:
            return self.known[text].tolist()
        vector = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIM)
        return (vector / np.linalg.norm(vector)).tolist()


EMBEDDINGS = HashEmbeddings()


def records(n: int, namespaces: Callable[[int], str], start: int = 0) -> list[StrategyRecord]:
    return [
        StrategyRecord.create(
            Strategy(
                title=f"Strategy {i}",
                applies_when=f"problems of kind {i}",
                steps=["Name the quantities", "Set up the equation", "Solve it"],
                pitfalls=["Check the units"],
            ),
            namespace=namespaces(i),
            source_query=f"synthetic question number {i} about apples and baskets",
        )
        for i in range(start, start + n)
    ]


def unit(rows: np.ndarray) -> np.ndarray:
    out: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return out


def random_vectors(n: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32))


def bulk_bank(recs: list[StrategyRecord], vectors: np.ndarray, **options: Any) -> StrategyBank:
    """A bank holding these records, written as ``load`` writes them."""
    bank = StrategyBank(EMBEDDINGS, **options)
    bank._backend.insert(recs, vectors)
    return bank


def median_of_rounds(jobs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each job once per round, interleaved; the median of each job's results."""
    results: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            results[name].append(job())
    return {name: statistics.median(values) for name, values in results.items()}


def p50_search(bank: StrategyBank, queries: list[str], namespace: str, k: int = 2) -> float:
    times = []
    for query in queries:
        start = time.perf_counter()
        bank.search(query, k=k, namespace=namespace)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


# -- the measures -----------------------------------------------------------------------


FILLS: dict[str, dict[str, Any]] = {
    "flat, dedup 0.9": {},
    "flat, no dedup": {"dedup_threshold": None},
    "hnsw, dedup 0.9": {"index_type": "hnsw"},
}


def fill(sizes: list[int], rounds: int, adds: int) -> list[dict[str, Any]]:
    banks = {}
    for variant, options in FILLS.items():
        for n in sizes:
            recs = records(n, lambda i: f"tenant-{i % 10}")
            banks[variant, n] = bulk_bank(recs, random_vectors(n, n), **options)
    counter = iter(range(10**9, 2 * 10**9, adds))

    def rate(bank: StrategyBank) -> Callable[[], float]:
        def job() -> float:
            batch = records(adds, lambda i: f"tenant-{i % 10}", start=next(counter))
            start = time.perf_counter()
            for record in batch:
                bank.add(record)
            return adds / (time.perf_counter() - start)

        return job

    rates = median_of_rounds({f"{v} {n}": rate(bank) for (v, n), bank in banks.items()}, rounds)
    return [{"variant": v, "n": n, "adds_per_s": rates[f"{v} {n}"]} for v in FILLS for n in sizes]


def load(rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bank"
        persistence.write_bank(
            folder, records(N, lambda i: f"tenant-{i % 10}"), random_vectors(N, 0)
        )
        runs = []
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            bank = StrategyBank.load(folder, embeddings=EMBEDDINGS)
            runs.append((time.perf_counter() - wall, time.process_time() - cpu))
            assert len(bank) == N
            del bank
    return {
        "n": N,
        "seconds": statistics.median(w for w, _ in runs),
        "cpu_seconds": statistics.median(c for _, c in runs),
    }


def langchain_faiss() -> Any:
    """An empty LangChain ``FAISS`` store, as a user would pass it as ``vectorstore``."""
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    index = faiss.IndexFlatIP(DIM)
    strategy = DistanceStrategy.MAX_INNER_PRODUCT
    return FAISS(EMBEDDINGS, index, InMemoryDocstore(), {}, distance_strategy=strategy)


# The bank's own backend, and a LangChain store given to it.
STORES: dict[str, Callable[[], dict[str, Any]]] = {
    "default": dict,
    "vectorstore=FAISS": lambda: {"vectorstore": langchain_faiss()},
}


def namespaces(rounds: int, queries: int) -> list[dict[str, Any]]:
    sizes = [5, 35, 1020]
    layout = [(f"ns-{s}", s) for s in sizes]
    rest = N - sum(sizes)
    recs = [r for name, s in layout for r in records(s, lambda i, name=name: name, start=0)]
    recs += records(rest, lambda i: f"tenant-{i % 10}", start=10_000)
    vectors = random_vectors(N, 1)
    texts = [f"query {i}" for i in range(queries)]
    jobs = {}
    for store, options in STORES.items():
        big = bulk_bank(recs, vectors, **options())
        offset = 0
        for name, s in layout:
            alone = bulk_bank(recs[offset : offset + s], vectors[offset : offset + s], **options())
            offset += s
            for where, bank in (("in 100k", big), ("alone", alone)):
                key = f"{store} {name} {where}"
                jobs[key] = lambda bank=bank, name=name: p50_search(bank, texts, name)
    p50 = median_of_rounds(jobs, rounds)
    return [
        {
            "store": store,
            "namespace_size": s,
            "p50_ms_in_100k": p50[f"{store} {name} in 100k"],
            "p50_ms_alone": p50[f"{store} {name} alone"],
            "ratio": p50[f"{store} {name} in 100k"] / p50[f"{store} {name} alone"],
        }
        for store in STORES
        for name, s in layout
    ]


def rss() -> int:
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed temporaries would hide the growth
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory() -> dict[str, float]:
    import tracemalloc

    recs = records(N, lambda i: f"tenant-{i % 10}")
    vectors = random_vectors(N, 2)
    bank = StrategyBank(EMBEDDINGS)
    tracemalloc.start()
    before_rss, before_traced = rss(), tracemalloc.get_traced_memory()[0]
    bank._backend.insert(recs, vectors)
    grown_rss, traced = rss() - before_rss, tracemalloc.get_traced_memory()[0] - before_traced
    tracemalloc.stop()
    return {
        "n": N,
        "bytes_per_strategy_rss": grown_rss / N,
        "bytes_per_strategy_python": traced / N,
        "vector_bytes": DIM * 4,
    }


def clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectors in clusters of 50 (cosine ~0.7 within one), and queries near stored ones."""
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((max(1, n // 50), DIM), dtype=np.float32))
    noise = unit(rng.standard_normal((n, DIM), dtype=np.float32)) * 0.65
    vectors = unit(centers[rng.integers(len(centers), size=n)] + noise)
    picked = vectors[rng.integers(n, size=200)]
    queries = unit(picked + 0.65 * unit(rng.standard_normal(picked.shape, dtype=np.float32)))
    return vectors, queries


def index_types(sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        vectors, queries = clustered(n, n)
        texts = [f"index query {i}" for i in range(len(queries))]
        EMBEDDINGS.known.update(zip(texts, queries, strict=True))
        recs = records(n, lambda i: "default")
        banks, built = {}, {}
        for kind in ("flat", "hnsw", "ivf"):
            start = time.perf_counter()
            banks[kind] = bulk_bank(recs, vectors, index_type=kind)
            built[kind] = time.perf_counter() - start
            print(f"  {kind} at {n:,}: built in {built[kind]:.1f} s", flush=True)
        truth = [{s.record.id for s in banks["flat"].search(t, k=2)} for t in texts]
        p50 = median_of_rounds(
            {
                kind: lambda bank=bank, texts=texts: p50_search(bank, texts, "default")
                for kind, bank in banks.items()
            },
            rounds,
        )
        for kind, bank in banks.items():
            hits = sum(
                len({s.record.id for s in bank.search(t, k=2)} & expected)
                for t, expected in zip(texts, truth, strict=True)
            )
            rows.append(
                {
                    "n": n,
                    "index_type": kind,
                    "p50_ms": p50[kind],
                    "recall_at_2": hits / (2 * len(texts)),
                    "build_s": built[kind],
                }
            )
        del banks
    return rows


# -- report -------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    if fills := results.get("fill"):
        print("\n| bank | strategies held | add() per s | slowdown vs the smallest |")
        print("|---|---:|---:|---:|")
        for row in fills:
            base = next(r for r in fills if r["variant"] == row["variant"])["adds_per_s"]
            print(
                f"| {row['variant']} | {row['n']:,} | {row['adds_per_s']:,.0f} "
                f"| {base / row['adds_per_s']:.2f}x |"
            )
    if loaded := results.get("load"):
        print(f"\nload of a saved {loaded['n']:,} bank: {loaded['seconds']:.2f} s wall, ", end="")
        print(f"{loaded['cpu_seconds']:.2f} s CPU")
    if spaces := results.get("namespaces"):
        print("\n| store | namespace | p50 in a 100k bank | p50 alone | ratio |")
        print("|---|---:|---:|---:|---:|")
        for row in spaces:
            print(
                f"| {row.get('store', 'default')} | {row['namespace_size']:,} "
                f"| {row['p50_ms_in_100k']:.3f} ms "
                f"| {row['p50_ms_alone']:.3f} ms | {row['ratio']:.2f}x |"
            )
    if mem := results.get("memory"):
        print(
            f"\nmemory per strategy beyond its record: {mem['bytes_per_strategy_rss']:,.0f} B "
            f"(RSS), of which Python objects {mem['bytes_per_strategy_python']:,.0f} B; "
            f"the vector itself {mem['vector_bytes']:,} B"
        )
    if kinds := results.get("index_types"):
        print("\n| strategies | index | p50 search | recall@2 vs flat | build |")
        print("|---:|---|---:|---:|---:|")
        for row in kinds:
            print(
                f"| {row['n']:,} | {row['index_type']} | {row['p50_ms']:.2f} ms "
                f"| {row['recall_at_2']:.3f} | {row['build_s']:.1f} s |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fill-sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--adds", type=int, default=200, help="adds timed per round")
    parser.add_argument("--queries", type=int, default=200, help="searches per round")
    parser.add_argument("--index-sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument(
        "--only", nargs="+", choices=["fill", "load", "namespaces", "memory", "index_types"]
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("scale.json"))
    args = parser.parse_args()
    measures: dict[str, Callable[[], Any]] = {
        "fill": lambda: fill(args.fill_sizes, args.rounds, args.adds),
        "load": lambda: load(args.rounds),
        "namespaces": lambda: namespaces(args.rounds, args.queries),
        "memory": memory,
        "index_types": lambda: index_types(args.index_sizes, args.rounds),
    }
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name, measure in measures.items():
        if args.only is None or name in args.only:
            print(f"{name} ...", flush=True)
            results[name] = measure()
    results["environment"] = {
        "package": str(Path(langchain_intercascade.__file__).parent),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "rounds": args.rounds,
        "dim": DIM,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    report(results)


if __name__ == "__main__":
    main()
