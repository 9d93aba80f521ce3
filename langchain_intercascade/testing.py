"""Test doubles that behave like real providers, for tests, demos and notebooks.

:class:`ScriptedChatModel` answers through a function of the prompt (so it can
react to injected strategies), reports ``usage_metadata`` and OpenAI-format
logprobs like ``ChatOpenAI(logprobs=True)``, streams token by token and supports
tool calling (hence ``with_structured_output``). :class:`BagOfWordsEmbeddings`
is a deterministic embedding under which texts sharing words are similar.
:func:`fake_models` builds the one scripted world that tests, the server's
``--fake`` mode, the demo and the notebooks share; :func:`fake_agent_models` is
the same world for tool-calling agents, with the :data:`multiply` tool, and
:func:`fake_label_models` the world of a label task (support tickets).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    get_buffer_string,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field
from typing_extensions import override

from langchain_intercascade.labels import LabelSet

Responder = Callable[[list[BaseMessage]], "str | AIMessage"]
LogprobFn = Callable[[list[BaseMessage], str], "float | None"]

_WORD = re.compile(r"[a-z]+")


def _tokens(text: str) -> list[str]:
    return re.findall(r"\S+|\s+", text)


class ScriptedChatModel(GenericFakeChatModel):
    """A fake chat model whose reply is a function of the prompt.

    Attributes:
        respond: Maps the prompt messages to the reply text (or an AIMessage).
        logprob: The logprob reported for every generated token: a float, a
            function ``(messages, reply) -> float | None``, or None to report no
            logprobs (like a provider with logprobs off).
        supports_tools: Whether ``bind_tools`` (and so structured output via tool
            calling) works; False behaves like a model without tool calling.
        model_name: The name reported in ``response_metadata``.
        fail_with: Raise this exception on every call (to test failures).
        refuse_structured: Raise this exception on calls that bind tools (as
            ``with_structured_output`` does), like an OpenAI-compatible server
            that answers 400 to structured-output requests.

    Attributes:
        calls: Every prompt the model received, in order.
    """

    messages: Iterator[AIMessage | str] = Field(default_factory=lambda: iter(()))
    respond: Responder
    logprob: float | LogprobFn | None = None
    supports_tools: bool = True
    model_name: str = "scripted"
    fail_with: Exception | None = None
    refuse_structured: Exception | None = None
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # Part of LangChain's cache key: two scripted models must not share cached replies.
        return {**super()._identifying_params, "model_name": self.model_name}

    def _reply(self, messages: list[BaseMessage], **kwargs: Any) -> AIMessage:
        self.calls.append(list(messages))
        if self.fail_with is not None:
            raise self.fail_with
        tools = kwargs.get("tools")
        if tools and self.refuse_structured is not None:
            raise self.refuse_structured
        result = self.respond(messages)
        message = AIMessage(content=result) if isinstance(result, str) else result
        if tools and kwargs.get("tool_choice") and not message.tool_calls:
            # Like a provider forced to call the (structured-output) tool: the JSON in
            # the reply becomes the tool call's arguments.
            match = re.search(r"\{.*\}", message.text, re.DOTALL)
            args = json.loads(match.group(0)) if match else {}
            name = tools[0]["function"]["name"]
            message = AIMessage(
                content="",
                tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}"}],
            )
        prompt_tokens = len(get_buffer_string(messages).split())
        output = message.text or json.dumps([c["args"] for c in message.tool_calls])
        output_tokens = max(1, len(output.split()))
        return message.model_copy(
            update={
                "usage_metadata": UsageMetadata(
                    input_tokens=prompt_tokens,
                    output_tokens=output_tokens,
                    total_tokens=prompt_tokens + output_tokens,
                ),
                "response_metadata": {**message.response_metadata, "model_name": self.model_name},
            }
        )

    def _logprob(self, messages: list[BaseMessage], text: str) -> float | None:
        return self.logprob(messages, text) if callable(self.logprob) else self.logprob

    @staticmethod
    def _logprob_entries(tokens: Sequence[str], value: float) -> list[dict[str, Any]]:
        return [
            {"token": t, "logprob": value, "bytes": list(t.encode()), "top_logprobs": []}
            for t in tokens
        ]

    @override
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._reply(messages, **kwargs)
        info: dict[str, Any] = {"finish_reason": "stop"}
        value = self._logprob(messages, message.text)
        if value is not None:
            info["logprobs"] = {"content": self._logprob_entries(_tokens(message.text), value)}
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    @override
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._reply(messages, **kwargs)
        value = self._logprob(messages, message.text)
        tokens = _tokens(message.text) if message.text else []
        for token in tokens:
            info = (
                {"logprobs": {"content": self._logprob_entries([token], value)}}
                if value is not None
                else None
            )
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(content=token, id=message.id), generation_info=info
            )
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        # Providers send tool calls, usage and the finish reason in the last chunk.
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=message.id,
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(message.tool_calls)
                ],
                usage_metadata=message.usage_metadata,
                response_metadata={"model_name": self.model_name},
                chunk_position="last",
            ),
            generation_info={"finish_reason": "stop"},
        )

    @override
    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        if not self.supports_tools:
            raise NotImplementedError("this scripted model has no tool calling")
        return self.bind(
            tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs
        )


class BagOfWordsEmbeddings(Embeddings):
    """Deterministic embeddings: hashed word counts, L2-normalized.

    Texts that share words are similar; digits and punctuation are ignored, so
    problems that differ only in their numbers embed identically.

    Args:
        dim: The vector size.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in _WORD.findall(text.lower()):
            index = int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % self.dim
            vector[index] += 1.0
        norm = sum(v * v for v in vector) ** 0.5 or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts."""
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed a query."""
        return self._embed(text)


# -- the scripted world ---------------------------------------------------------

EQUAL_GROUPS_STRATEGY = json.dumps(
    {
        "title": "Total from equal groups",
        "applies_when": "A number of groups each hold the same number of items",
        "steps": [
            "Multiply the number of groups by the items per group",
            "Report the product as the total",
        ],
        "pitfalls": ["Do not add the two numbers"],
    }
)
"""What the scripted strong model distills from an equal-groups problem."""

TRANSLATION_STRATEGY = json.dumps(
    {
        "title": "Translate a single word",
        "applies_when": "The user asks for a word in another language",
        "steps": ["Give the target-language word", "Match its grammatical gender"],
    }
)
"""What the scripted strong model distills from any other question."""

CAPITAL_QUESTION = "What is the capital of France?"
"""A question the scripted weak model answers right, confidently, unaided."""


def _last_human(messages: list[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def _has_strategy(messages: list[BaseMessage]) -> bool:
    return any(
        isinstance(m, SystemMessage) and "<reference_strategies>" in m.text for m in messages
    )


def _equal_groups(question: str) -> tuple[int, int] | None:
    # "3 baskets with 4 apples in each basket", "3 boxes with 4 pens each"
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    return (numbers[0], numbers[1]) if " each" in question and len(numbers) >= 2 else None


def weak_respond(messages: list[BaseMessage]) -> str:
    """The scripted weak model: right on equal-groups problems only with a strategy.

    Without one it adds the two numbers instead of multiplying them. It knows the
    capital of France and rates every answer 0.3 when asked to rate one.
    """
    question = _last_human(messages)
    if "rate how likely" in question.lower():
        return "0.3"
    if question == CAPITAL_QUESTION:
        return "Paris."
    pair = _equal_groups(question)
    if pair is None:
        return "I am not sure."
    a, b = pair
    return f"The total is {a * b if _has_strategy(messages) else a + b}."


def weak_logprob(messages: list[BaseMessage], reply: str) -> float:
    """The scripted weak model's token logprob: confident only when it is right."""
    if reply == "Paris." or (_equal_groups(_last_human(messages)) and _has_strategy(messages)):
        return -0.05
    return -1.5


def strong_respond(messages: list[BaseMessage]) -> str:
    """The scripted strong model: always right, and distills a strategy when asked."""
    text = _last_human(messages)
    if text.startswith("Problem:"):  # the distillation prompt
        return EQUAL_GROUPS_STRATEGY if _equal_groups(text) else TRANSLATION_STRATEGY
    pair = _equal_groups(text)
    if pair is None:
        return "Bibliothek."
    return f"Multiply the groups by the items in each: the total is {pair[0] * pair[1]}."


def fake_models() -> tuple[ScriptedChatModel, ScriptedChatModel, BagOfWordsEmbeddings]:
    """The scripted world: a weak/strong pair that shows the cascade learn.

    On equal-groups problems ("3 boxes with 4 pens in each box") the weak model
    adds the two numbers, wrongly and with low token probability, unless it is
    shown a strategy, when it multiplies them confidently; the strong model always
    multiplies and distills the "Total from equal groups" strategy. So the first
    problem of the kind is deferred and later ones are not.

    Returns:
        The weak model, the strong model and bag-of-words embeddings.

    Example:
        ```python
        from langchain_intercascade.testing import fake_models

        weak, strong, embeddings = fake_models()
        assert weak.invoke("3 boxes with 4 pens in each box?").text == "The total is 7."
        ```
    """
    weak = ScriptedChatModel(respond=weak_respond, logprob=weak_logprob, model_name="weak-fake")
    strong = ScriptedChatModel(respond=strong_respond, model_name="strong-fake")
    return weak, strong, BagOfWordsEmbeddings()


# -- the scripted world of a label task ---------------------------------------------

SUPPORT_LABELS = LabelSet(
    labels=("card_arrival", "lost_or_stolen_card", "exchange_rate", "refund_not_showing_up")
)
"""The labels of the scripted support desk."""

SUPPORT_TICKETS: tuple[tuple[str, str], ...] = (
    ("My new card has not arrived yet, when does a card arrive?", "card_arrival"),
    ("Someone stole my wallet on the train, I lost everything in it.", "lost_or_stolen_card"),
    ("What exchange rate do you use for euros?", "exchange_rate"),
    ("The shop says it sent my refund but the refund is not showing up.", "refund_not_showing_up"),
)
"""One ticket per label, with its gold label: repeat them for a recurring stream."""


def fake_label_models(
    labels: LabelSet = SUPPORT_LABELS,
) -> tuple[ScriptedChatModel, ScriptedChatModel, BagOfWordsEmbeddings]:
    """The scripted world of a label task: a weak model that copies what it is shown.

    The strong model answers with the label sharing the most words with the
    message (right on :data:`SUPPORT_TICKETS`) and distills it as a label
    strategy. The weak model answers, confidently, with the shown strategy's
    label that shares the most words with the message, and where none shares
    one with the first label, unsure; so once a ticket's kind has been
    distilled, its kind's next tickets stay weak.

    Args:
        labels: The task's labels.

    Returns:
        The weak model, the strong model and bag-of-words embeddings.

    Example:
        ```python
        from langchain_intercascade.testing import fake_label_models

        weak, strong, _ = fake_label_models()
        ticket = "What exchange rate do you use?"
        assert strong.invoke(ticket).text == "exchange_rate"
        assert weak.invoke(ticket).text == "card_arrival"  # unaided: the first label
        ```
    """
    prompts = labels.prompts()

    def best_label(text: str, candidates: Sequence[str]) -> str | None:
        words = set(_WORD.findall(text.lower()))
        shared = {label: len(words & set(_WORD.findall(label))) for label in candidates}
        best = max(candidates, key=shared.__getitem__, default=None)
        return best if best is not None and shared[best] else None

    def weak_label(messages: list[BaseMessage]) -> str | None:
        shown = [t for t in map(labels.extract, prompts.shown_titles(messages)) if t]
        # The hint section follows the message in its turn (a label task's placement).
        message = _last_human(messages).partition("<reference_strategies>")[0]
        return best_label(message, shown)

    def strong_label(messages: list[BaseMessage]) -> str:
        text = _last_human(messages)
        if not text.startswith("Message:"):
            return best_label(text, labels.labels) or labels.labels[0]
        label = text.partition("Label:")[2].strip().splitlines()[0]
        rule = f"The message is about {label.replace('_', ' ')}."
        steps = [f"Answer with the label {label}"]
        return json.dumps({"title": label, "applies_when": rule, "steps": steps})

    weak = ScriptedChatModel(
        respond=lambda messages: weak_label(messages) or labels.labels[0],
        logprob=lambda messages, reply: -0.05 if weak_label(messages) else -1.5,
        model_name="weak-labels",
    )
    strong = ScriptedChatModel(respond=strong_label, model_name="strong-labels")
    return weak, strong, BagOfWordsEmbeddings()


# -- the scripted world for tool-calling agents -----------------------------------


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def _multiply_call(a: int, b: int, text: str) -> AIMessage:
    call = {"name": "multiply", "args": {"a": a, "b": b}, "id": f"call_multiply_{a}_{b}"}
    return AIMessage(content=text, tool_calls=[call])


def weak_agent_respond(messages: list[BaseMessage]) -> str | AIMessage:
    """The scripted weak agent model: uses ``multiply`` only when shown a strategy.

    On an equal-groups problem with a strategy it calls ``multiply`` (saying so,
    so its reply has tokens to score); unaided it answers at once like
    :func:`weak_respond`, adding the numbers. After a tool result it states it.
    """
    if isinstance(messages[-1], ToolMessage):
        return f"The total is {messages[-1].text}."
    pair = _equal_groups(_last_human(messages))
    if pair is not None and _has_strategy(messages):
        return _multiply_call(*pair, "Multiply the groups by the items in each.")
    return weak_respond(messages)


def strong_agent_respond(messages: list[BaseMessage]) -> str | AIMessage:
    """The scripted strong agent model: calls ``multiply``, then states the result.

    It answers other questions, and distills, like :func:`strong_respond`.
    """
    if isinstance(messages[-1], ToolMessage):
        return f"The total is {messages[-1].text}."
    question = _last_human(messages)
    pair = _equal_groups(question)
    if pair is None or question.startswith("Problem:"):  # the distillation prompt
        return strong_respond(messages)
    return _multiply_call(*pair, "")


def fake_agent_models() -> tuple[ScriptedChatModel, ScriptedChatModel, BagOfWordsEmbeddings]:
    """The scripted world of :func:`fake_models` for agents with the :data:`multiply` tool.

    On equal-groups problems the strong model calls ``multiply`` and then states
    the result. The weak model, unaided, answers at once by adding the numbers,
    with low token probability; shown a strategy, it calls ``multiply`` and then
    states the result, confidently (:func:`weak_logprob`).

    Returns:
        The weak model, the strong model and bag-of-words embeddings.

    Example:
        ```python
        from langchain_intercascade.testing import fake_agent_models

        weak, strong, embeddings = fake_agent_models()
        reply = strong.invoke("3 boxes with 4 pens in each box?")
        assert reply.tool_calls[0]["args"] == {"a": 3, "b": 4}
        assert weak.invoke("3 boxes with 4 pens in each box?").text == "The total is 7."
        ```
    """
    weak = ScriptedChatModel(
        respond=weak_agent_respond, logprob=weak_logprob, model_name="weak-fake"
    )
    strong = ScriptedChatModel(respond=strong_agent_respond, model_name="strong-fake")
    return weak, strong, BagOfWordsEmbeddings()
