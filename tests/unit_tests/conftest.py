"""A scripted world: a weak model that is right only with a relevant strategy."""

from __future__ import annotations

import json
import re

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from langchain_intercascade import StrategyBank
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

STRATEGY_JSON = json.dumps(
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

TRANSLATION_JSON = json.dumps(
    {
        "title": "Translate a single word",
        "applies_when": "The user asks for a word in another language",
        "steps": ["Give the target-language word", "Match its grammatical gender"],
    }
)

EASY = "What is the capital of France?"
APPLES = "Sam has 3 baskets with 4 apples in each basket. How many apples does Sam have?"
APPLES_SIBLING = "Ana has 5 baskets with 6 apples in each basket. How many apples does Ana have?"
UNRELATED = "Translate the word library into German please."


def _last_human(messages: list[BaseMessage]) -> str:
    return next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))


def _has_strategy(messages: list[BaseMessage]) -> bool:
    return any(
        isinstance(m, SystemMessage) and "<reference_strategies>" in m.text for m in messages
    )


def _product(question: str) -> int:
    a, b = (int(n) for n in re.findall(r"\d+", question)[:2])
    return a * b


def weak_respond(messages: list[BaseMessage]) -> str:
    question = _last_human(messages)
    if "rate how likely" in question.lower():
        return "0.3"
    if question == EASY:
        return "Paris."
    if "baskets" in question and _has_strategy(messages):
        return f"The total is {_product(question)}."
    if "baskets" in question:
        a, b = (int(n) for n in re.findall(r"\d+", question)[:2])
        return f"The total is {a + b}."  # the weak model's mistake without help
    return "I am not sure."


def weak_logprob(messages: list[BaseMessage], reply: str) -> float:
    # Confident when it knows the answer or follows a strategy; unsure otherwise.
    if reply == "Paris." or ("baskets" in _last_human(messages) and _has_strategy(messages)):
        return -0.05
    return -1.5


def strong_respond(messages: list[BaseMessage]) -> str:
    text = _last_human(messages)
    if text.startswith("Problem:"):  # the distillation prompt
        return STRATEGY_JSON if "baskets" in text else TRANSLATION_JSON
    if "baskets" in text:
        return f"Multiply baskets by apples per basket: the total is {_product(text)}."
    return "Bibliothek."


@pytest.fixture
def weak() -> ScriptedChatModel:
    return ScriptedChatModel(respond=weak_respond, logprob=weak_logprob, model_name="weak-fake")


@pytest.fixture
def strong() -> ScriptedChatModel:
    return ScriptedChatModel(respond=strong_respond, model_name="strong-fake")


@pytest.fixture
def embeddings() -> BagOfWordsEmbeddings:
    return BagOfWordsEmbeddings()


@pytest.fixture
def bank(embeddings: BagOfWordsEmbeddings) -> StrategyBank:
    return StrategyBank(embeddings=embeddings)
