"""One regime-map cell, or the regime benchmark (issue 12), on local llama.cpp models.

A cell is a stream, a model pair, how each model answers and a strategy form:

- ``--weak-answers``/``--strong-answers``: ``cot`` (step by step, ``run_benchmark.SYSTEM_PROMPT``)
  or ``program`` (program-aided: the model writes a Python program, which runs, arithmetic
  only, in a throwaway interpreter, and its printed number is the answer, see
  :class:`ProgramAided`). The pilot cells found both Qwen2.5-Coder models writing correct
  programs and then stating a made-up "output".
- ``--strategies``: ``method`` (the package's default distill prompt) or ``program`` (a
  parameterized ``solve`` function, ``run_benchmark.PROGRAM_DISTILL_SYSTEM``, shown to the
  weak model as a function to reuse with the new numbers).

By default it runs ``weak``, ``strong`` and ``intercascade`` in stream order with an
infinite threshold, so every weak answer is paired (without strategies: ``weak``; with
the strategies the bank retrieves: ``intercascade``'s ``weak_correct``) and the strong
model distils from every question. With ``--calibration-examples N`` the threshold is
calibrated instead on the stream's first N questions (``alpha``/``delta`` 0.2/0.1), and
``--configurations`` can add ``cascade``: the regime benchmark (with ``--seeds 0 1 2 3 4``
and ``--calibration-examples 30``, the seed-0 stream, whose weak answers a cell already
paid for, calibrates, and 120 new questions are evaluated). The judge is
``run_benchmark.SelfCheckJudge`` (no model call). Strong program-aided answers are
distilled only when their program ran (``distill_threshold`` over :func:`program_ran`);
a query that retrieved a near-duplicate pays no distillation.

    PYTHONPATH=$PWD python benchmarks/regime/run_cell.py --stream easy --out /tmp/regime-out/x
    PYTHONPATH=$PWD python benchmarks/regime/analyze_pilot.py /tmp/regime-out/x
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_intercascade import CascadePrompts
from langchain_intercascade.evaluation import EvaluationConfig, run_evaluation
from langchain_intercascade.settings import import_chat_model
from langchain_intercascade.testing import BagOfWordsEmbeddings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmark import (  # noqa: E402
    _CODE,
    SYSTEM_PROMPT,
    SelfCheckJudge,
    chat_model,
    prompts_for,
    run_program,
)
from streams import STREAMS  # noqa: E402

MODELS = Path.home() / ".cache" / "intercascade" / "models"

PAL_SYSTEM_PROMPT = (
    "Write a short Python program that computes the answer to the problem and prints "
    "only the final number. Reply with the code only."
)

PROGRAM_SECTION = """\
<reference_strategies>
A similar problem was solved before with the Python function below. If the new \
problem has the same structure, reuse the function in your program with the NEW \
problem's numbers; if not, ignore it.

{strategies}
</reference_strategies>"""


class ProgramAided(BaseChatModel):
    """A chat model that answers with a program, which runs; the printed number is the answer.

    On an answer call (one whose system message is ``run_benchmark.SYSTEM_PROMPT``)
    that system message becomes :data:`PAL_SYSTEM_PROMPT`, the reply's program runs,
    and the reply becomes the program and a line ``The answer is N.``; ``response_metadata`` gains
    ``program_output`` (None when there was no program, or it was refused, failed or
    printed no number: the reply is then the model's own). Other calls (distillation)
    pass through.
    """

    inner: BaseChatModel

    @property
    def _llm_type(self) -> str:
        return "program-aided"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"program_aided": self.inner._identifying_params}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answering = any(isinstance(m, SystemMessage) and m.text == SYSTEM_PROMPT for m in messages)
        if answering:
            messages = [
                SystemMessage(PAL_SYSTEM_PROMPT)
                if isinstance(m, SystemMessage) and m.text == SYSTEM_PROMPT
                else m
                for m in messages
            ]
        reply = self.inner.invoke(messages, stop=stop, **kwargs)
        code = _program(reply.text) if answering else None
        printed = run_program(code) if code else None
        # The program and what it printed; the model's own "output" and prose go, since
        # graders read a boxed number first and it is often made up.
        text = reply.text if printed is None else f"```python\n{code}```\nThe answer is {printed}."
        message = AIMessage(
            content=text,
            usage_metadata=reply.usage_metadata,
            response_metadata={**reply.response_metadata, "program_output": printed},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _program(text: str) -> str | None:
    block = _CODE.search(text)
    if block:
        return block.group(1)
    # "Reply with the code only" is sometimes taken literally: no fence.
    return text if "print(" in text and "```" not in text else None


def program_ran(messages: Sequence[BaseMessage], answer: AIMessage) -> float:
    """The trust signal for distillation: the strong model's program ran and printed a number."""
    return float(answer.response_metadata.get("program_output") is not None)


def model(spec: str, answers: str, max_tokens: int, threads: int) -> BaseChatModel:
    """A GGUF file on llama.cpp, or ``module:attribute`` naming any chat model (hosted ones)."""
    plain = (
        chat_model(spec, max_tokens, 2048, threads)
        if spec.endswith(".gguf")
        else import_chat_model(spec)
    )
    return ProgramAided(inner=plain) if answers == "program" else plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--weak-model", default=str(MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    )
    parser.add_argument(
        "--strong-model", default=str(MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    )
    parser.add_argument("--weak-answers", choices=["cot", "program"], default="cot")
    parser.add_argument("--strong-answers", choices=["cot", "program"], default="cot")
    parser.add_argument("--strategies", choices=["method", "program"], default="method")
    parser.add_argument("--stream", choices=sorted(STREAMS), default="easy")
    parser.add_argument("--per-template", type=int, default=6)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="one stream per seed, one after the other (ids then start with seed<N>-)",
    )
    parser.add_argument("--configurations", nargs="+", default=["weak", "strong", "intercascade"])
    parser.add_argument("--calibration-examples", type=int, default=0)
    parser.add_argument(
        "--judge",
        choices=["self-check", "auto"],
        default="self-check",
        help="self-check: run_benchmark.SelfCheckJudge (no model call); auto: the package "
        "default, the answer's token probability where the weak model returns logprobs "
        "(the paper's judge: hosted models)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weak-max-tokens", type=int, default=200)
    parser.add_argument("--strong-max-tokens", type=int, default=300)
    parser.add_argument("--cache", default="/tmp/regime-calls.sqlite")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    weak = model(args.weak_model, args.weak_answers, args.weak_max_tokens, args.threads)
    strong = model(args.strong_model, args.strong_answers, args.strong_max_tokens, args.threads)
    prompts = (
        prompts_for("program").model_copy(update={"strategy_section": PROGRAM_SECTION})
        if args.strategies == "program"
        else CascadePrompts()
    )
    trust = {"distill_threshold": 0.5, "strong_judge": program_ran}
    config = EvaluationConfig(
        seed=args.seeds[0],
        shuffle=False,
        configurations=args.configurations,
        calibration_examples=args.calibration_examples,
        alpha=0.2,
        threshold=float("inf"),
        judge=SelfCheckJudge() if args.judge == "self-check" else None,
        prompts=prompts,
        system_prompt=SYSTEM_PROMPT,
        cache_path=Path(args.cache),
        output_dir=Path(args.out),
        **(trust if args.strong_answers == "program" else {}),
    )
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        # Strategies are keyed by their source question; hashed word counts match
        # instances of one template (numbers and names aside). MiniLM is not installed.
        embeddings=BagOfWordsEmbeddings(),
        examples=[
            e.model_copy(update={"id": f"seed{seed}-{e.id}"}) if len(args.seeds) > 1 else e
            for seed in args.seeds
            for e in STREAMS[args.stream](args.per_template, seed)
        ],
    )
    print(result.to_markdown())


if __name__ == "__main__":
    main()
