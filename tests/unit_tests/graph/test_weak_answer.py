"""The weak model's answer (graph/weak_answer.py): the caller's raising callback."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_intercascade import create_intercascade


class StopOnWeak(BaseCallbackHandler):
    raise_error = True

    def on_llm_end(self, response: Any, *, tags: list[str] | None = None, **kwargs: Any) -> None:
        if "intercascade:weak_model" in (tags or []):
            raise LookupError("the caller's callback stopped the weak answer")


def test_a_callback_raising_at_the_weak_models_end_reaches_the_caller(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    with pytest.raises(LookupError, match="weak answer"):
        cascade.invoke("Sam has 3 boxes with 4 pens in each box.", {"callbacks": [StopOnWeak()]})
    assert strong.calls == []  # not deferred: the strong model is not paid for the callback
