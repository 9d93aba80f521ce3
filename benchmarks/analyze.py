"""Why did (or didn't) Inter-Cascade help? Read a benchmark run's records.jsonl, no models.

Prints, for the Inter-Cascade configuration: how often a strategy was shown, whether
the strategy came from the same problem template (gsm_symbolic example ids carry the
template), how many distilled strategies hold concrete numbers, and the
weak model's accuracy on the same questions with and without the strategies. Then,
for both cascades, how well each recorded judge signal separates right from wrong
weak answers (AUROC), and a replay of the cascades with the token-probability
signal as the judge at several thresholds: accepted questions keep the weak answer,
the others take the strong-only answer to the same question. (The replay keeps
Inter-Cascade's bank as it was; with another judge other queries would have been
deferred and distilled.)

Usage: python benchmarks/analyze.py benchmarks/results/symbolic
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from langchain_intercascade.answers import extract_number
from langchain_intercascade.evaluation import QueryRecord, auroc, load_records

SIGNALS = ("confidence", "logprob_min_token_prob", "logprob_mean_token_prob")


def template(record: QueryRecord) -> str:
    # gsm-symbolic-{template}-{index}; other data sets have no template.
    parts = record.example_id.split("-")
    return parts[2] if record.example_id.startswith("gsm-symbolic-") else record.example_id


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({hits / total:.0%})" if total else "0/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    records = load_records(args.folder / "records.jsonl")
    ic = records.get("intercascade", [])
    plain = {r.position: r for r in records.get("cascade", records.get("weak", []))}
    origin = {r.new_strategy_id: r for r in ic if r.new_strategy_id}

    shown = [r for r in ic if r.strategies_shown]
    same = [
        r
        for r in shown
        if r.strategy_ids
        and r.strategy_ids[0] in origin
        and template(origin[r.strategy_ids[0]]) == template(r)
    ]
    print(f"questions: {len(ic)}; strategies distilled: {len(origin)}")
    print(f"strategy shown: {_rate(len(shown), len(ic))}")
    print(f"top strategy from the same template: {_rate(len(same), len(shown))}")

    # A general strategy rarely needs a number of two or more digits or a decimal;
    # the solved problem's numbers usually have them.
    leaks = sum(bool(re.search(r"\d{2,}|\d\.\d", r.new_strategy or "")) for r in origin.values())
    print(f"strategies with multi-digit or decimal numbers: {_rate(leaks, len(origin))}")

    # Did the weak model copy the worked example's result instead of solving its own problem?
    copied = sum(
        extract_number(r.weak_reply or "") is not None
        and extract_number(r.weak_reply or "") == origin[r.strategy_ids[0]].predicted
        for r in same
    )
    print(f"weak answer = the top strategy's source answer (copied): {_rate(copied, len(same))}")

    right_source = [r for r in same if origin[r.strategy_ids[0]].correct]
    print(f"top strategy from a right strong answer: {_rate(len(right_source), len(same))}")

    groups = (("shown any", shown), ("same template", same), ("right source", right_source))
    for label, group in groups:
        paired = [(r, plain[r.position]) for r in group if r.position in plain]
        with_s = sum(bool(r.weak_correct) for r, _ in paired)
        without = sum(bool(p.weak_correct) for _, p in paired)
        print(
            f"weak accuracy, {label}: with strategies {_rate(with_s, len(paired))}, "
            f"same questions without {_rate(without, len(paired))}"
        )
        accepted = sum(r.route == "weak" for r, _ in paired)
        accepted_plain = sum(p.route == "weak" for _, p in paired)
        print(f"  accepted by the judge: with {accepted}, without {accepted_plain}")
    judges_report(records)


def signal(record: QueryRecord, name: str) -> float | None:
    return record.confidence if name == "confidence" else record.judge_details.get(name)


def judges_report(records: dict[str, list[QueryRecord]]) -> None:
    strong = {r.position: r.correct for r in records.get("strong", [])}
    for name in ("cascade", "intercascade"):
        rows = [r for r in records.get(name, []) if r.weak_correct is not None]
        if not rows:
            continue
        labels = [bool(r.weak_correct) for r in rows]
        print(f"\n{name}: weak right {sum(labels)}/{len(rows)}")
        for sig in SIGNALS:
            values = [signal(r, sig) for r in rows]
            if any(v is None for v in values):
                continue
            score = auroc(values, labels)
            print(f"  AUROC {sig}: {'-' if score is None else f'{score:.3f}'}")
        # Replay: only questions whose strong-only answer is known.
        replay = [r for r in rows if r.position in strong and r.judge_details]
        if not replay:
            continue
        lp = np.array([r.judge_details["logprob_min_token_prob"] for r in replay])
        weak_ok = np.array([bool(r.weak_correct) for r in replay])
        strong_ok = np.array([strong[r.position] for r in replay])
        print(f"  replay on {len(replay)} questions (logprob_min as the judge):")
        print("  | deferred | threshold | system accuracy | weak answers accepted (right) |")
        for rate in (1.0, 0.9, 0.8, 0.7, 0.5):
            t = np.inf if rate == 1.0 else float(np.quantile(lp, rate))
            take = lp >= t
            acc = np.where(take, weak_ok, strong_ok).mean()
            print(
                f"  | {1 - take.mean():.0%} | {t:.3f} | {acc:.1%} "
                f"| {take.sum()} ({(take & weak_ok).sum()}) |"
            )
        oracle = np.where(weak_ok, weak_ok, strong_ok).mean()
        print(
            f"  oracle judge (accept exactly the right weak answers): {oracle:.1%}, "
            f"deferred {1 - weak_ok.mean():.0%}"
        )


if __name__ == "__main__":
    main()
