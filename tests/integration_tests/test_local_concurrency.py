"""Several threads on one llama.cpp model (the ``smoke`` GGUF) take turns instead of crashing.

A ``llama_cpp.Llama`` context is not thread-safe: before ``models.llama_lock``,
``batch``/``abatch`` with ``max_concurrency > 1`` died in
``GGML_ASSERT(i1 >= 0 && i1 < ne1)`` or a segfault.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.runnables import RunnableLambda
from smoke_model import SMOKE, requires_smoke_model

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.models import LlamaCppSentenceEmbeddings, local_chat_model

pytestmark = requires_smoke_model

PROMPTS = [f"What is {a} + {b}?" for a, b in ((2, 3), (4, 5), (6, 1), (7, 2), (3, 3), (8, 1))]
CONCURRENT = {"max_concurrency": 4}


@pytest.fixture(scope="module")
def model():
    # Teacher-forced logprobs add a second pass on the context per reply.
    return local_chat_model(SMOKE, max_tokens=12, n_ctx=512, n_threads=2, seed=0, logprobs=True)


@pytest.fixture(scope="module")
def embeddings():
    return LlamaCppSentenceEmbeddings(SMOKE, n_ctx=128, n_threads=2)


def test_batch_on_one_model_from_four_threads(model) -> None:
    replies = model.batch(PROMPTS, config=CONCURRENT)
    assert len(replies) == len(PROMPTS)
    assert all(r.text.strip() and r.response_metadata["logprobs"]["content"] for r in replies)
    # Taking turns leaves each reply as a lone call gives it (temperature 0).
    assert replies[1].text == model.invoke(PROMPTS[1]).text


async def test_abatch_and_concurrent_astreams_on_one_model(model) -> None:
    replies = await model.abatch(PROMPTS, config=CONCURRENT)
    assert len(replies) == len(PROMPTS) and all(r.text.strip() for r in replies)

    # LangChain resumes each sync stream on any executor thread, chunk by chunk.
    async def streamed(prompt: str) -> str:
        return "".join([chunk.text async for chunk in model.astream(prompt)])

    texts = await asyncio.gather(*(streamed(p) for p in PROMPTS[:4]))
    assert texts == [r.text for r in replies[:4]]


def test_a_lambda_using_model_and_embeddings_in_batch(model, embeddings) -> None:
    def answer_and_embed(prompt: str) -> tuple[str, list[float]]:
        return model.invoke(prompt).text, embeddings.embed_query(prompt)

    results = RunnableLambda(answer_and_embed).batch(PROMPTS, config=CONCURRENT)
    assert len(results) == len(PROMPTS)
    widths = {len(vector) for _, vector in results}
    assert widths == {len(embeddings.embed_query("x"))}
    assert all(text.strip() for text, _ in results)


async def test_cascade_abatch_over_local_models(model, embeddings) -> None:
    # A judge that never accepts: the weak and strong answers and the distillation all run.
    cascade = create_intercascade(
        model, model, bank=StrategyBank(embeddings=embeddings), judge=lambda m, a: 0.0
    )
    outputs = await cascade.abatch(PROMPTS[:4], config=CONCURRENT)
    assert [o["route"] for o in outputs] == ["strong"] * 4
    assert all(o["answer"].strip() for o in outputs)
