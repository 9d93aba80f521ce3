"""Latency a user sees on a deferred query, distillation in the turn vs in the background.

Scripted models that sleep like real ones (weak 50 ms, strong answer and distillation
300 ms each). Rounds are interleaved; the table shows medians and the ratio.

Usage: python benchmarks/latency/deferred.py [--rounds 7] [--out benchmarks/latency/deferred.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.testing import (
    BagOfWordsEmbeddings,
    ScriptedChatModel,
    strong_respond,
    weak_logprob,
    weak_respond,
)

WEAK_S, STRONG_S = 0.05, 0.3


def sleeping(respond, seconds):
    def reply(messages):
        time.sleep(seconds)
        return respond(messages)

    return reply


def one_deferred_query(background: bool, n: int) -> float:
    weak = ScriptedChatModel(respond=sleeping(weak_respond, WEAK_S), logprob=weak_logprob)
    strong = ScriptedChatModel(respond=sleeping(strong_respond, STRONG_S), model_name="strong")
    cascade = create_intercascade(
        weak,
        strong,
        bank=StrategyBank(BagOfWordsEmbeddings()),
        distill_in_background=background,
    )
    question = f"Sam has {n} baskets with 4 apples in each basket. How many apples?"
    started = time.perf_counter()
    out = cascade.invoke(question)
    elapsed = time.perf_counter() - started
    assert out["route"] == "strong"
    cascade.wait_for_distillations()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args()
    times: dict[str, list[float]] = {"in the turn": [], "background": []}
    for n in range(args.rounds):
        times["in the turn"].append(one_deferred_query(False, n + 3))
        times["background"].append(one_deferred_query(True, n + 3))
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["background"] / medians["in the turn"]
    print(f"| distillation | median latency of a deferred query (s), {args.rounds} rounds |")
    print("|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.3f} |")
    print(f"\nbackground / in the turn: {ratio:.2f}")
    result = {"weak_s": WEAK_S, "strong_s": STRONG_S, "times_s": times, "median_s": medians}
    Path(args.out).write_text(json.dumps({**result, "ratio": ratio}, indent=1) + "\n")


if __name__ == "__main__":
    main()
