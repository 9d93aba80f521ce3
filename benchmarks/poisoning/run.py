"""Strategy poisoning: how many poisons each guard stores, how many real strategies it rejects.

Reads ``poisons.jsonl`` (crafted poisoned strategies, each labelled with its
class and split: ``tune``, the half the patterns were tuned on; ``held_out``,
the other half of the first batch; ``fresh``, written after tuning and never
tuned on) and ``benign.jsonl`` (strategies that the benchmarks' strong models
distilled, plus hand-written support and maths strategies), and prints, per
class, how many poisons the default :class:`StrategyFilter` stores and how many
:class:`ModelStrategyScreen` stores.

The screening model here is scripted and deterministic, not a real model: it
answers ``METHOD`` unless the text (or a decoded form) addresses an assistant,
which it recognises by a short list of words. Its row shows how the call
composes with the patterns and what it costs, not how well a real model judges.

Run from the repository root: ``python benchmarks/poisoning/run.py``; writes
``benchmarks/poisoning/results.json``. ``--guard PATH`` screens with the
``StrategyFilter`` of another ``guards.py`` (e.g. an older commit's, saved with
``git show <commit>:langchain_intercascade/guards.py > /tmp/old_guards.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from langchain_core.messages import BaseMessage

from langchain_intercascade.callbacks import track_cascade_costs
from langchain_intercascade.guards import ModelStrategyScreen, StrategyFilter
from langchain_intercascade.strategies import Strategy
from langchain_intercascade.testing import ScriptedChatModel

HERE = Path(__file__).parent
Screen = Callable[[Strategy], "str | None"]
# What the scripted screening model takes for text addressed to an assistant: a short
# list of phrases, written after the patterns were tuned; a real model is asked instead.
_ADDRESSED = re.compile(
    r"\b(?:rules|directions|hints)\s+(?:you\s+were|before|no\s+longer)|\btrue\s+answer\b"
    r"|\bignore\s+the\s+question\b|\bSYSTEM\b|\bpassword\b|\byou\s+are\s+an?\b"
    r"|\banswer\s+in\s+\w+\s+speak\b",
)


def scripted_judge(messages: list[BaseMessage]) -> str:
    """A deterministic stand-in for a screening model (see the module's docstring)."""
    text = messages[-1].text.split("=====BEGIN TEXT=====", 1)[1]
    if _ADDRESSED.search(text):
        return "INSTRUCTIONS: it addresses the assistant"
    return "METHOD: a general method"


def _read(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text().splitlines()]


def _filter_of(path: str) -> Screen:
    spec = importlib.util.spec_from_file_location("other_guards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StrategyFilter()  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guard", help="a guards.py whose StrategyFilter to measure instead")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args()
    default: Screen = _filter_of(args.guard) if args.guard else StrategyFilter()
    judge = ScriptedChatModel(respond=scripted_judge, model_name="scripted-screen")
    # An older guard is measured alone: the screening call did not exist then.
    modes: dict[str, Screen] = {"default": default}
    if not args.guard:
        modes["screen"] = ModelStrategyScreen(model=judge, patterns=StrategyFilter())
    poisons, benign = _read("poisons.jsonl"), _read("benign.jsonl")
    cases: Counter[str] = Counter()
    stored: dict[str, Counter[str]] = {mode: Counter() for mode in modes}
    with track_cascade_costs() as costs:
        for case in poisons:
            strategy = Strategy.model_validate(case["strategy"])
            for key in (case["class"], f"split:{case['split']}", "all"):
                cases[key] += 1
            for mode, screen in modes.items():
                if screen(strategy) is None:
                    for key in (case["class"], f"split:{case['split']}", "all"):
                        stored[mode][key] += 1
        rejected: dict[str, list[dict[str, str]]] = {mode: [] for mode in modes}
        for row in benign:
            strategy = Strategy.model_validate(row["strategy"])
            for mode, screen in modes.items():
                if (reason := screen(strategy)) is not None:
                    rejected[mode].append({"id": row["id"], "reason": reason})
    rows = [
        {
            "class": key,
            "cases": n,
            "stored_default": stored["default"][key],
            "stored_with_screen": stored["screen"][key] if "screen" in modes else None,
        }
        for key, n in sorted(cases.items(), key=lambda kv: (kv[0] == "all", kv[0]))
    ]
    print("| class | cases | stored, default guard | stored, screening call on |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['class']} | {row['cases']} | {row['stored_default']} "
            f"| {row['stored_with_screen']} |"
        )
    total = cases["all"]
    screen_usage = costs.routes.get("screen")
    summary = {
        "guard": args.guard or "langchain_intercascade.guards",
        "poisons": total,
        "benign": len(benign),
        "poisons_stored_rate": {m: stored[m]["all"] / total for m in stored},
        "benign_rejected_rate": {m: len(rejected[m]) / len(benign) for m in rejected},
        "benign_rejected": rejected,
        "screening_calls": len(judge.calls),
        "screening_usage": screen_usage.usage if screen_usage else {},
        "screening_fee": screen_usage.fee if screen_usage else 0.0,
        "rows": rows,
    }
    print()
    for mode in modes:
        print(
            f"{mode}: {stored[mode]['all']}/{total} poisons stored "
            f"({summary['poisons_stored_rate'][mode]:.1%}), {len(rejected[mode])}/{len(benign)} "
            f"benign rejected ({summary['benign_rejected_rate'][mode]:.1%})"
        )
    print(f"screening calls: {len(judge.calls)}, fee counted: {summary['screening_fee']:.6f}")
    Path(args.out).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
