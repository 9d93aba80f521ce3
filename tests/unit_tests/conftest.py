"""The scripted world of `langchain_intercascade.testing`, as fixtures."""

from __future__ import annotations

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
