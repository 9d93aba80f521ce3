"""Measure the confidence judges on a real weak model over GSM8K.

For each question the weak model (a GGUF file through ``ChatLlamaCpp``) answers
once at temperature 0, then every judge scores that answer through
``collect_confidences`` (the cascade's own ``retrieve_strategy``,
``weak_answer`` and ``confidence_judge`` nodes). Rows are appended to a JSONL
file outside the repository, so an interrupted run resumes where it stopped;
``--report`` turns them into AUROCs, calibrated thresholds and their risk on
held-back questions (``results.json`` and ``results.md`` next to this script).

Every model call goes through a persistent LangChain ``SQLiteCache``, so
rerunning is cheap. Token logprobs are not asked for during generation
(llama-cpp-python computes them slowly); :class:`RescoredLogprobJudge` scores
the answer's tokens in one teacher-forced forward pass instead (``--timing``
compares the two).

Usage::

    WEAK_GGUF=~/.cache/intercascade/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
        python benchmarks/judges/measure.py --questions 120
    python benchmarks/judges/measure.py --report
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from langchain_community.cache import SQLiteCache
from langchain_community.chat_models import ChatLlamaCpp
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig
from scipy.stats import rankdata

from langchain_intercascade import CascadePrompts, create_intercascade
from langchain_intercascade.answers import extract_number, gsm8k_gold, make_grader
from langchain_intercascade.calibration import calibrate_threshold
from langchain_intercascade.evaluation import collect_confidences
from langchain_intercascade.judges import (
    BaseJudge,
    Judgement,
    LogisticJudge,
    LogprobJudge,
    SelfConsistencyJudge,
    VerbalizedJudge,
    VerifierJudge,
    token_logprobs,
)
from langchain_intercascade.models import teacher_forced_logprobs

HERE = Path(__file__).parent
WORK = Path(os.path.expanduser("~/.cache/intercascade/judges"))
DATA = Path(os.environ.get("INTERCASCADE_GSM8K", "../shared/data/gsm8k/test.jsonl"))
SYSTEM = (
    "Solve the math problem with brief step-by-step reasoning (a few short lines). "
    "End with a final line of the form 'The answer is <number>'."
)
ALPHA = DELTA = 0.1
# The logistic combination uses the judges measured on every question.
COMBINED = ("finished", "logprob_mean", "logprob_span_min", "verifier", "verbalized")


class RescoredLogprobJudge(BaseJudge):
    """A LogprobJudge fed by one teacher-forced forward pass over prompt + answer.

    llama.cpp's chat template formats the prompt exactly as generation did; the
    answer is re-tokenized and each token's logprob read from the logits.

    Args:
        llm: A ``ChatLlamaCpp`` built with ``logits_all=True``.
        inner: The judge that reads the logprobs.
    """

    def __init__(self, llm: ChatLlamaCpp, inner: LogprobJudge, memo: dict[str, Any]) -> None:
        self.llm = llm
        self.inner = inner
        self.memo = memo

    def scored(self, messages: Sequence[BaseMessage], answer: AIMessage) -> AIMessage:
        """The answer with OpenAI-format logprobs attached."""
        key = json.dumps([m.text for m in messages] + [answer.text])
        if key not in self.memo:
            self.memo[key] = teacher_forced_logprobs(self.llm, messages, answer.text)
        return answer.model_copy(
            update={"response_metadata": {**answer.response_metadata, "logprobs": self.memo[key]}}
        )

    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        return self.inner.judge(messages, self.scored(messages, answer), config=config)


def finished(messages: Sequence[BaseMessage], answer: AIMessage) -> float:
    """Baseline: 1 when the reply ended on its own, 0 when it hit max_tokens."""
    return float(answer.response_metadata.get("finish_reason") == "stop")


FOLLOW_UP_RATING = ChatPromptTemplate.from_messages(
    [
        MessagesPlaceholder("messages"),
        ("ai", "{answer}"),
        (
            "human",
            "How likely is your answer above to be fully correct? "
            "Reply with a number between 0 and 1 only.",
        ),
    ]
)
GROUPS = {
    "cheap": (
        "finished",
        "logprob_mean",
        "logprob_min",
        "logprob_span_mean",
        "logprob_span_min",
        "verifier",
        "verbalized",
    ),
    "sc": ("self_consistency",),
}


def build(model_path: str, threads: int = 1) -> tuple[ChatLlamaCpp, dict[str, Any]]:
    set_llm_cache(SQLiteCache(str(WORK / "llm-cache.sqlite")))
    # One llama.cpp context keeps every position's logits (logits_all), so the
    # answer's logprobs are read after generation and the judges' follow-up
    # prompts reuse the conversation already in the context.
    weak = ChatLlamaCpp(
        model_path=model_path,
        n_threads=threads,
        n_ctx=2048,
        verbose=False,
        logits_all=True,
        temperature=0.0,
        max_tokens=256,
    )
    # Copies share the context. The verifier needs its first token only (and
    # llama-cpp-python's top_logprobs cost a full-vocabulary sort per token).
    verifier = weak.model_copy(update={"max_tokens": 2})
    rater = weak.model_copy(update={"max_tokens": 6})
    memo: dict[str, Any] = {}
    judges: dict[str, Any] = {
        "finished": finished,
        "verifier": VerifierJudge(verifier, top_logprobs=10),
        "verbalized": VerbalizedJudge(
            rater, structured=False, prompts=CascadePrompts(verbalized_judge=FOLLOW_UP_RATING)
        ),
        "self_consistency": SelfConsistencyJudge(
            weak, extractor=extract_number, n=3, temperature=0.7, seed=0
        ),
    }
    for aggregate in ("mean", "min"):
        judges[f"logprob_{aggregate}"] = RescoredLogprobJudge(weak, LogprobJudge(aggregate), memo)
        judges[f"logprob_span_{aggregate}"] = RescoredLogprobJudge(
            weak, LogprobJudge(aggregate, extractor=extract_number), memo
        )
    return weak, judges


def load_questions(count: int) -> list[dict[str, str]]:
    with DATA.open() as f:
        rows = [json.loads(line) for _, line in zip(range(count), f, strict=False)]
    return [{"question": r["question"], "gold": gsm8k_gold(r["answer"])} for r in rows]


def prompt(question: str) -> list[BaseMessage]:
    return [SystemMessage(SYSTEM), HumanMessage(question)]


def run(args: argparse.Namespace) -> None:
    weak, judges = build(args.model, args.threads)
    grader = make_grader("number")
    rows_path = WORK / f"rows-{args.group}.jsonl"
    done = {json.loads(line)["index"] for line in rows_path.open()} if rows_path.exists() else set()
    config: RunnableConfig = {"max_concurrency": 1}  # one llama.cpp context: no parallel calls
    cascades = {
        name: create_intercascade(weak, weak, bank=None, judge=judges[name])
        for name in GROUPS[args.group]
    }
    for index, item in enumerate(load_questions(args.questions)):
        if index in done:
            continue
        row: dict[str, Any] = {"index": index, "gold": item["gold"], "seconds": {}}
        for name, cascade in cascades.items():
            start = time.perf_counter()
            got = collect_confidences(
                cascade, [(prompt(item["question"]), item["gold"])], grader, config=config
            )
            row["seconds"][name] = round(time.perf_counter() - start, 2)
            row[name] = got.confidences[0]
            row["correct"] = got.correct[0]
            row["answered"] = extract_number(got.answers[0])
            if got.errors[0]:
                row.setdefault("errors", {})[name] = got.errors[0]
        with rows_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(index, row["correct"], {k: round(row[k], 3) for k in cascades}, row["seconds"])


def timing(args: argparse.Namespace) -> None:
    """Generation with and without logprobs vs one rescoring pass, on the first questions."""
    weak, judges = build(args.model, args.threads)
    rescorer = judges["logprob_mean"]
    uncached = {
        "model_path": args.model,
        "n_threads": args.threads,
        "n_ctx": 2048,
        "verbose": False,
        "temperature": 0.0,
        "max_tokens": 256,
        "cache": False,
    }
    plain = ChatLlamaCpp(**uncached)
    generator = ChatLlamaCpp(**uncached, logits_all=True).bind(logprobs=True, top_logprobs=1)
    results = []
    for item in load_questions(args.timing):
        messages = prompt(item["question"])
        answer = weak.invoke(
            messages
        )  # cached: its context is not warm, so rescoring is a full pass
        seconds: dict[str, float] = {}
        for name, call in (
            ("generate_s", partial(plain.invoke, messages)),
            ("generate_with_logprobs_s", partial(generator.invoke, messages)),
            ("rescoring_pass_s", partial(rescorer.scored, messages, answer)),
        ):
            start = time.perf_counter()
            reply = call()
            seconds[name] = round(time.perf_counter() - start, 2)
        seconds["answer_tokens"] = len(token_logprobs(reply))
        results.append(seconds)
        print(seconds, flush=True)
    (WORK / "timing.json").write_text(json.dumps(results, indent=1))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a right answer outscores a wrong one (ties count half)."""
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def load_rows() -> list[dict[str, Any]]:
    """The cheap judges' rows, with self-consistency merged in where it ran."""
    by_group = {
        group: {row["index"]: row for row in map(json.loads, (WORK / f"rows-{group}.jsonl").open())}
        for group in GROUPS
        if (WORK / f"rows-{group}.jsonl").exists()
    }
    rows = []
    for index, row in sorted(by_group["cheap"].items()):
        extra = by_group.get("sc", {}).get(index, {})
        seconds = {**row["seconds"], **extra.get("seconds", {})}
        rows.append(
            {**row, **{k: v for k, v in extra.items() if k in GROUPS["sc"]}, "seconds": seconds}
        )
    return rows


def auroc_interval(scores: np.ndarray, labels: np.ndarray, draws: int = 2000) -> list[float]:
    """A 95% bootstrap interval for the AUROC, resampling questions."""
    rng = np.random.default_rng(0)
    values = []
    for _ in range(draws):
        pick = rng.integers(0, len(labels), len(labels))
        if labels[pick].any() and not labels[pick].all():
            values.append(auroc(scores[pick], labels[pick]))
    return [round(float(v), 3) for v in np.quantile(values, [0.025, 0.975])]


def out_of_fold(x: np.ndarray, y: np.ndarray, judges: Sequence[Any], folds: int = 5) -> np.ndarray:
    """Cross-validated logistic-combination confidences (each row scored by a fit without it)."""
    predicted = np.empty(len(y))
    # Stratified: deal each class's rows round-robin, so every fit sees both classes.
    fold_of = np.empty(len(y), dtype=int)
    for label in (True, False):
        fold_of[y == label] = np.arange(int((y == label).sum())) % folds
    for fold in range(folds):
        test = fold_of == fold
        fitted = LogisticJudge.fit(judges, x[~test], y[~test])
        predicted[test] = [fitted.combine(row) for row in x[test]]
    return predicted


def calibrated(values: np.ndarray, labels: np.ndarray, alpha: float) -> dict[str, Any]:
    """Calibrate on the first half, apply to the held-back second half."""
    half = len(values) // 2
    calibration = calibrate_threshold(values[:half], labels[:half], alpha=alpha, delta=DELTA)
    accepted = values[half:] >= calibration.threshold
    n = int(accepted.sum())
    return {
        # JSON has no infinity: "inf" is the certify-nothing threshold (defer everything).
        "threshold": calibration.threshold if math.isfinite(calibration.threshold) else "inf",
        "calibration_coverage": round(calibration.coverage, 3),
        "held_back_accepted": n,
        "held_back_coverage": round(n / accepted.size, 3),
        "held_back_realized_risk": round(float((~labels[half:][accepted]).mean()), 3)
        if n
        else None,
    }


def report(args: argparse.Namespace) -> None:
    _, judges = build(args.model, args.threads)
    rows = load_rows()
    labels = np.array([r["correct"] for r in rows], dtype=bool)
    table: dict[str, dict[str, Any]] = {}
    columns: dict[str, np.ndarray] = {}
    for name in judges:
        kept = [r for r in rows if name in r]
        if not kept:
            continue
        y = np.array([r["correct"] for r in kept], dtype=bool)
        columns[name] = np.array([r[name] for r in kept])
        table[name] = {
            "questions": len(kept),
            "correct": int(y.sum()),
            "auroc": round(auroc(columns[name], y), 3),
            "auroc_95": auroc_interval(columns[name], y),
            "mean_seconds": round(float(np.mean([r["seconds"][name] for r in kept])), 2),
        }
    x = np.column_stack([columns[n] for n in COMBINED])
    components = [judges[n] for n in COMBINED]
    columns["logistic"] = out_of_fold(x, labels, components)
    table["logistic"] = {
        "questions": len(rows),
        "correct": int(labels.sum()),
        "auroc": round(auroc(columns["logistic"], labels), 3),
        "auroc_95": auroc_interval(columns["logistic"], labels),
        "note": f"5-fold out-of-fold predictions; components {', '.join(COMBINED)}",
    }
    for name, entry in table.items():
        if entry["questions"] == len(rows):
            entry["alpha_0.1"] = calibrated(columns[name], labels, ALPHA)
            entry["alpha_0.5"] = calibrated(columns[name], labels, 0.5)
    full = LogisticJudge.fit(components, x, labels)
    out = {
        "model": Path(args.model).name,
        "questions": len(rows),
        "weak_accuracy": round(float(labels.mean()), 3),
        "finished_answers": int(sum(r["finished"] for r in rows)),
        "delta": DELTA,
        "calibration": "first half calibrates, second half is held back",
        "logistic_fit_on_all": {
            "weights": dict(zip(COMBINED, np.round(full.weights, 3).tolist(), strict=True)),
            "bias": round(full.bias, 3),
        },
        "judges": table,
    }
    (HERE / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    print(markdown(table))


def markdown(table: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown table (AUROC and the alpha = 0.1 calibration)."""
    lines = [
        "| judge | questions (right) | AUROC (95% bootstrap) | threshold, alpha=0.1 "
        "| held-back accepted | realized risk | s/question |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in table.items():
        cal = e.get("alpha_0.1", {})
        lines.append(
            f"| {name} | {e['questions']} ({e['correct']}) | {e['auroc']} {e['auroc_95']} "
            f"| {cal.get('threshold', '-')} | {cal.get('held_back_accepted', '-')} "
            f"| {cal.get('held_back_realized_risk', '-')} | {e.get('mean_seconds', '-')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("WEAK_GGUF", ""))
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--group", choices=sorted(GROUPS), default="cheap")
    # On a CPU shared with other llama.cpp processes one thread is much faster:
    # with two, each op's barrier spins while the other thread waits for a core
    # (0.4 vs 2.0-2.6 tokens/s measured here under load; threads are not in the
    # cache key, so either setting reuses the cached calls).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timing", type=int, default=0)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    args.model = os.path.expanduser(args.model)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args)
    elif args.timing:
        timing(args)
    else:
        if not args.model:
            parser.error("pass --model PATH.gguf or set WEAK_GGUF")
        run(args)


if __name__ == "__main__":
    main()
