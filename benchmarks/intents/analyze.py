"""The intents benchmark's report: paired figures, judge quality, trust, learning curves.

Reads what ``run.py`` wrote under ``RESULTS/<embeddings>/seed<N>-<variant>/`` and, per
embeddings and pooled over seeds (paired per message, bootstrap over messages), prints a
table and writes ``RESULTS/report.json`` and ``RESULTS/<embeddings>-learning.png``:

- weak accuracy with strategies (Inter-Cascade's weak answers) vs without (the standard
  cascade's, same messages), on the whole stream and its second half, with McNemar's
  exact test on the discordant pairs;
- system accuracy, strong-call rate and fee (distillation included) of the four
  configurations, and Inter-Cascade minus the standard cascade;
- the retrieval-only baseline: the top retrieved strategy's label as the answer;
- the judge's AUROC and ECE on weak answers with and without strategies, and of the
  label-agreement judge (``LabelAgreementJudge``'s formula, weight 0.5) recomputed
  from the records;
- distilling every strong answer (``all``) vs only trusted ones (``trusted``).
- for runs that deferred everything: the strong calls each cascade needs for system
  accuracy within 1, 2 and 5 points of the strong model, replaying every threshold over
  the recorded confidences (an optimistic bound, see ``_strong_calls_for``).

    PYTHONPATH=$PWD python benchmarks/intents/analyze.py benchmarks/intents/results
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import binomtest

from langchain_intercascade.evaluation import bootstrap_interval, reliability, rolling_mean
from langchain_intercascade.evaluation.records import QueryRecord, load_records
from langchain_intercascade.labels import LabelSet

Records = dict[str, list[QueryRecord]]
Metric = Callable[[QueryRecord], float]

WINDOW = 50
_TRUST: dict[str, dict[str, Any]] = {}  # each run folder's strong_trust.json


def _runs(root: Path) -> dict[str, dict[int, Records]]:
    """``{embeddings: {seed: {configuration or "trusted": records}}}``, complete runs only."""
    runs: dict[str, dict[int, Records]] = {}
    for log in sorted(root.glob("*/seed*-all/records.jsonl")):
        seed = int(log.parent.name.removeprefix("seed").removesuffix("-all"))
        records: Records = dict(load_records(log))
        trusted = log.parent.with_name(f"seed{seed}-trusted") / "records.jsonl"
        if trusted.is_file():
            records["trusted"] = load_records(trusted)["intercascade"]
        sizes = {len(v) for v in records.values()}
        if len(sizes) != 1:  # an unfinished run
            print(f"skipping {log.parent}: unfinished ({sizes})")
            continue
        runs.setdefault(log.parent.parent.name, {})[seed] = records
        trust = log.parent / "strong_trust.json"
        _TRUST[str(log.parent)] = {
            "trust": json.loads(trust.read_text()) if trust.is_file() else None
        }
    return runs


def _half(records: Sequence[QueryRecord], second: bool) -> list[QueryRecord]:
    return list(records[len(records) // 2 :]) if second else list(records)


def _interval(values: Sequence[float]) -> dict[str, float]:
    return bootstrap_interval(values, n_resamples=2000).model_dump()


def _weak(record: QueryRecord) -> float:
    return float(bool(record.weak_correct))


def _strong_call(record: QueryRecord) -> float:
    return float(record.route == "strong")


def _paired(a: Sequence[QueryRecord], b: Sequence[QueryRecord], metric: Metric) -> dict[str, Any]:
    """``metric`` on a minus on b, message by message, with McNemar for 0/1 metrics."""
    x, y = [metric(r) for r in a], [metric(r) for r in b]
    out: dict[str, Any] = {
        "a": float(np.mean(x)),
        "b": float(np.mean(y)),
        "difference": _interval([p - q for p, q in zip(x, y, strict=True)]),
    }
    if set(x) | set(y) <= {0.0, 1.0}:
        gained = sum(p > q for p, q in zip(x, y, strict=True))
        lost = sum(p < q for p, q in zip(x, y, strict=True))
        out["gained"], out["lost"] = gained, lost
        out["mcnemar_p"] = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    return out


def _weak_label(record: QueryRecord, labels: LabelSet) -> str | None:
    """The weak label; ``predicted`` is the final answer's (the strong one's if deferred)."""
    return labels.extract(record.weak_reply or "")


def _top_label(record: QueryRecord, labels: LabelSet) -> str | None:
    """The label of the top strategy shown, the retrieval-only baseline's answer."""
    return labels.extract(record.strategy_titles[0]) if record.strategy_titles else None


def _agreement(record: QueryRecord, labels: LabelSet) -> float:
    shown = [labels.extract(t) for t in record.strategy_titles]
    answered = _weak_label(record, labels)
    if answered is None or answered not in shown:
        return 0.0
    return 1.0 if shown[0] == answered else 0.5


def _agreement_confidence(record: QueryRecord, labels: LabelSet) -> float:
    """``LabelAgreementJudge``'s confidence at weight 0.5, from the record."""
    return 0.5 * (record.confidence or 0.0) + 0.5 * _agreement(record, labels)


def _judge(records: Sequence[QueryRecord], confidence: Callable[[QueryRecord], float]) -> Any:
    judged = [r for r in records if r.confidence is not None]
    quality = reliability([confidence(r) for r in judged], [bool(r.weak_correct) for r in judged])
    return {"n": quality.n, "auroc": quality.auroc, "ece": quality.ece}


def _config_figures(records: Sequence[QueryRecord]) -> dict[str, float]:
    return {
        "system_accuracy": float(np.mean([r.correct for r in records])),
        "strong_call_rate": float(np.mean([_strong_call(r) for r in records])),
        "fee_per_1k": 1000 * float(np.mean([r.fee for r in records])),
    }


def _strong_calls_for(
    records: Sequence[QueryRecord],
    target: float,
    confidence: Callable[[QueryRecord], float] = lambda r: r.confidence or 0.0,
) -> float | None:
    """The fewest strong calls (a share) at which some threshold reaches ``target`` accuracy.

    Replays the run at every threshold over its recorded confidences: a weak answer at or
    above the threshold is accepted, any other gets the strong answer. Valid for runs
    that deferred everything (threshold ``inf``), where every weak and strong answer was
    recorded; optimistic for Inter-Cascade, whose bank then also holds the strategies of
    messages a threshold would have accepted, and for both in that the threshold is
    chosen on the stream itself.
    """
    if any(r.route != "strong" or r.confidence is None for r in records):
        return None
    best: float | None = None
    scores = [confidence(r) for r in records]
    for level in sorted(set(scores) | {math.inf}):
        accepted = [score >= level for score in scores]
        right = [
            bool(r.weak_correct) if a else r.correct for r, a in zip(records, accepted, strict=True)
        ]
        calls = 1 - float(np.mean(accepted))
        if np.mean(right) >= target and (best is None or calls < best):
            best = calls
    return best


def _frontier(
    ic: Sequence[QueryRecord], sc: Sequence[QueryRecord], labels: LabelSet
) -> dict[str, Any]:
    """Strong calls each cascade needs for system accuracy within 1, 2 and 5 points of strong.

    Inter-Cascade twice: judged by the label's probability, and by the agreement judge.
    """
    strong = float(np.mean([r.correct for r in sc]))
    out: dict[str, Any] = {"strong_accuracy": strong}
    for points in (1, 2, 5):
        target = strong - points / 100
        out[f"within_{points}_points"] = {
            "intercascade": _strong_calls_for(ic, target),
            "intercascade_agreement": _strong_calls_for(
                ic, target, lambda r: _agreement_confidence(r, labels)
            ),
            "cascade": _strong_calls_for(sc, target),
        }
    return out


def _report(seeds: dict[int, Records], labels: LabelSet) -> dict[str, Any]:
    pooled: Records = {}
    for records in seeds.values():
        for name, rs in records.items():
            pooled.setdefault(name, []).extend(rs)
    halves: dict[str, Any] = {}
    for half, second in (("all", False), ("second_half", True)):
        # Each seed's own second half, pooled.
        part: Records = {
            name: [r for s in seeds.values() for r in _half(s[name], second)] for name in pooled
        }
        ic, sc = part["intercascade"], part["cascade"]
        retrieved = [r for r in ic if r.strategy_titles]
        figures: dict[str, Any] = {
            "messages": len(ic),
            "weak_with_vs_without_strategies": _paired(ic, sc, _weak),
            "system_intercascade_vs_cascade": _paired(ic, sc, lambda r: float(r.correct)),
            "strong_calls_intercascade_vs_cascade": _paired(ic, sc, _strong_call),
            "fee_intercascade_vs_cascade": _paired(ic, sc, lambda r: 1000 * r.fee),
            "configurations": {name: _config_figures(rs) for name, rs in part.items()},
            "replayed_thresholds": _frontier(ic, sc, labels),
            "retrieval_only": {
                "accuracy": float(
                    np.mean(
                        [
                            bool(r.strategy_titles)
                            and labels.extract(r.strategy_titles[0]) == r.gold
                            for r in ic
                        ]
                    )
                ),  # fmt: skip
                "accuracy_where_retrieved": float(
                    np.mean([labels.extract(r.strategy_titles[0]) == r.gold for r in retrieved])
                )
                if retrieved
                else None,
                "weak_copies_top_label": float(
                    np.mean(
                        [
                            _weak_label(r, labels) == labels.extract(r.strategy_titles[0])
                            for r in retrieved
                        ]
                    )
                )  # fmt: skip
                if retrieved
                else None,
            },
            "judge": {
                "logprob_without_strategies": _judge(sc, lambda r: r.confidence or 0.0),
                "logprob_with_strategies": _judge(ic, lambda r: r.confidence or 0.0),
                "agreement_with_strategies": _judge(ic, lambda r: _agreement_confidence(r, labels)),
            },
        }
        if "trusted" in part:
            tr = part["trusted"]
            figures["trusted_vs_all"] = {
                "weak": _paired(tr, ic, _weak),
                "system": _paired(tr, ic, lambda r: float(r.correct)),
                "strong_calls": _paired(tr, ic, _strong_call),
                "fee": _paired(tr, ic, lambda r: 1000 * r.fee),
            }
        halves[half] = figures
    banks = {}
    for name in ("intercascade", "trusted"):
        if name in pooled:
            distilled = [r for r in pooled[name] if r.new_strategy is not None]
            banks[name] = {
                "strategies_per_seed": len(distilled) / len(seeds),
                # A label strategy is right when the strong answer it came from is.
                "right_label_share": float(np.mean([r.correct for r in distilled]))
                if distilled
                else None,
                "untrusted_skipped": sum(r.distill_skipped == "untrusted" for r in pooled[name]),
            }
    return {"seeds": sorted(seeds), "halves": halves, "banks": banks, "teacher": _teacher(seeds)}


def _teacher(seeds: dict[int, Records]) -> dict[str, Any]:
    """How right the strong labels taught were, and whether its confidence says which."""
    taught = [
        r for s in seeds.values() for r in s["intercascade"] if r.strong_confidence is not None
    ]
    quality = reliability([r.strong_confidence or 0.0 for r in taught], [r.correct for r in taught])
    out: dict[str, Any] = {
        "strong_answers": len(taught),
        "right": float(np.mean([r.correct for r in taught])) if taught else None,
        "confidence_auroc": quality.auroc,
    }
    trust = [t for t in (s.get("trust") for s in _TRUST.values()) if t is not None]
    if trust:
        threshold = min(trust[0]["threshold"], 1.0)
        kept = [r for r in taught if (r.strong_confidence or 0.0) >= threshold]
        out["trust_threshold"] = trust[0]["threshold"]
        out["trusted_share"] = len(kept) / len(taught) if taught else None
        out["trusted_right"] = float(np.mean([r.correct for r in kept])) if kept else None
    return out


def _plot(seeds: dict[int, Records], labels: LabelSet, path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (metric, label) in zip(
        axes, ((_weak, "weak accuracy"), (_strong_call, "strong-call rate")), strict=True
    ):
        for name, style in (("cascade", "--"), ("intercascade", "-"), ("trusted", ":")):
            curves = [
                rolling_mean([metric(r) for r in s[name]], WINDOW)
                for s in seeds.values()
                if name in s
            ]
            if curves:
                shown = {"cascade": "standard cascade", "intercascade": "Inter-Cascade",
                         "trusted": "Inter-Cascade, trusted only"}[name]  # fmt: skip
                ax.plot(np.mean(curves, axis=0), style, label=shown)
        ax.set_xlabel("position in the stream")
        ax.set_ylabel(f"{label} (last {WINDOW})")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    top = [
        rolling_mean([float(_top_label(r, labels) == r.gold) for r in s["intercascade"]], WINDOW)
        for s in seeds.values()
    ]
    axes[0].plot(np.mean(top, axis=0), "-.", color="gray", label="retrieval only (top label)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _diff(d: dict[str, Any], scale: float = 100.0, unit: str = "pts") -> str:
    i = d["difference"]
    digits = 3 if unit == "USD" else 1
    low, est, high = (f"{scale * i[k]:+.{digits}f}" for k in ("low", "estimate", "high"))
    return f"{est} [{low}, {high}] {unit}"


def _print(name: str, report: dict[str, Any]) -> None:
    print(f"\n## {name}: seeds {report['seeds']}")
    for half, f in report["halves"].items():
        w = f["weak_with_vs_without_strategies"]
        c = f["configurations"]
        print(f"\n### {half} ({f['messages']} messages)")
        print("| | weak only | strong only | standard cascade | Inter-Cascade | trusted only |")
        print("|---|---|---|---|---|---|")
        cols = ["weak", "strong", "cascade", "intercascade", "trusted"]
        for key, label in (("system_accuracy", "system accuracy %"),
                           ("strong_call_rate", "strong calls %"),
                           ("fee_per_1k", "fee per 1k (USD)")):  # fmt: skip
            cells = [
                ("-" if n not in c else (f"{c[n][key]:.3f}" if key == "fee_per_1k"
                                         else _pct(c[n][key])))
                for n in cols
            ]  # fmt: skip
            print(f"| {label} | " + " | ".join(cells) + " |")
        print(
            f"weak accuracy with strategies {_pct(w['a'])}% vs without {_pct(w['b'])}%: "
            f"{_diff(w)} ({w['gained']} fixed, {w['lost']} broken, McNemar p {w['mcnemar_p']:.2g})"
        )
        print(f"system, Inter-Cascade - cascade: {_diff(f['system_intercascade_vs_cascade'])}")
        s = f["strong_calls_intercascade_vs_cascade"]
        relative = s["a"] / s["b"] - 1 if s["b"] else float("nan")
        print(
            f"strong calls, Inter-Cascade - cascade: {_diff(s)} ({100 * relative:+.0f}% relative)"
        )
        fee = f["fee_intercascade_vs_cascade"]
        print(f"fee per 1k, Inter-Cascade - cascade: {_diff(fee, 1.0, 'USD')}")
        replay = f["replayed_thresholds"]
        for key, value in replay.items():
            if key.startswith("within_"):
                print(
                    f"replayed thresholds, strong calls for system accuracy {key.replace('_', ' ')}"
                    f" of strong ({_pct(replay['strong_accuracy'])}%): Inter-Cascade "
                    f"{_pct(value['intercascade'])}% (agreement judge "
                    f"{_pct(value['intercascade_agreement'])}%), standard cascade "
                    f"{_pct(value['cascade'])}%"
                )
        r = f["retrieval_only"]
        print(
            f"retrieval only (top strategy's label): {_pct(r['accuracy'])}% "
            f"({_pct(r['accuracy_where_retrieved'])}% where one was shown); the weak model "
            f"answers the top label {_pct(r['weak_copies_top_label'])}% of the time"
        )
        for judge, q in f["judge"].items():
            auroc = "-" if q["auroc"] is None else f"{q['auroc']:.3f}"
            print(f"judge {judge}: AUROC {auroc}, ECE {q['ece']:.3f} (n {q['n']})")
        if "trusted_vs_all" in f:
            t = f["trusted_vs_all"]
            print(
                f"trusted - all: weak {_diff(t['weak'])}, system {_diff(t['system'])}, "
                f"strong calls {_diff(t['strong_calls'])}, fee {_diff(t['fee'], 1.0, 'USD')}"
            )
    for name_, bank in report["banks"].items():
        print(
            f"bank ({name_}): {bank['strategies_per_seed']:.0f} strategies per seed, "
            f"{_pct(bank['right_label_share'])}% with the right label, "
            f"{bank['untrusted_skipped']} untrusted answers not distilled"
        )


def _print_teacher(t: dict[str, Any]) -> None:
    auroc = "-" if t["confidence_auroc"] is None else f"{t['confidence_auroc']:.3f}"
    line = (
        f"teacher: {t['strong_answers']} strong answers, {_pct(t['right'])}% right; "
        f"its label probability's AUROC {auroc}"
    )
    if "trust_threshold" in t:
        line += (
            f"; at its trust threshold {t['trust_threshold']:.3f}: {_pct(t['trusted_share'])}% "
            f"trusted, {_pct(t['trusted_right'])}% of them right"
        )
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--labels", type=Path, default=Path(__file__).resolve().parents[3]
                        / "shared" / "data" / "banking77" / "categories.json")  # fmt: skip
    args = parser.parse_args()
    labels = LabelSet.from_file(args.labels)
    reports = {}
    for embeddings, seeds in _runs(args.results).items():
        reports[embeddings] = _report(seeds, labels)
        _print(embeddings, reports[embeddings])
        _print_teacher(reports[embeddings]["teacher"])
        png = args.results / f"{embeddings}-learning.png"
        _plot(seeds, labels, png, f"Banking77 stream, {embeddings}, seeds {sorted(seeds)}")
        print(f"plot: {png}")
    (args.results / "report.json").write_text(json.dumps(reports, indent=1))
    print(f"\nwritten {args.results / 'report.json'}")


if __name__ == "__main__":
    main()
