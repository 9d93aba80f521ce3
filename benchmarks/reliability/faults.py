"""Queries under load with seeded faults: no paid answer lost, no strategy lost.

``--templates`` kinds of question (40), each with words of its own, recur for
``--rounds`` rounds (5): 200 queries. Each round goes through
``abatch(max_concurrency=32)``. Every weak, strong and distillation call and every
embedding fails with a seeded probability. Counted: answers returned, turns that
raised (only when both models failed), distillations that stored a strategy, and
strategies the bank should hold but does not (must be 0), or holds twice.

Reproducible for a seed: whether a call fails is a hash of the seed, the call's
kind and text, and how often that text was seen, never the order in which
threads get there; and a round's questions are of different kinds, which never
retrieve each other's strategies, so what one turn sees does not depend on how
far the others have got. The rounds run one after another, so a kind's second
question sees the strategy its first one stored.

Usage: python benchmarks/reliability/faults.py [--templates 40] [--rounds 5]
       [--fault-rate 0.15] [--seed 0] [--out faults.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from langchain_intercascade import Strategy, StrategyBank, create_intercascade
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"
# Wide vectors: words of different kinds almost never share a hashed dimension.
DIM = 4096


def kind_words(kind: int, count: int = 4) -> list[str]:
    """Invented words of one question kind, shared by no other kind."""
    words = []
    for j in range(count):
        n = kind * count + j
        c, v = len(_CONSONANTS), len(_VOWELS)
        words.append(
            _CONSONANTS[n % c]
            + _VOWELS[(n // c) % v]
            + _CONSONANTS[(n // (c * v)) % c]
            + _VOWELS[(n // (c * v * c)) % v]
            + "x"
        )
    return words


WARM_UP = Strategy(title="Warm-up", applies_when="a question never asked", steps=["Nothing"])


def question(kind: int, a: int, b: int) -> str:
    return f"{' '.join(kind_words(kind))}: {a} times {b}?"


def questions(templates: int, rounds: int) -> list[list[str]]:
    """One question of every kind per round, numbers from a seeded generator."""
    rng = random.Random(1)
    return [
        [question(kind, rng.randint(2, 99), rng.randint(2, 99)) for kind in range(templates)]
        for _ in range(rounds)
    ]


def _title(text: str) -> str | None:
    words = re.match(r"((?:[a-z]+x ){3}[a-z]+x):", text)
    return f"Method {words.group(1)}" if words else None


class Faults:
    """Seeded faults, by the call's kind and text and how often that text was seen."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate, self.seed, self.lock = rate, seed, threading.Lock()
        self.seen: Counter[tuple[str, str]] = Counter()
        self.injected: Counter[str] = Counter()

    def maybe(self, kind: str, text: str) -> None:
        with self.lock:
            self.seen[kind, text] += 1
            key = f"{self.seed}|{kind}|{self.seen[kind, text]}|{text}".encode()
            hit = int(hashlib.sha256(key).hexdigest()[:8], 16) / 16**8 < self.rate
            self.injected[kind] += hit
        if hit:
            raise ConnectionError(f"injected {kind} fault")


class FaultyEmbeddings(BagOfWordsEmbeddings):
    def __init__(self, faults: Faults) -> None:
        super().__init__(dim=DIM)
        self.faults = faults

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.faults.maybe("embeddings", "\n".join(texts))
        return super().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.faults.maybe("embeddings", text)
        return super().embed_query(text)


def _last_human(messages: list[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def _product(text: str) -> int:
    a, b = (int(n) for n in re.findall(r"\d+", text)[:2])
    return a * b


def _shown(messages: list[BaseMessage]) -> str:
    return "\n".join(m.text for m in messages if isinstance(m, SystemMessage))


def weak_respond(messages: list[BaseMessage]) -> str:
    """Right only when shown its own kind's strategy; unaided it adds the numbers."""
    text = _last_human(messages)
    title = _title(text)
    if title is not None and title in _shown(messages):
        return f"The answer is {_product(text)}."
    a, b = (int(n) for n in re.findall(r"\d+", text)[:2])
    return f"The answer is {a + b}."


def weak_logprob(messages: list[BaseMessage], reply: str) -> float:
    title = _title(_last_human(messages))
    return -0.05 if title is not None and title in _shown(messages) else -1.5


def strong_respond(messages: list[BaseMessage]) -> str:
    """Always right; distills one strategy per kind of question."""
    text = _last_human(messages)
    if text.startswith("Problem:"):  # the distillation prompt
        title = _title(text.removeprefix("Problem:").strip()) or "Method"
        return json.dumps(
            {
                "title": title,
                "applies_when": f"The question starts with {title.removeprefix('Method ')}",
                "steps": ["Multiply the two numbers", "Report the product"],
            }
        )
    return f"Multiply: the answer is {_product(text)}."


def world(faults: Faults) -> tuple[ScriptedChatModel, ScriptedChatModel, FaultyEmbeddings]:
    """The weak and strong models and embeddings, each failing as ``faults`` says."""

    def faulty(respond: Any, kind_of: Any) -> Any:
        def reply(messages: list[BaseMessage]) -> str:
            faults.maybe(kind_of(messages), "\n".join(m.text for m in messages))
            return respond(messages)

        return reply

    weak = ScriptedChatModel(respond=faulty(weak_respond, lambda m: "weak"), logprob=weak_logprob)
    strong = ScriptedChatModel(
        respond=faulty(
            strong_respond,
            lambda m: "distill" if _last_human(m).startswith("Problem:") else "strong",
        ),
        supports_tools=False,  # strategies parsed from text, so distill faults hit here
    )
    return weak, strong, FaultyEmbeddings(faults)


async def run(templates: int, rounds: int, rate: float, seed: int) -> dict[str, Any]:
    faults = Faults(rate, seed)
    weak, strong, embeddings = world(faults)
    bank = StrategyBank(embeddings)
    # Never empty, so every query is embedded: an empty bank skips the embedding,
    # and which queries of the first round found it empty would depend on timing.
    rate, faults.rate = faults.rate, 0.0
    bank.add(WARM_UP, source_query="qqqqx vvvvx: never asked")
    faults.rate = rate
    # max_retries=0: every injected fault reaches the cascade's containment.
    cascade = create_intercascade(weak, strong, bank=bank, max_retries=0)
    outs: list[Any] = []
    for batch in questions(templates, rounds):
        outs += await cascade.abatch(batch, {"max_concurrency": 32}, return_exceptions=True)
    answered = [o for o in outs if isinstance(o, dict)]
    raised = [o for o in outs if not isinstance(o, dict)]
    distilled = [o["new_strategy"] for o in answered if o.get("new_strategy") is not None]
    stored = {record.id for record in distilled}
    records = bank.records()
    titles = Counter(r.strategy.title for r in records)
    return {
        "queries": len(outs),
        "templates": templates,
        "rounds": rounds,
        "fault_rate": rate,
        "seed": seed,
        "faults_injected": dict(sorted(faults.injected.items())),
        "answered": len(answered),
        "raised": len(raised),
        "raised_because": sorted({str(e) for e in raised}),
        "routes": dict(sorted(Counter(o["route"] for o in answered).items())),
        "turns_with_contained_errors": sum(bool(o["errors"]) for o in answered),
        "distillations_stored_or_merged": len(distilled),
        "distinct_strategies_reported": len(stored),
        "strategies_in_bank": len(records),
        "strategies_held_twice": sum(n - 1 for n in titles.values()),
        "strategies_lost": len(stored - {r.id for r in records}),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.getLogger("langchain_intercascade").setLevel(logging.ERROR)  # faults are expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.templates, args.rounds, args.fault_rate, args.seed))
    print("| what | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value} |")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    assert result["strategies_lost"] == 0 and result["strategies_held_twice"] == 0
    return result


if __name__ == "__main__":
    main()
