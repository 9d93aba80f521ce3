"""A long run under faults: memory stays flat.

``--queries`` questions (10,000) of ``faults.py``'s 40 kinds go through
``abatch(max_concurrency=32)`` in chunks, with seeded faults in every model call and
embedding, a :class:`CascadeCostTracker` on every run and distillation in the
background with nobody waiting for it: the way a server runs. After a warm-up
(``--warmup`` queries, not counted), the resident set size and the Python heap
(tracemalloc) are read at the start, after every chunk and at the end, with what the
long-lived objects hold: the tracker's run maps, the kept and dropped background
distillations, the bank. Scripted models only (no llama.cpp). Prints a table and
writes JSON.

tracemalloc keeps a trace of every live block, outside the heap it reports
(``tracemalloc_own_mib``), and its allocations fragment the heap: RSS read with it
on grows by what the measurement costs. ``--no-tracemalloc`` reads RSS alone.
``rss_trimmed_mib`` is RSS after ``malloc_trim(0)`` (glibc): what is left once
malloc returns the freed pages it keeps.

Usage: python benchmarks/reliability/soak.py [--queries 10000] [--chunk 1000]
       [--fault-rate 0.15] [--seed 0] [--no-tracemalloc] [--out soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import json
import logging
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from faults import Faults, questions, world  # noqa: E402

from langchain_intercascade import StrategyBank, create_intercascade  # noqa: E402
from langchain_intercascade.callbacks import CascadeCostTracker  # noqa: E402


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return trim


def rss_mib() -> float:
    """The process's resident set size in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(
    queries: int, chunk: int, warmup: int, rate: float, seed: int, trace: bool = True
) -> dict[str, Any]:
    faults = Faults(rate, seed)
    weak, strong, embeddings = world(faults)
    bank = StrategyBank(embeddings)
    cascade = create_intercascade(
        weak, strong, bank=bank, max_retries=0, distill_in_background=True, distill_kept=100
    )
    tracker = CascadeCostTracker()
    stream = [q for batch in questions(40, (queries + warmup) // 40 + 1) for q in batch]
    config = {"max_concurrency": 32, "callbacks": [tracker]}

    async def run(batch: list[str]) -> int:
        outs = await cascade.abatch(batch, config, return_exceptions=True)
        # The scripted models keep every prompt (for tests), and the fault injector every
        # call's text (for reproducibility): not what is measured here.
        weak.calls.clear()
        strong.calls.clear()
        faults.seen.clear()
        return sum(not isinstance(o, dict) for o in outs)

    await run(stream[:warmup])
    cascade.context.background.wait()  # type: ignore[union-attr]
    if trace:
        tracemalloc.start()
    trim = _malloc_trim()
    checkpoints = []

    def checkpoint(done: int, raised: int, started: float) -> None:
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
        background = cascade.context.background
        assert background is not None
        rss = rss_mib()
        if trim is not None:
            trim(0)
        checkpoints.append(
            {
                "queries": done,
                "seconds": round(time.perf_counter() - started, 1),
                "rss_mib": round(rss, 1),
                "rss_trimmed_mib": round(rss_mib(), 1) if trim is not None else None,
                "tracemalloc_mib": round(current / 2**20, 2) if trace else None,
                "tracemalloc_own_mib": (
                    round(tracemalloc.get_tracemalloc_memory() / 2**20, 2) if trace else None
                ),
                "raised": raised,
                "tracker_runs_held": len(tracker._parents) + len(tracker._covered),
                "distillations_kept": len(background._done),
                "distillations_dropped": background.dropped,
                "strategies_in_bank": len(bank),
            }
        )

    started = time.perf_counter()
    checkpoint(0, 0, started)
    done = raised = 0
    body = stream[warmup : warmup + queries]
    for start in range(0, queries, chunk):
        raised += await run(body[start : start + chunk])
        done += len(body[start : start + chunk])
        checkpoint(done, raised, started)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    first, last = checkpoints[0], checkpoints[-1]
    return {
        "queries": queries,
        "warmup": warmup,
        "fault_rate": rate,
        "seed": seed,
        "tracemalloc": trace,
        "faults_injected": dict(sorted(faults.injected.items())),
        "turns_counted_by_tracker": tracker.total.queries,
        "rss_mib_start": first["rss_mib"],
        "rss_mib_end": last["rss_mib"],
        "rss_trimmed_mib_start": first["rss_trimmed_mib"],
        "rss_trimmed_mib_end": last["rss_trimmed_mib"],
        "tracemalloc_mib_start": first["tracemalloc_mib"],
        "tracemalloc_mib_end": last["tracemalloc_mib"],
        "tracemalloc_mib_peak": round(peak / 2**20, 2) if trace else None,
        "checkpoints": checkpoints,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.getLogger("langchain_intercascade").setLevel(logging.CRITICAL)  # faults expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-tracemalloc", dest="trace", action="store_false", help="read RSS alone"
    )
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args(argv)
    result = asyncio.run(
        soak(args.queries, args.chunk, args.warmup, args.fault_rate, args.seed, args.trace)
    )
    columns = list(result["checkpoints"][0])
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in result["checkpoints"]:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    print({k: v for k, v in result.items() if k != "checkpoints"})
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
