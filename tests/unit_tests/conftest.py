"""The scripted world of `langchain_intercascade.testing`, as fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from langchain_intercascade import StrategyBank
from langchain_intercascade.testing import (
    CAPITAL_QUESTION,
    EQUAL_GROUPS_STRATEGY,
    TRANSLATION_STRATEGY,
    BagOfWordsEmbeddings,
    ScriptedChatModel,
    fake_models,
    strong_respond,
    weak_logprob,
    weak_respond,
)

# Re-exported for the tests that script their own models.
__all__ = ["strong_respond", "weak_logprob", "weak_respond"]

STRATEGY_JSON = EQUAL_GROUPS_STRATEGY
TRANSLATION_JSON = TRANSLATION_STRATEGY

EASY = CAPITAL_QUESTION
APPLES = "Sam has 3 baskets with 4 apples in each basket. How many apples does Sam have?"
APPLES_SIBLING = "Ana has 5 baskets with 6 apples in each basket. How many apples does Ana have?"
UNRELATED = "Translate the word library into German please."


@pytest.fixture
def weak() -> ScriptedChatModel:
    return fake_models()[0]


@pytest.fixture
def strong() -> ScriptedChatModel:
    return fake_models()[1]


@pytest.fixture
def embeddings() -> BagOfWordsEmbeddings:
    return BagOfWordsEmbeddings()


@pytest.fixture
def bank(embeddings: BagOfWordsEmbeddings) -> StrategyBank:
    return StrategyBank(embeddings=embeddings)


def forget_served() -> None:
    """Drop what the served graph built, so that the next run reads ``INTERCASCADE_*`` again."""
    from langchain_intercascade.server import graph as server
    from langchain_intercascade.server import store as server_store

    for cached in (
        server._build_served,
        server._served_models,
        server._served_settings,
        server_store.served_embeddings,
    ):
        cached.cache_clear()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set the served graph's settings: the scripted models and an in-memory bank, unless
    ``serve(BANK="store", ...)`` says otherwise (``INTERCASCADE_`` is added to each name)."""

    def settings(**env: str) -> None:
        for name in ("BANK", "BANK_DIR", "TEACHER_RECORDS"):
            monkeypatch.delenv(f"INTERCASCADE_{name}", raising=False)
        monkeypatch.setenv("INTERCASCADE_FAKE", "1")
        for name, value in env.items():
            monkeypatch.setenv(f"INTERCASCADE_{name}", value)
        forget_served()

    yield settings
    forget_served()
