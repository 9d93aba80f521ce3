"""Fee effect of not paying for a distillation the bank would merge (issue 12, deliverable 2).

Replays committed benchmark runs (``benchmarks/results/<run>/records.jsonl``): a
deferred query whose best retrieved strategy scored at least the bank's
``dedup_threshold`` (0.9) is one that ``distill_strategy`` now skips
(``distill_skipped="near_duplicate"``), since its strategy, keyed by the same query,
would be merged into the retrieved one. No model is called: the records hold each
question's retrieval scores and per-role tokens, and the fees use the run's own
prices. The skipped distillations' strategies are not in a replayed bank, so later
retrievals could differ; the table counts the calls and fees only.

    python benchmarks/regime/distill_skips.py            # table; JSON to results/distill_skips.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langchain_intercascade.costs import PriceTable
from langchain_intercascade.evaluation import load_records
from langchain_intercascade.evaluation.records import QueryRecord

ROOT = Path(__file__).resolve().parents[1] / "results"


def replay(run: Path, dedup_threshold: float) -> dict[str, float]:
    """One run's distillations, merges and the fee share a skip saves."""
    config = json.loads((run / "config.json").read_text())
    prices = PriceTable.model_validate(config["prices"])
    records = load_records(run / "records.jsonl")["intercascade"]
    distilled = [r for r in records if "distill" in r.tokens.get("strong", {})]
    skipped = [r for r in distilled if max(r.strategy_scores, default=-1.0) >= dedup_threshold]
    first_ids: set[str] = set()
    merged = 0
    for record in distilled:
        if record.new_strategy_id in first_ids:
            merged += 1
        elif record.new_strategy_id:
            first_ids.add(record.new_strategy_id)

    def distill_fee(rs: list[QueryRecord]) -> float:
        return sum(prices.cost({"strong": {"distill": r.tokens["strong"]["distill"]}}) for r in rs)

    fee = sum(r.fee for r in records)
    saved = distill_fee(skipped)
    return {
        "questions": len(records),
        "distillations": len(distilled),
        "merged_into_a_stored_strategy": merged,
        "skipped_now": len(skipped),
        "distill_fee_share": distill_fee(distilled) / fee if fee else 0.0,
        "fee_saved_share": saved / fee if fee else 0.0,
        "fee_per_1k_before": 1000 * fee / len(records),
        "fee_per_1k_after": 1000 * (fee - saved) / len(records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", default=["gsm8k", "symbolic", "symbolic-program"])
    parser.add_argument("--dedup-threshold", type=float, default=0.9)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = {run: replay(ROOT / run, args.dedup_threshold) for run in args.runs}
    print(
        "| run | questions | distillations | merged | skipped now "
        "| distillation share of fee | fee saved | fee per 1k queries before → after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run, r in rows.items():
        print(
            f"| {run} | {r['questions']} | {r['distillations']} "
            f"| {r['merged_into_a_stored_strategy']} | {r['skipped_now']} "
            f"| {r['distill_fee_share']:.1%} | {r['fee_saved_share']:.1%} "
            f"| {r['fee_per_1k_before']:.3f} → {r['fee_per_1k_after']:.3f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distill_skips.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
