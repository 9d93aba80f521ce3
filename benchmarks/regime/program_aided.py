"""Regime-map cells with program-aided answers and program-form strategies (issue 12).

The pilot cells showed both Qwen2.5-Coder models writing correct Python and then
stating a made-up "output". Here every answer is program-aided: each model is asked
for a program, the program runs (arithmetic only, in a throwaway interpreter:
``run_benchmark.run_program``) and its printed number is the answer. Strategies are
parameterized programs: the strong model turns its program into a ``solve`` function
(``run_benchmark.PROGRAM_DISTILL_SYSTEM``), and the weak model sees it as a function to
reuse with the new numbers.

Trusted distillation (deliverable 2): a strong answer is distilled only when its
program ran and printed a number (``distill_threshold=0.5`` over a judge that says
exactly that); a query that retrieved a near-duplicate pays no distillation.

    PYTHONPATH=$PWD python benchmarks/regime/program_aided.py --stream easy \\
        --out /tmp/regime-out/easy-program
    PYTHONPATH=$PWD python benchmarks/regime/analyze_pilot.py /tmp/regime-out/easy-program
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_intercascade.evaluation import EvaluationConfig, run_evaluation
from langchain_intercascade.testing import BagOfWordsEmbeddings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmark import _CODE, SelfCheckJudge, chat_model, prompts_for, run_program  # noqa: E402
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
    """A chat model whose reply's Python program is run; the printed number is the answer.

    The reply gains a last line ``The answer is N.`` and ``response_metadata``
    gains ``program_output`` (None when there was no program, it was refused, it
    failed or printed no number: the reply is then the model's own).
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
        reply = self.inner.invoke(messages, stop=stop, **kwargs)
        code = _program(reply.text)
        printed = run_program(code) if code else None
        text = reply.text if printed is None else f"{reply.text}\nThe answer is {printed}."
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--weak-model", default=str(MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    )
    parser.add_argument(
        "--strong-model", default=str(MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    )
    parser.add_argument("--stream", choices=sorted(STREAMS), default="easy")
    parser.add_argument("--per-template", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weak-max-tokens", type=int, default=200)
    parser.add_argument("--strong-max-tokens", type=int, default=300)
    parser.add_argument("--cache", default="/tmp/regime-calls.sqlite")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    weak = ProgramAided(inner=chat_model(args.weak_model, args.weak_max_tokens, 2048, args.threads))
    strong = ProgramAided(
        inner=chat_model(args.strong_model, args.strong_max_tokens, 2048, args.threads)
    )
    prompts = prompts_for("program").model_copy(update={"strategy_section": PROGRAM_SECTION})
    config = EvaluationConfig(
        seed=args.seed,
        shuffle=False,
        configurations=["weak", "strong", "intercascade"],
        threshold=float("inf"),
        judge=SelfCheckJudge(),
        prompts=prompts,
        system_prompt=PAL_SYSTEM_PROMPT,
        cache_path=Path(args.cache),
        output_dir=Path(args.out),
        distill_threshold=0.5,
        strong_judge=program_ran,
    )
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        embeddings=BagOfWordsEmbeddings(),
        examples=STREAMS[args.stream](args.per_template, args.seed),
    )
    print(result.to_markdown())


if __name__ == "__main__":
    main()
