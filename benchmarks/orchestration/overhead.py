"""The cascade's orchestration overhead against a bare LangGraph graph of the same shape.

Both run the same instant scripted weak model; the cascade's judge accepts every
answer (an accepted pass: retrieve, weak answer, judge). A second table runs 64
concurrent ``ainvoke`` calls against models that sleep 50 ms, and compares each
graph's concurrency ratio (64 queries' wall time / one query's, the median of
five). Rounds are interleaved; medians are reported, and the median and quartiles of each round's
cascade / bare ratio. A third table times one structured distillation call, as the
cascade makes it (the model, then what reads its reply) and through
``with_structured_output(include_raw=True)``.

Usage: python benchmarks/orchestration/overhead.py [--rounds 15] [--n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langgraph._internal._runnable import RunnableCallable
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_intercascade import CascadeOptions, Strategy, create_intercascade
from langchain_intercascade.graph.context import _distiller
from langchain_intercascade.testing import ScriptedChatModel, fake_models

QUESTION = "Sam has 3 boxes with 4 pens in each box. How many pens?"


class Sleeping(ScriptedChatModel):
    """A scripted model whose async calls take ``delay`` seconds."""

    delay: float = 0.0

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        await asyncio.sleep(self.delay)
        return self._generate(messages, stop, run_manager, **kwargs)


def bare_graph(weak: ScriptedChatModel) -> Any:
    """retrieve -> answer -> judge over messages alone; every node runs on the event loop."""

    def nothing(state: MessagesState) -> dict[str, Any]:
        return {}

    async def anothing(state: MessagesState) -> dict[str, Any]:
        return {}

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [weak.invoke(state["messages"])]}

    async def aanswer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await weak.ainvoke(state["messages"])]}

    # LangGraph runs a plain function's async path in a thread, as the cascade's nodes do not.
    graph = StateGraph(MessagesState)
    graph.add_node("retrieve", RunnableCallable(nothing, anothing, trace=False))
    graph.add_node("answer", RunnableCallable(answer, aanswer, trace=False))
    graph.add_node("judge", RunnableCallable(nothing, anothing, trace=False))
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "answer")
    graph.add_edge("answer", "judge")
    graph.add_edge("judge", END)
    return graph.compile()


def graphs(delay: float) -> dict[str, Any]:
    weak = Sleeping(respond=lambda m: "Paris.", logprob=-0.01, delay=delay)
    strong = Sleeping(respond=lambda m: "Paris.", delay=delay)
    cascade = create_intercascade(weak, strong, bank=None)  # the default judge reads logprobs
    return {"bare graph": bare_graph(weak), "cascade": cascade}


def per_pass(graph: Any, n: int) -> float:
    value = {"messages": [("human", "What is the capital of France?")]}
    gc.collect()
    started = time.perf_counter()
    for _ in range(n):
        out = graph.invoke(value)
        assert isinstance(out["messages"][-1], AIMessage)
    return (time.perf_counter() - started) / n


async def concurrency_ratio(graph: Any, queries: int, singles: int = 5) -> float:
    value = {"messages": [("human", "What is the capital of France?")]}

    async def timed(*runs: Any) -> float:
        gc.collect()  # a full collection inside a 0.1 s window would swamp what is measured
        started = time.perf_counter()
        await asyncio.gather(*runs)
        return time.perf_counter() - started

    await graph.ainvoke(value)  # warm up this event loop
    one = statistics.median([await timed(graph.ainvoke(value)) for _ in range(singles)])
    return await timed(*(graph.ainvoke(value) for _ in range(queries))) / one


def distill_call_ms(n: int) -> dict[str, float]:
    """Milliseconds per structured distillation call with an instant scripted strong model."""
    strong = fake_models()[1]
    prompt = CascadeOptions().prompts.distill.invoke({"question": QUESTION, "solution": "12."})
    with_raw = strong.with_structured_output(Strategy, include_raw=True)
    model, reader = _distiller(strong)
    assert model is not None and reader is not None

    def two_steps() -> Any:
        return reader.invoke(model.invoke(prompt))

    calls = {"model, then reader": two_steps, "include_raw=True": lambda: with_raw.invoke(prompt)}
    times = {}
    for name, call in calls.items():
        gc.collect()
        started = time.perf_counter()
        for _ in range(n):
            call()
        times[name] = 1000 * (time.perf_counter() - started) / n
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args()
    instant, sleeping = graphs(0.0), graphs(0.05)
    passes: dict[str, list[float]] = {name: [] for name in instant}
    ratios: dict[str, list[float]] = {name: [] for name in sleeping}
    distills: list[dict[str, float]] = []
    for _ in range(args.rounds):
        distills.append(distill_call_ms(args.n))
        for name, graph in instant.items():
            passes[name].append(per_pass(graph, args.n))
        for name, graph in sleeping.items():
            ratios[name].append(asyncio.run(concurrency_ratio(graph, args.queries)))
    pass_ms = {k: 1000 * statistics.median(v) for k, v in passes.items()}
    ratio = {k: statistics.median(v) for k, v in ratios.items()}
    print("| graph | accepted pass (ms) | 64 concurrent / one query |")
    print("|---|---|---|")
    for name in pass_ms:
        print(f"| {name} | {pass_ms[name]:.2f} | {ratio[name]:.2f} |")
    # Each round's cascade / bare ratio: the graphs ran side by side, so noise between
    # rounds cancels; the spread says how far one run's figure can be trusted.
    pairs = {
        key: [c / b for c, b in zip(times["cascade"], times["bare graph"], strict=True)]
        for key, times in (("pass_overhead", passes), ("concurrency_overhead", ratios))
    }
    spread = {k: statistics.quantiles(v, n=4) for k, v in pairs.items()}
    median = {k: statistics.median(v) for k, v in pairs.items()}
    print("\n| cascade / bare graph, per round | median | quartiles |\n|---|---|---|")
    labels = {"pass_overhead": "accepted pass", "concurrency_overhead": "concurrency ratio"}
    for key, label in labels.items():
        q1, _, q3 = spread[key]
        print(f"| {label} | {median[key]:.2f}x | {q1:.2f}–{q3:.2f} |")
    distill_ms = {k: statistics.median(d[k] for d in distills) for k in distills[0]}
    print("\n| structured distillation call | ms |\n|---|---|")
    for name, ms in distill_ms.items():
        print(f"| {name} | {ms:.2f} |")
    result = {"pass_ms": pass_ms, "concurrency_ratio": ratio, "rounds": args.rounds}
    result["distill_call_ms"] = distill_ms
    result |= {**median, **{f"{k}_quartiles": [v[0], v[2]] for k, v in spread.items()}}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
