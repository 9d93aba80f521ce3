"""Strategy form (d), the paper's: the solved sibling question and its answer plus the method.

Replays ``run_cell.py``'s Inter-Cascade weak calls with the same retrieved
strategies (``strategy_ids`` of each record), each rendered as the question it was
distilled from, the strong model's answer to it and the distilled method, in the
package's default strategy section. Writes ``paper_form.jsonl`` beside the records
(``example_id``, ``correct``, ``reply``). Run it after ``run_cell.py``: one llama.cpp
model at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from langchain_community.cache import SQLiteCache
from langchain_core.globals import set_llm_cache
from langchain_core.messages import HumanMessage, SystemMessage

from langchain_intercascade import CascadePrompts
from langchain_intercascade.answers import make_grader
from langchain_intercascade.evaluation import EvaluationConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmark import SYSTEM_PROMPT, chat_model  # noqa: E402
from run_cell import MODELS  # noqa: E402
from streams import recurring_easy_stream  # noqa: E402

PAPER_ITEM = "Solved problem: {question}\nIts answer: {answer}\nMethod: {method}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument(
        "--weak-model", default=str(MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    )
    parser.add_argument("--per-template", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weak-max-tokens", type=int, default=200)
    parser.add_argument("--cache", default="/tmp/regime-calls.sqlite")
    args = parser.parse_args()

    run = Path(args.run_dir)
    records = [json.loads(line) for line in (run / "records.jsonl").open()]
    questions = {e.id: e for e in recurring_easy_stream(args.per_template, args.seed)}
    strong = {r["example_id"]: r for r in records if r["configuration"] == "strong"}
    inter = [r for r in records if r["configuration"] == "intercascade"]
    by_strategy: dict[str, dict] = {}  # strategy id -> the first record that distilled it
    for r in sorted(inter, key=lambda r: r["position"]):  # ids are content hashes
        if r["new_strategy_id"]:
            by_strategy.setdefault(r["new_strategy_id"], r)
    set_llm_cache(SQLiteCache(database_path=args.cache))
    weak = chat_model(args.weak_model, args.weak_max_tokens, 2048, args.threads)
    grade = make_grader(EvaluationConfig().answer_kind)
    prompts = CascadePrompts()
    out = (run / "paper_form.jsonl").open("w")
    for r in inter:
        items = []
        for sid in r["strategy_ids"]:
            source = by_strategy.get(sid)
            if source is None:  # a merged record whose id no distillation returned
                print("unknown strategy", sid, "for", r["example_id"], flush=True)
                continue
            items.append(
                PAPER_ITEM.format(
                    question=questions[source["example_id"]].question,
                    answer=strong[source["example_id"]]["predicted"],
                    method=source["new_strategy"],
                )
            )
        if not items:
            continue  # nothing retrieved: the same prompt as without strategies
        section = prompts.strategy_section.format(
            strategies="\n\n".join(
                prompts.strategy_item.format(index=i, text=t, score="")
                for i, t in enumerate(items, 1)
            )
        )
        example = questions[r["example_id"]]
        messages = [
            SystemMessage(SYSTEM_PROMPT),
            SystemMessage(section),
            HumanMessage(example.question),
        ]
        reply = weak.invoke(messages).text
        row = {
            "example_id": r["example_id"],
            "correct": grade(reply, example.answer),
            "reply": reply,
            "prompt_section": section,
        }
        out.write(json.dumps(row) + "\n")
        out.flush()
        print(r["example_id"], row["correct"], flush=True)


if __name__ == "__main__":
    main()
