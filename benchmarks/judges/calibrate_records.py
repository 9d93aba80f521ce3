"""Calibrate the token-probability judge on a benchmark run's answers, for any model.

The weak 0.5B model is right too rarely on GSM8K (6 in 100) for any threshold to
certify a 10% risk. This script takes the answers one configuration of a
``run_benchmark.py`` run already holds (e.g. the 1.5B model's, ``--configuration
strong``), scores each with :class:`RescoredLogprobJudge` (one teacher-forced pass
of the model that wrote it; no generation), then reports each signal's AUROC and
calibrates ``LogprobJudge("min")`` at alpha = delta = 0.1 on a seeded half of the
questions, with the realized risk on the other half.

Usage::

    python benchmarks/judges/calibrate_records.py --model STRONG.gguf --configuration strong \\
        --run symbolic:benchmarks/results/symbolic --run gsm8k:benchmarks/results/gsm8k
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from langchain_community.chat_models import ChatLlamaCpp
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_intercascade.calibration import calibrate_threshold
from langchain_intercascade.evaluation import auroc, load_gsm8k, load_records
from langchain_intercascade.judges import LogprobJudge

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from judges.measure import WORK, RescoredLogprobJudge  # noqa: E402
from run_benchmark import SYSTEM_PROMPT, symbolic_stream  # noqa: E402

ALPHA = DELTA = 0.1


def questions(stream: str, args: argparse.Namespace) -> dict[str, str]:
    """Example id -> question text for a stream, rebuilt as run_benchmark.py builds it."""
    if stream == "symbolic":
        examples = symbolic_stream(args.templates, args.per_template, args.seed)
    else:
        examples = load_gsm8k(args.gsm8k)
    return {e.id: e.question for e in examples}


def score(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per answer: stream, id, correct, mean and min token probability (cached)."""
    rows_path = WORK / f"records-{args.configuration}-{Path(args.model).stem}.jsonl"
    done = {}
    if rows_path.exists():
        done = {(r["stream"], r["id"]): r for r in map(json.loads, rows_path.open())}
    llm = ChatLlamaCpp(
        model_path=str(Path(args.model).expanduser()),
        n_ctx=2048,
        n_threads=args.threads,
        logits_all=True,
        verbose=False,
    )
    judges = {agg: RescoredLogprobJudge(llm, LogprobJudge(agg), {}) for agg in ("mean", "min")}
    rows = []
    for spec in args.run:
        stream, folder = spec.split(":", 1)
        text = questions(stream, args)
        for record in load_records(Path(folder) / "records.jsonl").get(args.configuration, []):
            key = (stream, record.example_id)
            if key not in done:
                messages = [SystemMessage(SYSTEM_PROMPT), HumanMessage(text[record.example_id])]
                answer = AIMessage(record.weak_reply or record.reply)
                row = {"stream": stream, "id": record.example_id, "correct": record.correct}
                for agg, judge in judges.items():
                    row[f"logprob_{agg}"] = judge.judge(messages, answer).confidence
                done[key] = row
                with rows_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(row, flush=True)
            rows.append(done[key])
    return rows


def report(rows: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    labels = np.array([r["correct"] for r in rows], dtype=bool)
    out: dict[str, Any] = {"answers": len(rows), "right": int(labels.sum())}
    for signal in ("logprob_mean", "logprob_min"):
        values = np.array([r[signal] for r in rows])
        out[f"auroc_{signal}"] = round(auroc(values, labels) or math.nan, 3)
    # Calibrate on a seeded half, measure on the other half.
    order = np.random.default_rng(seed).permutation(len(rows))
    cal, held = order[: len(rows) // 2], order[len(rows) // 2 :]
    conf = np.array([r["logprob_min"] for r in rows])
    result = calibrate_threshold(conf[cal], labels[cal], alpha=ALPHA, delta=DELTA)
    accepted = held[conf[held] >= result.threshold]
    out["calibration"] = {
        "alpha": ALPHA,
        "delta": DELTA,
        "threshold": result.threshold,
        "calibration_questions": len(cal),
        "calibration_coverage": round(result.coverage, 3),
        "risk_upper_bound": round(result.risk_upper_bound, 3),
        "held_back_questions": len(held),
        "held_back_accepted": len(accepted),
        "held_back_realized_risk": (
            round(float(1 - labels[accepted].mean()), 3) if len(accepted) else None
        ),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the GGUF that wrote the answers")
    parser.add_argument("--configuration", default="strong")
    parser.add_argument("--run", action="append", required=True, help="STREAM:FOLDER")
    parser.add_argument("--gsm8k", default="../shared/data/gsm8k/test.jsonl")
    parser.add_argument("--templates", type=int, default=8)
    parser.add_argument("--per-template", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    result = report(score(args), args.seed)
    print(json.dumps(result, indent=1))
    out = HERE / f"records-calibration-{args.configuration}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
