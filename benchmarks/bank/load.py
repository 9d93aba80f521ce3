"""Load benchmark: how long ``StrategyBank.load`` takes for a saved bank of n strategies.

Each bank holds synthetic ``StrategyRecord`` objects with seeded random 384-dim
unit vectors, written by ``persistence.write_bank`` (what ``StrategyBank.save``
writes); only the load is timed, the median of ``--repeat`` runs, in wall-clock
seconds and in CPU seconds of this process (steadier on a shared machine; with
``OMP_NUM_THREADS=1`` the two agree on an idle one). Results go into
``load.json`` beside this file under ``--label``, so runs of two versions of the
package (``PYTHONPATH`` pointing at each checkout) sit side by side:

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bank/load.py --label after
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

import langchain_intercascade
from langchain_intercascade.bank import StrategyBank, persistence
from langchain_intercascade.strategies import Strategy, StrategyRecord

DIM = 384


class FixedEmbeddings(Embeddings):
    """Answers the load's dimension check; nothing is embedded while loading."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * (DIM - 1) for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def write_saved_bank(folder: Path, n: int, seed: int) -> None:
    records = [
        StrategyRecord.create(
            Strategy(
                title=f"Strategy {i}",
                applies_when=f"problems of kind {i}",
                steps=["Name the quantities", "Set up the equation", "Solve it"],
                pitfalls=["Check the units"],
            ),
            namespace=f"tenant-{i % 10}",
            source_query=f"synthetic question number {i} about apples and baskets",
        )
        for i in range(n)
    ]
    vectors = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    persistence.write_bank(folder, records, vectors)


def time_load(folder: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one load."""
    wall, cpu = time.perf_counter(), time.process_time()
    bank = StrategyBank.load(folder, embeddings=FixedEmbeddings())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(bank) == json.loads((folder / "manifest.json").read_text())["count"]
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="e.g. before or after")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="loads per size (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("load.json"))
    args = parser.parse_args()

    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "bank"
            write_saved_bank(folder, n, args.seed)
            size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            runs = [time_load(folder) for _ in range(args.repeat)]
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        rows.append(
            {"n": n, "seconds": wall, "cpu_seconds": cpu, "runs": runs, "folder_mb": size_mb}
        )
        print(f"{args.label}: {n} strategies loaded in {wall:.2f} s ({cpu:.2f} s CPU)")

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    # Sizes measured in an earlier run under this label are kept.
    kept = [r for r in results.get(args.label, {}).get("rows", []) if r["n"] not in args.sizes]
    results[args.label] = {
        "package": str(Path(langchain_intercascade.__file__).parent),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "dim": DIM,
        "rows": sorted(kept + rows, key=lambda row: row["n"]),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    labels = list(results)
    sizes = sorted({row["n"] for label in labels for row in results[label]["rows"]})
    print("\n| strategies | " + " | ".join(f"{label}: wall / CPU (s)" for label in labels) + " |")
    print("|---:|" + "---:|" * len(labels))
    for n in sizes:
        cells = [
            next(
                (
                    f"{r['seconds']:.2f} / {r['cpu_seconds']:.2f}"
                    for r in results[label]["rows"]
                    if r["n"] == n
                ),
                "",
            )
            for label in labels
        ]
        print(f"| {n:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
