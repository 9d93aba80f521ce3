"""The graph on a real local model through ChatLlamaCpp (the ``smoke`` GGUF).

The smoke model (SmolLM2-135M) cannot do math: this checks the plumbing with a
real provider (usage, logprobs, streaming, distillation that may fail to parse),
not answer quality. ``intercascade models pull smoke`` fetches it.
"""

from __future__ import annotations

import pytest
from smoke_model import SMOKE, requires_smoke_model

from langchain_intercascade import LogprobJudge, StrategyBank, create_intercascade
from langchain_intercascade.models import LlamaCppSentenceEmbeddings, local_chat_model

pytestmark = requires_smoke_model


@pytest.fixture(scope="module")
def model():
    return local_chat_model(SMOKE, max_tokens=24, n_ctx=1024, n_threads=2, seed=0)


@pytest.fixture(scope="module")
def embeddings():
    return LlamaCppSentenceEmbeddings(SMOKE, n_ctx=256, n_threads=2)


def test_real_model_defer_path_answers_and_counts_tokens(model, embeddings):
    bank = StrategyBank(embeddings=embeddings)
    # A judge that never accepts forces the strong path and distillation.
    cascade = create_intercascade(model, model, bank=bank, judge=lambda m, a: 0.0)
    out = cascade.invoke("What is 2 + 3?")
    assert out["route"] == "strong"
    assert out["answer"].strip()
    assert out["usage"]["strong"]["answer"]["output_tokens"] > 0
    assert out["usage"]["weak"]["answer"]["input_tokens"] > 0
    # A 135M model may or may not write a parsable strategy; either way the answer stands.
    assert (out["new_strategy"] is not None) == (len(bank) == 1)
    if out["new_strategy"] is None:
        assert any("distill_strategy" in e for e in out["errors"])


def test_real_model_logprob_judge_and_token_stream(embeddings):
    weak = local_chat_model(SMOKE, max_tokens=16, n_ctx=1024, n_threads=2, logits_all=True).bind(
        logprobs=True, top_logprobs=1
    )
    cascade = create_intercascade(
        weak, weak, bank=StrategyBank(embeddings=embeddings), judge=LogprobJudge(), threshold=0.0
    )
    tokens = []
    final = None
    for mode, data in cascade.stream("Say hello.", stream_mode=["messages", "values"]):
        if mode == "messages":
            tokens.append(data[0].text)
        else:
            final = data
    assert final is not None and final["route"] == "weak"
    assert final["judge_signal"] == "logprob_mean"
    assert 0.0 < final["confidence"] <= 1.0
    assert "".join(tokens).strip() == final["answer"].strip()


def test_token_usage_survives_the_cache_and_structured_output_can_be_off(model):
    from langchain_core.caches import InMemoryCache

    cached = model.model_copy(update={"cache": InMemoryCache()})
    first = cached.invoke("What is 2 + 3?")
    again = cached.invoke("What is 2 + 3?")
    assert again.text == first.text
    # A cache hit still reports the call's tokens (LangChain adds total_cost=0).
    keys = ("input_tokens", "output_tokens", "total_tokens")
    assert [again.usage_metadata[k] for k in keys] == [first.usage_metadata[k] for k in keys]
    assert first.usage_metadata["output_tokens"] > 0
    plain = model.model_copy(update={"structured_output": False})
    with pytest.raises(NotImplementedError, match="structured output is off"):
        plain.with_structured_output(dict)


def test_teacher_forced_logprobs_match_those_sampled_while_generating():
    from langchain_core.caches import InMemoryCache

    fast = local_chat_model(
        SMOKE, max_tokens=16, n_ctx=1024, n_threads=2, logprobs=True, cache=InMemoryCache()
    )
    slow = local_chat_model(SMOKE, max_tokens=16, n_ctx=1024, n_threads=2, logits_all=True).bind(
        logprobs=True, top_logprobs=1
    )
    question = "Name a primary colour."
    reply = fast.invoke(question)
    reference = slow.invoke(question)
    assert reply.text == reference.text
    forced = [t["logprob"] for t in reply.response_metadata["logprobs"]["content"]]
    sampled = [t["logprob"] for t in reference.response_metadata["logprobs"]["content"]]
    assert len(forced) == len(sampled) == reply.usage_metadata["output_tokens"]
    assert forced == pytest.approx(sampled, abs=0.05)
    # The cached reply keeps its logprobs, so a LogprobJudge can score it.
    again = fast.invoke(question)
    assert again.response_metadata["logprobs"] == reply.response_metadata["logprobs"]
    assert 0 < LogprobJudge("min").judge([], again).confidence <= 1


def test_teacher_forced_logprobs_need_logits_all(model):
    from langchain_intercascade.models import teacher_forced_logprobs

    with pytest.raises(ValueError, match="logits_all=True"):
        teacher_forced_logprobs(model, [], "Hello")
