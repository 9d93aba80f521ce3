"""The judges on ``ChatOpenAI`` driving ``python -m llama_cpp.server`` on loopback (``smoke`` GGUF).

This server returns token logprobs only when ``top_logprobs`` is set too, and
refuses structured output (``response_format`` must be ``text`` or
``json_object``): the default judge used to fall back to a verbalized rating,
whose structured call the server then refused.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import HumanMessage
from loopback import free_port, serving
from smoke_model import SMOKE, requires_smoke_model

from langchain_intercascade.judges import AutoJudge, Rating, VerbalizedJudge, token_logprobs

SERVER_DEPS = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")

pytestmark = [
    *requires_smoke_model,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in (*SERVER_DEPS, "langchain_openai")),
        reason="needs llama-cpp-python's server dependencies and langchain-openai (test extra)",
    ),
    pytest.mark.enable_socket,
    pytest.mark.allow_hosts(["127.0.0.1"]),
]

QUESTION = [HumanMessage("What is 2 + 3?")]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(SMOKE)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024"]
    command += ["--n_threads", "2", "--n_threads_batch", "2"]
    url = f"http://127.0.0.1:{port}/v1"
    log: Path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with serving(
        command, ready=lambda: httpx.get(f"{url}/models", timeout=1).status_code == 200, log=log
    ):
        yield url


@pytest.fixture(scope="module")
def chat(base_url: str):
    from langchain_openai import ChatOpenAI

    # As the README says: logprobs=True, which this server ignores without top_logprobs.
    # It ignores max_completion_tokens too, which ChatOpenAI sends for max_tokens.
    return ChatOpenAI(
        base_url=base_url,
        api_key="none",
        model="smoke",
        logprobs=True,
        extra_body={"max_tokens": 8},
        max_retries=0,
        seed=0,
    )


def test_auto_judge_scores_token_logprobs_once_it_prepares_the_model(chat) -> None:
    judge = AutoJudge(VerbalizedJudge(chat))
    assert token_logprobs(chat.invoke(QUESTION)) == []
    reply = judge.prepare(chat).invoke(QUESTION)
    assert len(token_logprobs(reply)) == reply.usage_metadata["output_tokens"]
    verdict = judge.judge(QUESTION, reply)
    assert verdict.signal == "logprob_mean"
    assert 0.0 < verdict.confidence <= 1.0


def test_verbalized_judge_rates_in_text_when_the_server_refuses_structured_output(chat) -> None:
    import openai

    # Refused with a 500 here (a 400 elsewhere): either way an error at call time.
    with pytest.raises(openai.APIError, match="response_format"):
        chat.with_structured_output(Rating).invoke(QUESTION)
    verdict = VerbalizedJudge(chat).judge(QUESTION, chat.invoke(QUESTION))
    assert verdict.signal == "verbalized"
    assert 0.0 <= verdict.confidence <= 1.0
    assert verdict.usage["weak"]["judge"]["output_tokens"] > 0


def test_the_readme_hosted_quickstart_learns_through_an_openai_compatible_server(chat) -> None:
    # README "Quickstart with hosted models", pointed at the local server. The scripted
    # embeddings stand in for OpenAIEmbeddings (this server serves no embeddings).
    from langchain_intercascade import StrategyBank, create_intercascade
    from langchain_intercascade.testing import BagOfWordsEmbeddings

    bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
    # threshold=1.0 defers the turn, so the strong answer and its distillation run too.
    cascade = create_intercascade(weak=chat, strong=chat, bank=bank, threshold=1.0)
    out = cascade.invoke("What is 2 + 3?")
    assert out["judge_signal"].startswith("logprob")  # the judge asked for logprobs
    assert 0.0 < out["confidence"] < 1.0
    assert out["route"] == "strong" and out["answer"]
    # Structured output is refused here: the strategy is asked for as text instead.
    assert out["usage"]["strong"]["distill"]["output_tokens"] > 0
    assert not any("response_format" in error for error in out["errors"])
    assert len(bank) == 1 or any("distill_strategy" in e for e in out["errors"])
