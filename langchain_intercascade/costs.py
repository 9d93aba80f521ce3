"""Token accounting per model and role.

The cascade reports usage as ``{model: {role: tokens}}``, where ``model`` is
``"weak"`` or ``"strong"`` and ``role`` is what the call was for (``"answer"``,
``"judge"``, ``"distill"``), and ``tokens`` is a LangChain ``UsageMetadata``
dict read from each call's ``AIMessage.usage_metadata``.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import merge_configs
from pydantic import BaseModel, ConfigDict, Field

ModelKey = Literal["weak", "strong"]
Usage = dict[str, dict[str, UsageMetadata]]


def empty_usage() -> UsageMetadata:
    """Return a zero ``UsageMetadata``."""
    return UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)


def record_usage(usage: Usage, model: str, role: str, message: AIMessage | None) -> Usage:
    """Return ``usage`` with one call's tokens added under ``model`` and ``role``.

    A message without ``usage_metadata`` (a provider that reports none) adds
    nothing but still creates the entry, so the call is visible.

    Args:
        usage: The usage so far; not modified.
        model: Which model made the call (``"weak"`` or ``"strong"``).
        role: What the call was for.
        message: The call's reply.

    Returns:
        A new usage mapping.
    """
    merged = {key: dict(roles) for key, roles in usage.items()}
    roles = merged.setdefault(model, {})
    tokens = message.usage_metadata if message is not None else None
    roles[role] = add_usage(roles.get(role, empty_usage()), tokens or empty_usage())
    return merged


def merge_usage(left: Usage, right: Usage) -> Usage:
    """Add two usage mappings.

    Args:
        left: One usage mapping.
        right: Another.

    Returns:
        Their sum, per model and role.
    """
    merged = {key: dict(roles) for key, roles in left.items()}
    for model, roles in right.items():
        target = merged.setdefault(model, {})
        for role, tokens in roles.items():
            target[role] = add_usage(target.get(role, empty_usage()), tokens)
    return merged


def total_usage(usage: Usage, model: str | None = None) -> UsageMetadata:
    """Sum tokens over roles, for one model or all.

    Args:
        usage: A usage mapping.
        model: Restrict the sum to this model; None sums every model.

    Returns:
        The total ``UsageMetadata``.
    """
    total = empty_usage()
    for key, roles in usage.items():
        if model is None or key == model:
            for tokens in roles.values():
                total = add_usage(total, tokens)
    return total


class UsageCapture(BaseCallbackHandler):
    """Reads token usage from ``llm_output`` for providers that leave ``usage_metadata`` empty.

    Some chat models (e.g. ``ChatLlamaCpp``) report OpenAI-style
    ``llm_output["token_usage"]`` to callbacks but set no ``usage_metadata`` on
    the message; this handler catches it so the cascade's accounting stays honest.
    """

    run_inline = True  # an async run would hop to a thread for each event

    def __init__(self) -> None:
        self.usage: UsageMetadata | None = None

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        """Keep the call's token usage, if the provider reported one."""
        tokens = (response.llm_output or {}).get("token_usage") or {}
        if tokens:
            prompt, completion = tokens.get("prompt_tokens", 0), tokens.get("completion_tokens", 0)
            self.usage = UsageMetadata(
                input_tokens=prompt,
                output_tokens=completion,
                total_tokens=tokens.get("total_tokens", prompt + completion),
            )

    def fill(self, reply: Any) -> Any:
        """Return the reply with ``usage_metadata`` set from the captured usage if missing."""
        if isinstance(reply, dict) and isinstance(reply.get("raw"), AIMessage):
            return {**reply, "raw": self.fill(reply["raw"])}  # structured output, include_raw
        if isinstance(reply, AIMessage) and reply.usage_metadata is None and self.usage:
            return reply.model_copy(update={"usage_metadata": self.usage})
        return reply


def _counted_config(
    config: RunnableConfig, patch: RunnableConfig | None, capture: UsageCapture
) -> RunnableConfig:
    # One merge for both: each merge copies the run's callback manager.
    return merge_configs(config, {**(patch or {}), "callbacks": [capture]})


def invoke_counted(
    runnable: Runnable[Any, Any],
    value: Any,
    config: RunnableConfig,
    patch: RunnableConfig | None = None,
) -> Any:
    """Invoke a model; its reply carries ``usage_metadata`` whenever the provider reported usage.

    Args:
        runnable: A chat model or a Runnable around one.
        value: Its input.
        config: The run's config.
        patch: Config for this call alone (run name, tags), merged into ``config``.

    Returns:
        The reply, with usage filled in from ``llm_output`` where the message lacked it.
    """
    capture = UsageCapture()
    return capture.fill(runnable.invoke(value, _counted_config(config, patch, capture)))


async def ainvoke_counted(
    runnable: Runnable[Any, Any],
    value: Any,
    config: RunnableConfig,
    patch: RunnableConfig | None = None,
) -> Any:
    """Async :func:`invoke_counted`."""
    capture = UsageCapture()
    return capture.fill(await runnable.ainvoke(value, _counted_config(config, patch, capture)))


class ModelPrice(BaseModel):
    """One model's token prices, per million tokens.

    Attributes:
        input_per_million: Price of a million prompt tokens.
        output_per_million: Price of a million generated tokens.
    """

    model_config = ConfigDict(frozen=True)

    input_per_million: float = Field(ge=0.0)
    output_per_million: float = Field(ge=0.0)

    def cost(self, tokens: UsageMetadata) -> float:
        """The fee for some tokens.

        Args:
            tokens: Input and output tokens.

        Returns:
            The fee.
        """
        return (
            tokens["input_tokens"] * self.input_per_million / 1e6
            + tokens["output_tokens"] * self.output_per_million / 1e6
        )


class PriceTable(BaseModel):
    """Token prices per model key (``"weak"``, ``"strong"``), to turn usage into fees.

    Attributes:
        prices: The price of each model key; a key without a price costs nothing.
        currency: The currency the prices are in.
        as_of: When the prices were read, and where from.
    """

    model_config = ConfigDict(frozen=True)

    prices: dict[str, ModelPrice]
    currency: str = "USD"
    as_of: str | None = None

    def cost(self, usage: Usage, model: str | None = None) -> float:
        """The fee for a usage mapping.

        Args:
            usage: Tokens per model and role.
            model: Price only this model key; None prices every model.

        Returns:
            The fee in :attr:`currency`.
        """
        fee = 0.0
        for key, price in self.prices.items():
            if model is not None and key != model:
                continue
            fee += price.cost(total_usage(usage, key))
        return fee


DEFAULT_PRICES = PriceTable(
    prices={
        "weak": ModelPrice(input_per_million=0.15, output_per_million=0.60),
        "strong": ModelPrice(input_per_million=2.50, output_per_million=10.00),
    },
    as_of="2024-08-06: OpenAI list prices of gpt-4o-mini (weak) and gpt-4o-2024-08-06 (strong)",
)
"""Default prices: a hosted weak/strong pair like the paper's; pass your own table."""
