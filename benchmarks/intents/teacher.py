"""A simulated teacher of known accuracy, to separate the mechanism from the 1.5B teacher.

On Banking77 with all 77 labels the local 1.5B model is right on about a fifth of the
messages, so what the weak model can learn from a teacher is hidden behind what this
teacher knows. :func:`simulated_teacher` answers each message with its gold label with
probability ``accuracy`` and otherwise with another label drawn uniformly (a fixed
choice per message, so reruns and the call cache agree), and writes the strategy's rule
from the label's words. It is billed like the strong model: token counts come from the
Qwen tokenizer the local pair shares.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, get_buffer_string
from langchain_core.messages.ai import UsageMetadata

from langchain_intercascade.evaluation import Example
from langchain_intercascade.labels import LabelSet
from langchain_intercascade.testing import ScriptedChatModel


class _BilledTeacher(ScriptedChatModel):
    """A scripted model whose usage is counted in the strong model's tokens."""

    count_tokens: Callable[[str], int]

    def _reply(self, messages: list[BaseMessage], **kwargs: Any) -> AIMessage:
        message = super()._reply(messages, **kwargs)
        prompt = self.count_tokens(get_buffer_string(messages))
        output = self.count_tokens(message.text) or 1
        usage = UsageMetadata(
            input_tokens=prompt, output_tokens=output, total_tokens=prompt + output
        )
        return message.model_copy(update={"usage_metadata": usage})


def simulated_teacher(
    labels: LabelSet,
    examples: Sequence[Example],
    *,
    accuracy: float,
    seed: int,
    count_tokens: Callable[[str], int],
) -> ScriptedChatModel:
    """A strong model that knows the gold labels of ``examples`` and is right on ``accuracy``.

    Args:
        labels: The task's labels.
        examples: Every message the teacher may be asked about (stream and held-out).
        accuracy: The chance that the answer is the gold label.
        seed: Picks which messages are answered wrongly, and with what.
        count_tokens: The number of tokens of a text, for the usage it reports.

    Returns:
        The teacher, named after its accuracy (so the call cache keeps levels apart).
    """
    answers: dict[str, str] = {}
    for example in examples:
        rng = random.Random(f"{seed}:{example.question}")
        wrong = [label for label in labels.labels if label != example.answer]
        answers[example.question] = example.answer if rng.random() < accuracy else rng.choice(wrong)

    def respond(messages: list[BaseMessage]) -> str:
        text = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
        if text in answers:
            return answers[text]
        # The distillation prompt (prompts.LABEL_DISTILL_HUMAN) names the answered label.
        label = labels.extract(text.rpartition("Label:")[2]) or labels.labels[0]
        words = label.replace("_", " ")
        return json.dumps(
            {
                "title": label,
                "applies_when": f"The customer's message is about {words}.",
                "steps": [f"Answer with the label {label}"],
            }
        )

    return _BilledTeacher(
        respond=respond,
        logprob=0.0,
        supports_tools=False,
        model_name=f"simulated-teacher-{accuracy:g}",
        count_tokens=count_tokens,
    )
