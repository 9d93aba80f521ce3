"""The strong answer (graph/strong_answer.py): a blank reply; the caller's raising callbacks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_intercascade import create_intercascade
from langchain_intercascade.testing import ScriptedChatModel

QUESTION = "Sam has 3 boxes with 4 pens in each box."


@pytest.mark.parametrize(
    "reply", ["", "  \n\t", "\u200b\ufeff"], ids=["empty", "blank", "invisible"]
)
def test_a_blank_strong_reply_is_a_failed_strong_call(weak, bank, reply):
    blank = ScriptedChatModel(respond=lambda messages: reply)
    out = create_intercascade(weak, blank, bank=bank).invoke(QUESTION)
    assert out["route"] == "weak_fallback" and out["answer"] == "The total is 7."
    assert out["errors"] == ["strong_answer: ValueError: the strong model's reply is blank"]
    assert out["usage"]["strong"]["answer"]["input_tokens"] > 0  # paid for all the same
    assert len(bank) == 0  # nothing distilled from nothing


def test_a_blank_strong_reply_is_a_failed_strong_call_async(weak, bank):
    blank = ScriptedChatModel(respond=lambda messages: " ")
    out = asyncio.run(create_intercascade(weak, blank, bank=bank).ainvoke(QUESTION))
    assert out["route"] == "weak_fallback" and out["answer"] == "The total is 7."


class Stop(Exception):
    """The caller's own reason to stop."""


class StopOnStrong(BaseCallbackHandler):
    raise_error = True

    def __init__(self, where: str) -> None:
        self.where = where

    def _strong(self, kwargs: dict[str, Any]) -> bool:
        return "intercascade:strong_model" in (kwargs.get("tags") or [])

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        if self.where == "end" and self._strong(kwargs):
            raise Stop("the caller's callback stopped the strong answer")

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        if self.where == "token" and self._strong(kwargs):
            raise Stop("the caller's callback stopped a strong token")


def test_a_callback_raising_at_the_strong_models_end_reaches_the_caller(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    with pytest.raises(Stop, match="strong answer"):
        cascade.invoke(QUESTION, {"callbacks": [StopOnStrong("end")]})
    assert len(strong.calls) == 1  # not retried, not passed off as a weak fallback


def test_a_callback_raising_at_the_strong_models_end_reaches_the_caller_async(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    with pytest.raises(Stop, match="strong answer"):
        asyncio.run(cascade.ainvoke(QUESTION, {"callbacks": [StopOnStrong("end")]}))


def test_a_callback_raising_on_a_strong_token_reaches_the_caller(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    with pytest.raises(Stop, match="strong token"):
        for _ in cascade.stream(
            QUESTION, {"callbacks": [StopOnStrong("token")]}, stream_mode="messages"
        ):
            pass
