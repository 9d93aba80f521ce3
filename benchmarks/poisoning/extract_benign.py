"""Build ``benign.jsonl``: real distilled strategies from the committed benchmark results.

Every ``new_strategy`` text in ``benchmarks/**/records.jsonl`` (the strategies
that label and maths runs stored, written by the strong models) is read back
into its fields, once per distinct text, followed by the hand-written support
and maths strategies of ``benign_written.jsonl`` (space-grouped digits, hashes,
support wording that earlier filters took for instructions).

Run from the repository root: ``python benchmarks/poisoning/extract_benign.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = HERE.parent
_STEP = re.compile(r"\d+\. ")


def _fields(text: str) -> dict[str, object]:
    """The fields of a strategy as ``Strategy.to_text`` wrote them."""
    title, *lines = text.splitlines()
    strategy: dict[str, object] = {"title": title, "applies_when": "", "steps": [], "pitfalls": []}
    items: list[str] = []
    for line in lines:
        if line.startswith("Applies when: ") and not strategy["applies_when"]:
            strategy["applies_when"] = line.removeprefix("Applies when: ")
        elif line in ("Steps:", "Pitfalls:"):
            items = strategy[line[:-1].lower()]  # type: ignore[assignment]
        elif items is strategy["steps"] and _STEP.match(line):
            items.append(_STEP.sub("", line, count=1))
        elif items is strategy["pitfalls"] and line.startswith("- "):
            items.append(line.removeprefix("- "))
        elif items:  # a step or pitfall that runs over several lines
            items[-1] += "\n" + line
    return strategy


def main() -> None:
    seen: dict[str, str] = {}
    for path in sorted(BENCHMARKS.glob("**/records.jsonl")):
        for line in path.read_text().splitlines():
            text = json.loads(line).get("new_strategy")
            if isinstance(text, str) and "\nApplies when: " in text:
                seen.setdefault(text, str(path.relative_to(BENCHMARKS.parent)))
    rows = [
        {"id": f"distilled-{i:03d}", "source": source, "strategy": _fields(text)}
        for i, (text, source) in enumerate(seen.items())
    ]
    rows += [json.loads(line) for line in (HERE / "benign_written.jsonl").read_text().splitlines()]
    with open(HERE / "benign.jsonl", "w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} benign strategies ({len(seen)} distilled) in {HERE / 'benign.jsonl'}")


if __name__ == "__main__":
    main()
