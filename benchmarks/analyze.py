"""Why did (or didn't) Inter-Cascade help? Read a benchmark run's records.jsonl, no models.

Prints, for the Inter-Cascade configuration: how often a strategy was shown, whether
the strategy came from the same problem template (gsm_symbolic example ids carry the
template), how many distilled strategies hold concrete numbers, and the
weak model's accuracy on the same questions with and without the strategies.

Usage: python benchmarks/analyze.py benchmarks/results/symbolic
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from langchain_intercascade.evaluation import QueryRecord, load_records


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

    for label, group in (("shown any", shown), ("same template", same)):
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


if __name__ == "__main__":
    main()
