"""Hosted models for ``run_cell.py`` (``--weak-model hosted_models:weak``): the paper's setting.

Needs ``OPENAI_API_KEY``. The weak model returns token logprobs, so ``--judge auto``
scores its answer by normalized token probability, as the paper does.
"""

from langchain_openai import ChatOpenAI


def weak() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", temperature=0, logprobs=True)


def strong() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o", temperature=0)
