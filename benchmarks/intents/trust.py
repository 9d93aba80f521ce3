"""Which of the strong model's labels can be trusted enough to teach (issue 21, item 3)?

On the first ``--size`` messages of a seed's stream (``run.py``'s Zipf draw), the strong
model answers greedily (its label's token probability judged by ``LogprobJudge``) and
once more sampled at ``--temperature``. Two trust rules are compared with teaching
everything: the label's probability at or above a level, and agreement of the two
answers. Prints a table and writes ``--out`` (JSON).

    PYTHONPATH=$PWD python benchmarks/intents/trust.py --seed 0 \\
        --out benchmarks/intents/results/trust/seed0.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langchain_core.messages import HumanMessage
from run import CACHE, DATA, zipf_draw  # benchmarks/intents/run.py

from langchain_intercascade import create_intercascade
from langchain_intercascade.evaluation import collect_confidences, load_labelled, reliability
from langchain_intercascade.evaluation.runner import _llm_cache
from langchain_intercascade.judges import LogprobJudge
from langchain_intercascade.labels import LabelSet
from langchain_intercascade.models import local_chat_model
from langchain_intercascade.models.download import model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--strong", type=Path, default=model_dir() / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--stream-size", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    labels = LabelSet.from_file(args.data / "categories.json")
    test = load_labelled(args.data / "test.csv", labels, label_key="category")
    stream = zipf_draw(test, labels, args.stream_size, args.seed, 1.0)[: args.size]
    strong = local_chat_model(args.strong, logprobs=True, max_tokens=16, structured_output=False)
    greedy = create_intercascade(
        strong,
        strong,
        bank=None,
        options=labels.options(judge=LogprobJudge(extractor=labels.extract)),
        name="strong-trust",
    )
    sampler = strong.bind(temperature=args.temperature, seed=args.seed + 1)
    prompts = labels.prompts()
    with _llm_cache(args.cache):
        collected = collect_confidences(
            greedy,
            [([HumanMessage(e.question)], e.answer) for e in stream],
            labels.grade,
            config={"max_concurrency": 1},
        )
        samples = [
            sampler.invoke(prompts.with_task([HumanMessage(e.question)])).text for e in stream
        ]
    answered = [labels.extract(a) for a in collected.answers]
    agree = [
        a is not None and a == labels.extract(s) for a, s in zip(answered, samples, strict=True)
    ]
    right = collected.correct
    conf = collected.confidences

    def kept(mask: list[bool]) -> dict[str, float | int | None]:
        chosen = [r for r, m in zip(right, mask, strict=True) if m]
        return {
            "kept": len(chosen),
            "kept_share": len(chosen) / len(right),
            "right_among_kept": sum(chosen) / len(chosen) if chosen else None,
            "right_kept_share_of_right": sum(chosen) / sum(right) if sum(right) else None,
        }

    ranked = sorted(conf, reverse=True)
    rules: dict[str, dict[str, float | int | None]] = {"all": kept([True] * len(right))}
    for share in (0.5, 0.25, 0.1):
        level = ranked[max(0, int(share * len(ranked)) - 1)]
        rules[f"probability_top_{int(share * 100)}pct (>= {level:.3f})"] = kept(
            [c >= level for c in conf]
        )
    rules["two_samples_agree"] = kept(agree)
    rules["agree_and_probability_top_50pct"] = kept(
        [a and c >= ranked[len(ranked) // 2 - 1] for a, c in zip(agree, conf, strict=True)]
    )
    report = {
        "seed": args.seed,
        "messages": len(stream),
        "temperature": args.temperature,
        "strong_accuracy": sum(right) / len(right),
        "probability_auroc": reliability(conf, right).auroc,
        "agreement_auroc": reliability([float(a) for a in agree], right).auroc,
        "rules": rules,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"strong right on {100 * report['strong_accuracy']:.1f}% of {len(stream)} messages;")
    print(
        f"AUROC: label probability {report['probability_auroc']:.3f}, "
        f"two-sample agreement {report['agreement_auroc']:.3f}"
    )
    print("| teach | kept | right among kept | right labels kept |")
    print("|---|---|---|---|")
    for name, r in rules.items():
        among = "-" if r["right_among_kept"] is None else f"{100 * r['right_among_kept']:.1f}%"
        recall = r["right_kept_share_of_right"]
        print(
            f"| {name} | {r['kept']} ({100 * float(r['kept_share'] or 0):.0f}%) | {among} | "
            f"{'-' if recall is None else f'{100 * recall:.0f}%'} |"
        )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
