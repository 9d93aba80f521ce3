"""ChatInterCascade on a real local model through ChatLlamaCpp (the ``smoke`` GGUF).

ChatLlamaCpp reports usage only to callbacks and no model name, and with
``streaming=False`` its reply reaches the cascade's stream whole: the paths the
scripted models do not take.
"""

from __future__ import annotations

import pytest
from smoke_model import SMOKE, requires_smoke_model

from langchain_intercascade.chat_model import ChatInterCascade
from langchain_intercascade.models import local_chat_model

pytestmark = requires_smoke_model


@pytest.fixture(scope="module")
def model():
    return local_chat_model(SMOKE, max_tokens=16, n_ctx=1024, n_threads=2, seed=0)


def test_invoke_and_stream_report_the_answering_model(model) -> None:
    # A judge that never accepts: both models run, the strong one answers.
    cascade = ChatInterCascade(weak=model, strong=model, bank=None, judge=lambda m, a: 0.0)
    reply = cascade.invoke("Say hello.")
    assert reply.text.strip()
    assert reply.response_metadata["route"] == "strong"
    assert reply.response_metadata["model_name"] == str(SMOKE)
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] > 0

    full = None
    for chunk in cascade.stream("Say hello."):
        full = chunk if full is None else full + chunk
    assert full is not None and full.text == reply.text  # temperature 0: the same reply
    assert full.response_metadata["route"] == "strong"
