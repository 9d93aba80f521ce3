"""Serve the cascade: a graph factory configured from environment variables.

``langgraph.json`` at the repository root points ``langgraph dev`` at
:func:`make_graph`, so ``langgraph dev --host 127.0.0.1 --no-browser`` serves the
cascade as the assistant ``intercascade``. The factory reads
:class:`CascadeSettings` from ``INTERCASCADE_*`` variables (the CLI reads the same
settings from flags or a JSON file):

=============================== ===========================================
``INTERCASCADE_WEAK_MODEL``     weak model: a GGUF file or ``module:attribute``
``INTERCASCADE_STRONG_MODEL``   strong model: likewise
``INTERCASCADE_FAKE``           ``1``: scripted models, no files needed
``INTERCASCADE_BANK_DIR``       folder the strategy bank is loaded from and saved to
``INTERCASCADE_THRESHOLD``      acceptance threshold (default 0.8)
``INTERCASCADE_K``              strategies shown to the weak model (default 2)
``INTERCASCADE_SCORE_THRESHOLD`` similarity cut-off (default 0.5)
``INTERCASCADE_DISTILL_MODE``   ``separate`` or ``joint``
``INTERCASCADE_MAX_TOKENS``     generation cap of local GGUF models
=============================== ===========================================

``module:attribute`` names a chat model object, or a function that returns one,
so any LangChain chat model can be served. Models and bank are built once per
process; the bank is saved after every run that changed it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.chat_model import ChatInterCascade
from langchain_intercascade.graph import DistillMode, InterCascadeGraph, create_intercascade
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

ENV_PREFIX = "INTERCASCADE_"


class ConfigurationError(ValueError):
    """The cascade's configuration is incomplete or invalid."""


# -- a scripted world ----------------------------------------------------------

_FAKE_STRATEGY = {
    "title": "Total from equal groups",
    "applies_when": "A number of groups each hold the same number of items",
    "steps": [
        "Multiply the number of groups by the items per group",
        "Report the product as the total",
    ],
    "pitfalls": ["Do not add the two numbers"],
}


def _question(messages: list[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def _has_strategy(messages: list[BaseMessage]) -> bool:
    return any(
        isinstance(m, SystemMessage) and "<reference_strategies>" in m.text for m in messages
    )


def _two_numbers(text: str) -> tuple[int, int] | None:
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    return (numbers[0], numbers[1]) if len(numbers) >= 2 else None


def _fake_weak(messages: list[BaseMessage]) -> str:
    pair = _two_numbers(_question(messages))
    if pair is None:
        return "I am not sure."
    a, b = pair
    # Right only with a strategy: without one it adds instead of multiplying.
    return f"The answer is {a * b if _has_strategy(messages) else a + b}."


def _fake_weak_logprob(messages: list[BaseMessage], reply: str) -> float:
    return -0.05 if _has_strategy(messages) and _two_numbers(_question(messages)) else -1.5


def _fake_strong(messages: list[BaseMessage]) -> str:
    question = _question(messages)
    if question.startswith("Problem:"):  # the distillation prompt
        return json.dumps(_FAKE_STRATEGY)
    pair = _two_numbers(question)
    if pair is None:
        return f"A careful answer to: {question}"
    a, b = pair
    return f"{a} groups of {b} make {a} x {b} = {a * b}. The answer is {a * b}."


def fake_models() -> tuple[ScriptedChatModel, ScriptedChatModel, Embeddings]:
    """A scripted weak/strong pair and embeddings, for tests, demos and notebooks.

    The world is "equal groups" word problems ("3 boxes with 4 pens each..."):
    the weak model adds the two numbers, wrongly and with low token probability,
    unless it is shown a strategy, when it multiplies them confidently; the
    strong model always multiplies and distills the "Total from equal groups"
    strategy. The first problem of the kind is deferred, later ones are not.

    Returns:
        The weak model, the strong model and bag-of-words embeddings.
    """
    weak = ScriptedChatModel(respond=_fake_weak, logprob=_fake_weak_logprob, model_name="fake-weak")
    strong = ScriptedChatModel(respond=_fake_strong, model_name="fake-strong")
    return weak, strong, BagOfWordsEmbeddings()


# -- settings ------------------------------------------------------------------


class CascadeSettings(BaseModel):
    """Everything needed to build a served cascade.

    Attributes:
        weak_model: The weak model: a GGUF file, or ``module:attribute`` naming a
            chat model or a function returning one.
        strong_model: The strong model, likewise.
        fake: Use :func:`fake_models` instead of real models.
        bank_dir: Load the strategy bank from this folder (when it holds one) and
            save it there; None keeps the bank in memory.
        threshold: The acceptance threshold.
        k: Strategies shown to the weak model.
        score_threshold: Similarity cut-off for retrieved strategies.
        distill_mode: ``"separate"`` or ``"joint"``.
        max_tokens: Generation cap of GGUF models.
    """

    model_config = ConfigDict(extra="forbid")

    weak_model: str | None = None
    strong_model: str | None = None
    fake: bool = False
    bank_dir: Path | None = None
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    k: int = Field(default=2, ge=1)
    score_threshold: float | None = 0.5
    distill_mode: DistillMode = "separate"
    max_tokens: int = Field(default=384, ge=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CascadeSettings:
        """Read the settings from ``INTERCASCADE_*`` environment variables.

        Args:
            environ: The variables; None reads ``os.environ``.

        Returns:
            The settings.

        Raises:
            ConfigurationError: If a variable's value is invalid.
        """
        environ = os.environ if environ is None else environ
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if environ.get(ENV_PREFIX + name.upper())
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {ENV_PREFIX}* settings: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CascadeSettings:
        """Read the settings from a JSON file of the same field names.

        Args:
            path: The JSON file.

        Returns:
            The settings.

        Raises:
            ConfigurationError: If the file is missing, not JSON, or invalid.
        """
        file = Path(path)
        try:
            return cls.model_validate_json(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read the settings file {file}: {exc}") from exc
        except ValidationError as exc:
            raise ConfigurationError(f"invalid settings in {file}: {exc}") from exc

    def models(self) -> tuple[BaseChatModel, BaseChatModel]:
        """Build the weak and strong models.

        Returns:
            The weak model and the strong model.

        Raises:
            ConfigurationError: If models are missing or cannot be loaded.
        """
        if self.fake:
            weak, strong, _ = fake_models()
            return weak, strong
        if not self.weak_model or not self.strong_model:
            raise ConfigurationError(
                "no models configured: set the weak and strong models (GGUF files or "
                f"module:attribute; {ENV_PREFIX}WEAK_MODEL/{ENV_PREFIX}STRONG_MODEL) "
                f"or use the scripted fake models ({ENV_PREFIX}FAKE=1, --fake)"
            )
        return self._model(self.weak_model, "weak"), self._model(self.strong_model, "strong")

    def _model(self, spec: str, role: Literal["weak", "strong"]) -> BaseChatModel:
        from langchain_intercascade.models import local_chat_model

        if Path(spec).expanduser().suffix.lower() == ".gguf":
            # Token logprobs let the default judge score the weak answer by token
            # probability (small models rate their own wrong answers highly); the strong
            # model writes strategies as plain-text JSON (grammar-forced tool calls ran
            # at ~2 tokens/s on CPU).
            options: dict[str, Any] = (
                {"logprobs": True} if role == "weak" else {"structured_output": False}
            )
            try:
                return local_chat_model(spec, max_tokens=self.max_tokens, **options)
            except (FileNotFoundError, ImportError) as exc:
                raise ConfigurationError(str(exc)) from exc
        return _import_model(spec)

    def embeddings(self) -> Embeddings:
        """The bank's embeddings: bag-of-words when fake, else :func:`~.models.local_embeddings`.

        Returns:
            The embeddings.

        Raises:
            ConfigurationError: If no offline embeddings are available.
        """
        from langchain_intercascade.models import local_embeddings

        if self.fake:
            return BagOfWordsEmbeddings()

        ggufs = [m for m in (self.weak_model, self.strong_model) if m and m.endswith(".gguf")]
        try:
            return local_embeddings(fallback_gguf=ggufs[0] if ggufs else None)
        except ImportError as exc:
            raise ConfigurationError(str(exc)) from exc

    def load_bank(self, embeddings: Embeddings | None = None) -> StrategyBank:
        """The bank from :attr:`bank_dir` if it holds one, else an empty bank.

        Args:
            embeddings: The bank's embeddings; None uses :meth:`embeddings`.

        Returns:
            The bank.

        Raises:
            ConfigurationError: If the folder holds a bank that cannot be read.
        """
        embeddings = embeddings or self.embeddings()
        if self.bank_dir is None or not self.bank_dir.exists():
            return StrategyBank(embeddings=embeddings)
        try:
            return StrategyBank.load(self.bank_dir, embeddings=embeddings)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"cannot load the bank: {exc}") from exc

    def open(self) -> Cascade:
        """Build the models, load the bank and build the cascade.

        Returns:
            The cascade with its bank.

        Raises:
            ConfigurationError: If models or bank cannot be loaded.
        """
        return Cascade(self)

    def options(self) -> dict[str, Any]:
        """The cascade options set here, for ``create_intercascade`` or ``ChatInterCascade``."""
        return {
            "threshold": self.threshold,
            "k": self.k,
            "score_threshold": self.score_threshold,
            "distill_mode": self.distill_mode,
        }


def _import_model(spec: str) -> BaseChatModel:
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ConfigurationError(
            f"model {spec!r} is neither a .gguf file nor of the form module:attribute"
        )
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import the model {spec!r}: {exc}") from exc
    model = value() if callable(value) and not isinstance(value, BaseChatModel) else value
    if not isinstance(model, BaseChatModel):
        raise ConfigurationError(f"{spec!r} is not a chat model ({type(model).__name__})")
    return model


def bank_fingerprint(bank: StrategyBank) -> str:
    """A digest of the bank's records, to tell whether a run changed the bank."""
    digest = hashlib.sha256()
    for record in bank.records():
        digest.update(record.model_dump_json().encode())
    return digest.hexdigest()


# -- the served graph ----------------------------------------------------------


class Cascade:
    """A configured cascade with its bank, which it saves to the bank folder when changed.

    Args:
        settings: What to build.

    Attributes:
        settings: The settings it was built from.
        weak: The weak model.
        strong: The strong model.
        bank: The strategy bank.
        graph: The compiled cascade graph.
    """

    def __init__(self, settings: CascadeSettings) -> None:
        self.settings = settings
        self.weak, self.strong = settings.models()
        self.bank = settings.load_bank()
        self.graph = create_intercascade(
            self.weak, self.strong, bank=self.bank, **settings.options()
        )
        self._saved = bank_fingerprint(self.bank)
        self._lock = threading.Lock()

    def save_if_changed(self) -> bool:
        """Save the bank to the bank folder if it changed since it was loaded or saved.

        Returns:
            Whether it was saved.
        """
        folder = self.settings.bank_dir
        if folder is None:
            return False
        with self._lock:  # one writer at a time: concurrent runs can end together
            current = bank_fingerprint(self.bank)
            if current == self._saved:
                return False
            self.bank.save(folder)
            self._saved = current
            return True

    def chat_model(self) -> ChatInterCascade:
        """The same cascade (models, bank, options) as a chat model."""
        return ChatInterCascade(
            weak=self.weak, strong=self.strong, bank=self.bank, **self.settings.options()
        )


_serving = threading.Lock()


@lru_cache(maxsize=1)
def _build_served() -> Cascade:
    return CascadeSettings.from_env().open()


def _served() -> Cascade:
    with _serving:  # concurrent first requests must not load the models twice
        return _build_served()


@asynccontextmanager
async def make_graph(config: RunnableConfig) -> AsyncIterator[InterCascadeGraph]:
    """The LangGraph server's graph factory (see ``langgraph.json``).

    Builds the cascade from ``INTERCASCADE_*`` variables on first use and reuses
    it; after each use, saves the bank to ``INTERCASCADE_BANK_DIR`` if it changed.

    Args:
        config: The run's config (the server passes it; unused).

    Yields:
        The cascade graph.
    """
    served = await asyncio.to_thread(_served)  # loading models blocks: keep the loop free
    try:
        yield served.graph
    finally:
        await asyncio.to_thread(served.save_if_changed)
