"""Every entry point honours the run's namespace: graph, chat model and retriever."""

from __future__ import annotations

import pytest
from conftest import APPLES, APPLES_SIBLING

from langchain_intercascade import ChatInterCascade, StrategyRetriever, create_intercascade

TENANT_A = {"configurable": {"strategy_namespace": "tenant-a"}}
TENANT_B = {"configurable": {"strategy_namespace": "tenant-b"}}


def test_the_graph_reads_and_writes_the_configured_namespace(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES, TENANT_A)
    assert {r.namespace for r in bank.records()} == {"tenant-a"}
    assert cascade.invoke(APPLES_SIBLING, TENANT_B)["strategies"] == []
    assert cascade.invoke(APPLES_SIBLING, TENANT_A)["route"] == "weak"


async def test_the_retriever_searches_the_configured_namespace(weak, strong, bank):
    await ChatInterCascade(weak=weak, strong=strong, bank=bank).ainvoke(APPLES, TENANT_A)
    retriever = StrategyRetriever(bank=bank)
    assert retriever.invoke(APPLES_SIBLING) == []  # the default namespace is empty
    assert retriever.invoke(APPLES_SIBLING, TENANT_B) == []
    assert retriever.invoke(APPLES_SIBLING, TENANT_A)[0].metadata["namespace"] == "tenant-a"
    assert (await retriever.ainvoke(APPLES_SIBLING, TENANT_A))[0].metadata["title"]


@pytest.mark.parametrize("bad", ["", "  ", 3])
def test_a_malformed_namespace_is_an_error_not_the_shared_default(weak, strong, bank, bad):
    config = {"configurable": {"strategy_namespace": bad}}
    with pytest.raises(ValueError, match="strategy_namespace"):
        StrategyRetriever(bank=bank).invoke(APPLES, config)
    with pytest.raises(ValueError, match="strategy_namespace"):
        ChatInterCascade(weak=weak, strong=strong, bank=bank).invoke(APPLES, config)


def test_a_per_call_k_of_zero_is_rejected(bank):
    with pytest.raises(ValueError, match="k must be at least 1"):
        StrategyRetriever(bank=bank).invoke(APPLES, k=0)
