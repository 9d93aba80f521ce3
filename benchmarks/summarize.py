"""Summarize a (possibly unfinished) benchmark run from its records.jsonl, without models.

Usage: python benchmarks/summarize.py benchmarks/results/symbolic [--save]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from langchain_intercascade.evaluation import EvaluationConfig, EvaluationResult, load_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--save", action="store_true", help="rewrite results and plots")
    args = parser.parse_args()
    records = load_records(args.folder / "records.jsonl")
    config = EvaluationConfig.model_validate_json((args.folder / "config.json").read_text())
    n = max((r.position for rs in records.values() for r in rs), default=-1) + 1
    result = EvaluationResult.from_records(records, config, n)
    print(result.to_markdown())
    if args.save:
        result.save(args.folder)


if __name__ == "__main__":
    main()
