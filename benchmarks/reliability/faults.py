"""Queries under load with seeded faults: no paid answer lost, no strategy lost.

200 recurring questions (20 templates) go through ``abatch(max_concurrency=32)``.
Every weak, strong and distillation call and every embedding fails at random with
a seeded probability. Counted: answers returned, turns that raised (only when both
models failed), distillations that stored a strategy, and strategies the bank
should hold but does not (must be 0). Prints a table and writes JSON.

Usage: python benchmarks/reliability/faults.py [--queries 200] [--fault-rate 0.15] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import threading
from pathlib import Path

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.testing import (
    BagOfWordsEmbeddings,
    ScriptedChatModel,
    strong_respond,
    weak_logprob,
    weak_respond,
)

NOUNS = ["boxes", "crates", "bags", "shelves", "trays", "jars", "rows", "racks", "bins", "carts"]
ITEMS = ["pens", "apples", "books", "cups", "eggs"]


class Faults:
    """Seeded random faults, counted per kind."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate, self.random, self.lock = rate, random.Random(seed), threading.Lock()
        self.injected: dict[str, int] = {}

    def maybe(self, kind: str) -> None:
        with self.lock:
            hit = self.random.random() < self.rate
            if hit:
                self.injected[kind] = self.injected.get(kind, 0) + 1
        if hit:
            raise ConnectionError(f"injected {kind} fault")


class FaultyEmbeddings(BagOfWordsEmbeddings):
    faults: Faults | None = None

    def embed_documents(self, texts):
        assert self.faults is not None
        self.faults.maybe("embeddings")
        return super().embed_documents(texts)

    def embed_query(self, text):
        assert self.faults is not None
        self.faults.maybe("embeddings")
        return super().embed_query(text)


def faulty(respond, faults: Faults, kind_of):
    def reply(messages):
        faults.maybe(kind_of(messages))
        return respond(messages)

    return reply


def questions(n: int) -> list[str]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        noun, item = NOUNS[i % len(NOUNS)], ITEMS[(i // len(NOUNS)) % len(ITEMS)]
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        out.append(f"Sam has {a} {noun} with {b} {item} in each of the {noun}. How many {item}?")
    return out


async def run(queries: int, rate: float, seed: int) -> dict:
    faults = Faults(rate, seed)
    embeddings = FaultyEmbeddings()
    embeddings.faults = faults
    bank = StrategyBank(embeddings)
    weak = ScriptedChatModel(
        respond=faulty(weak_respond, faults, lambda m: "weak"), logprob=weak_logprob
    )
    strong = ScriptedChatModel(
        respond=faulty(
            strong_respond,
            faults,
            lambda m: "distill" if m[-1].text.startswith("Problem:") else "strong",
        ),
        supports_tools=False,  # strategies parsed from text, so distill faults hit here
    )
    # max_retries=0: every injected fault reaches the cascade's containment.
    cascade = create_intercascade(weak, strong, bank=bank, max_retries=0)
    outs = await cascade.abatch(questions(queries), {"max_concurrency": 32}, return_exceptions=True)
    answered = [o for o in outs if isinstance(o, dict)]
    raised = [o for o in outs if not isinstance(o, dict)]
    distilled = [o["new_strategy"] for o in answered if o.get("new_strategy") is not None]
    stored = {record.id for record in distilled}
    in_bank = {r.id for r in bank.records()}
    return {
        "queries": queries,
        "fault_rate": rate,
        "faults_injected": faults.injected,
        "answered": len(answered),
        "raised": len(raised),
        "raised_because": sorted({str(e) for e in raised}),
        "routes": {
            r: sum(o["route"] == r for o in answered) for r in {o["route"] for o in answered}
        },
        "turns_with_contained_errors": sum(bool(o["errors"]) for o in answered),
        "distillations_stored_or_merged": len(distilled),
        "distinct_strategies_reported": len(stored),
        "strategies_in_bank": len(in_bank),
        "strategies_lost": len(stored - in_bank),
    }


def main() -> None:
    logging.getLogger("langchain_intercascade").setLevel(logging.ERROR)  # faults are expected
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args()
    result = asyncio.run(run(args.queries, args.fault_rate, args.seed))
    print("| what | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value} |")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    assert result["strategies_lost"] == 0


if __name__ == "__main__":
    main()
