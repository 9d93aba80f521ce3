"""The bank as a standard LangChain retriever: strategies as ``Document`` objects."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field
from typing_extensions import override

from langchain_intercascade.bank.namespaces import DEFAULT_NAMESPACE, run_namespace
from langchain_intercascade.bank.search import SearchType
from langchain_intercascade.bank.strategy_bank import StrategyBank
from langchain_intercascade.strategies import RetrievedStrategy


class StrategyRetriever(BaseRetriever):
    """A LangChain retriever over a :class:`StrategyBank`.

    Each document's ``page_content`` is a strategy's text; its metadata carries the
    strategy id, namespace, title and similarity ``score``.

    Attributes:
        bank: The bank to search.
        k: How many strategies to return (overridable per call: ``invoke(q, k=1)``).
        score_threshold: Drop strategies below this similarity.
        namespace: The namespace to search, unless a call's
            ``config["configurable"]["strategy_namespace"]`` names another.
        search_type: ``"similarity"`` or ``"mmr"`` (diverse strategies).
        lambda_mult: With MMR, 1 favours similarity and 0 diversity.

    Instantiate and invoke:
        ```python
        from langchain_intercascade.bank import StrategyBank, StrategyRetriever
        from langchain_intercascade.strategies import Strategy
        from langchain_intercascade.testing import BagOfWordsEmbeddings

        bank = StrategyBank(BagOfWordsEmbeddings())
        bank.add(Strategy(title="Speed", applies_when="distance and time", steps=["d / t"]))
        bank.add(Strategy(title="Percent", applies_when="a discount", steps=["Multiply"]))
        retriever = StrategyRetriever(bank=bank, k=2, search_type="mmr")
        docs = retriever.invoke("the distance a train covers in some time", k=1)
        print(docs[0].metadata["title"], round(docs[0].metadata["score"], 2))  # Speed 0.35
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    bank: StrategyBank
    k: int = Field(default=2, ge=1)
    score_threshold: float | None = None
    namespace: str = DEFAULT_NAMESPACE
    search_type: SearchType = "similarity"
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)

    @override
    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        namespace = run_namespace(config, self.namespace)
        return super().invoke(input, config, namespace=namespace, **kwargs)

    @override
    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        namespace = run_namespace(config, self.namespace)
        return await super().ainvoke(input, config, namespace=namespace, **kwargs)

    def _search_kwargs(self, k: int | None, namespace: str | None) -> dict[str, Any]:
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        return {
            "k": self.k if k is None else k,
            "score_threshold": self.score_threshold,
            "namespace": namespace or self.namespace,
            "search_type": self.search_type,
            "lambda_mult": self.lambda_mult,
        }

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        namespace: str | None = None,
    ) -> list[Document]:
        found = self.bank.search(query, **self._search_kwargs(k, namespace))
        return [_to_document(item) for item in found]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        namespace: str | None = None,
    ) -> list[Document]:
        found = await self.bank.asearch(query, **self._search_kwargs(k, namespace))
        return [_to_document(item) for item in found]


def _to_document(item: RetrievedStrategy) -> Document:
    record = item.record
    return Document(
        id=record.id,
        page_content=record.text,
        metadata={
            "strategy_id": record.id,
            "namespace": record.namespace,
            "title": record.strategy.title,
            "score": item.score,
            "strategy": record.strategy.model_dump(),
        },
    )
