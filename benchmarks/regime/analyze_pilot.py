"""Paired analysis of one regime-map cell from ``run_cell.py``'s ``records.jsonl``.

For each question: the weak model's answer without strategies (``weak``), with
the strategies the bank retrieved (``intercascade``'s weak answer) and the strong
model's answer. Prints and writes (``analysis.json`` beside the records) the paired
counts, McNemar's exact test, a paired bootstrap interval on the difference, the
retrieved strategies' templates, and the self-check judge replayed at 0.99 on both
weak answers (deferrals a standard cascade and Inter-Cascade would make).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from langchain_core.messages import AIMessage
from scipy.stats import binomtest

from langchain_intercascade.answers import numbers_equal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_benchmark import _CODE, SelfCheckJudge, run_program  # noqa: E402

THRESHOLD = 0.99


def executed(reply: str | None, gold: str) -> bool | None:
    """Whether the reply's Python program, run, prints the gold answer; None without one."""
    block = _CODE.search(reply or "")
    if block is None:
        return None
    printed = run_program(block.group(1))
    return printed is not None and numbers_equal(printed, gold)


def _template(example_id: str) -> str:
    return example_id.rsplit("-", 1)[0]


def paired(
    rows: list[dict], n_boot: int = 10000, seed: int = 0, a: str = "with", b: str = "without"
) -> dict:
    """Paired counts, McNemar exact p and a bootstrap 95% interval on ``a`` - ``b``."""
    rows = [{**r, "with": r[a], "without": r[b]} for r in rows]
    both = sum(r["with"] and r["without"] for r in rows)
    only_with = sum(r["with"] and not r["without"] for r in rows)
    only_without = sum(r["without"] and not r["with"] for r in rows)
    neither = len(rows) - both - only_with - only_without
    discordant = only_with + only_without
    p = binomtest(only_with, discordant, 0.5).pvalue if discordant else 1.0
    rng = random.Random(seed)
    diffs = [r["with"] - r["without"] for r in rows]
    boots = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(n_boot))
    return {
        "n": len(rows),
        "weak_without": both + only_without,
        "weak_with": both + only_with,
        "strong": sum(r["strong"] for r in rows),
        "both": both,
        "only_with": only_with,
        "only_without": only_without,
        "neither": neither,
        "mcnemar_exact_p": p,
        "diff": sum(diffs) / len(diffs),
        "diff_ci95": [boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    args = parser.parse_args()
    run = Path(args.run_dir)
    records = [json.loads(line) for line in (run / "records.jsonl").open()]
    by = {(r["configuration"], r["example_id"]): r for r in records}
    source: dict[str, str] = {}  # strategy id -> the first question it was distilled from
    for r in sorted(records, key=lambda r: r["position"]):  # ids are content hashes
        if r["configuration"] == "intercascade" and r["new_strategy_id"]:
            source.setdefault(r["new_strategy_id"], r["example_id"])
    judge = SelfCheckJudge()
    rows = []
    for r in sorted(records, key=lambda r: r["position"]):
        if r["configuration"] != "intercascade" or ("weak", r["example_id"]) not in by:
            continue
        if ("strong", r["example_id"]) not in by:
            continue
        weak = by["weak", r["example_id"]]
        sources = [source.get(i, "?") for i in r["strategy_ids"]]
        rows.append(
            {
                "position": r["position"],
                "id": r["example_id"],
                "without": bool(weak["weak_correct"]),
                "with": bool(r["weak_correct"]),
                "strong": bool(by["strong", r["example_id"]]["correct"]),
                "strategies_from": sources,
                "same_template_shown": any(
                    _template(s) == _template(r["example_id"]) for s in sources
                ),
                "conf_without": judge.judge([], AIMessage(weak["weak_reply"] or "")).confidence,
                "conf_with": r["confidence"],
                "program_without": executed(weak["weak_reply"], r["gold"]),
                "program_with": executed(r["weak_reply"], r["gold"]),
                "new_strategy": r["new_strategy"],
            }
        )
    shown = [r for r in rows if r["same_template_shown"]]
    deferrals = {
        "threshold": THRESHOLD,
        "cascade_defers": sum(r["conf_without"] < THRESHOLD for r in rows),
        "intercascade_defers": sum(r["conf_with"] < THRESHOLD for r in rows),
        "cascade_accepted_wrong": sum(
            r["conf_without"] >= THRESHOLD and not r["without"] for r in rows
        ),
        "intercascade_accepted_wrong": sum(
            r["conf_with"] >= THRESHOLD and not r["with"] for r in rows
        ),
    }
    deferrals["saved"] = deferrals["cascade_defers"] - deferrals["intercascade_defers"]
    paper_path = run / "paper_form.jsonl"
    paper = {}
    if paper_path.exists():
        paper = {p["example_id"]: p["correct"] for p in map(json.loads, paper_path.open())}
    for r in rows:
        r["paper_form"] = paper.get(r["id"])
    with_paper = [r for r in rows if r["paper_form"] is not None]
    for r in rows:  # program-aided: run the reply's program when it has one
        for form in ("without", "with"):
            ran = r[f"program_{form}"]
            r[f"aided_{form}"] = r[form] if ran is None else ran
    programs = {
        form: {
            "replies_with_program": sum(r[f"program_{form}"] is not None for r in rows),
            "program_prints_gold": sum(bool(r[f"program_{form}"]) for r in rows),
            "stated_answer_right_among_them": sum(
                r[form] for r in rows if r[f"program_{form}"] is not None
            ),
        }
        for form in ("without", "with")
    }
    out = {
        "all": paired(rows),
        "weak_programs": programs,
        "program_aided_with_vs_without": paired(rows, a="aided_with", b="aided_without"),
        "paper_form_vs_without": paired(with_paper, a="paper_form") if with_paper else None,
        "paper_form_vs_method": paired(with_paper, a="paper_form", b="with")
        if with_paper
        else None,
        "same_template_strategy_shown": paired(shown) if shown else None,
        "deferrals_self_check_uncalibrated": deferrals,
        "rows": rows,
    }
    (run / "analysis.json").write_text(json.dumps(out, indent=1))
    for key in [k for k in out if k != "rows"]:
        print(key, json.dumps(out[key]))
    for r in rows:
        print(
            f"{r['position']:>2} {r['id']:<10} without={int(r['without'])} with={int(r['with'])} "
            f"paper={r['paper_form']} strong={int(r['strong'])} "
            f"conf {r['conf_without']:.2f}->{r['conf_with']:.2f} "
            f"from={r['strategies_from']}"
        )


if __name__ == "__main__":
    main()
