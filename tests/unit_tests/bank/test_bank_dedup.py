"""Dedup on write and eviction past a size limit."""

from __future__ import annotations

import random

import pytest

from langchain_intercascade import Strategy, StrategyBank
from langchain_intercascade.testing import BagOfWordsEmbeddings


def variant(rng: random.Random) -> tuple[Strategy, str]:
    """One more instance of the same problem: new numbers, a new pitfall."""
    groups, size = rng.randint(2, 99), rng.randint(2, 99)
    query = f"Sam has {groups} baskets with {size} apples in each basket. How many apples?"
    pitfall = rng.choice(["Do not add the numbers", "Check the units", "Count every basket"])
    strategy = Strategy(
        title="Total from equal groups",
        applies_when="Groups each hold the same number of items",
        steps=[f"Multiply groups by items per group ({groups} x {size} here)"],
        pitfalls=[pitfall],
    )
    return strategy, query


def bank_of(**kwargs) -> StrategyBank:
    return StrategyBank(embeddings=BagOfWordsEmbeddings(), **kwargs)


def test_variants_of_one_problem_merge_into_one_strategy():
    bank = bank_of()
    rng = random.Random(0)
    returned = []
    for _ in range(100):
        strategy, query = variant(rng)
        returned.append(bank.add(strategy, source_query=query))
    assert len(bank) == 1
    (kept,) = bank.records()
    assert kept.variants == 99
    assert {r.id for r in returned} == {kept.id}  # every writer learns where it went
    # The kept method is the first one; pitfalls from the variants are added once each.
    assert kept.strategy.steps == returned[0].strategy.steps
    assert sorted(kept.strategy.pitfalls) == [
        "Check the units",
        "Count every basket",
        "Do not add the numbers",
    ]


def test_skip_policy_keeps_the_stored_strategy_unchanged():
    bank = bank_of(dedup_policy="skip")
    rng = random.Random(1)
    strategy, query = variant(rng)
    first = bank.add(strategy, source_query=query)
    for _ in range(20):
        strategy, query = variant(rng)
        assert bank.add(strategy, source_query=query) == first
    assert bank.records() == [first] and first.variants == 0


def test_the_threshold_decides_what_is_a_duplicate():
    close = ["apples in baskets", "apples in baskets each"]  # cosine 0.87 as bags of words
    loose = bank_of(dedup_threshold=0.8)
    strict = bank_of(dedup_threshold=0.95)
    off = bank_of(dedup_threshold=None)
    for bank in (loose, strict, off):
        for i, query in enumerate(close):
            bank.add(Strategy(title=f"S{i}", applies_when="w", steps=["s"]), source_query=query)
    assert (len(loose), len(strict), len(off)) == (1, 2, 2)


def test_near_duplicates_in_other_namespaces_are_kept_apart():
    bank = bank_of()
    rng = random.Random(2)
    for namespace in ("tenant-a", "tenant-b", "tenant-a", "tenant-b"):
        strategy, query = variant(rng)
        bank.add(strategy, source_query=query, namespace=namespace)
    assert bank.stats().namespaces == {"tenant-a": 1, "tenant-b": 1}


def add(bank: StrategyBank, word: str, namespace: str = "default") -> str:
    strategy = Strategy(title=word, applies_when=word, steps=[f"do {word}"])
    return bank.add(strategy, source_query=f"{word} problem", namespace=namespace).id


def test_eviction_drops_the_least_useful_then_the_least_recently_used():
    bank = bank_of(max_size=3)
    a, _, c = add(bank, "apples"), add(bank, "trains"), add(bank, "paint")
    bank.record_outcome([a], accepted=False)
    bank.record_outcome([a], accepted=True)  # as useful as the unused ones, but used recently
    d = add(bank, "coins")
    assert {r.id for r in bank.records()} == {a, c, d}  # "trains": as useful, least recent
    bank.record_outcome([c], accepted=False)  # c is now the least useful
    e = add(bank, "rent")
    assert {r.id for r in bank.records()} == {a, d, e}


def test_a_new_strategy_is_never_its_own_eviction_victim():
    bank = bank_of(max_size=2)
    useful = [add(bank, "apples"), add(bank, "trains")]
    bank.record_outcome(useful, accepted=True)
    newest = add(bank, "paint")
    assert bank.get(newest) is not None and len(bank) == 2


def test_the_size_limit_applies_per_namespace():
    bank = bank_of(max_size=2)
    for word in ("apples", "trains", "paint"):
        add(bank, word, namespace="tenant-a")
    kept = add(bank, "coins", namespace="tenant-b")
    assert bank.stats().namespaces == {"tenant-a": 2, "tenant-b": 1}
    assert bank.get(kept) is not None


@pytest.mark.parametrize("policy", ["merge", "skip"])
def test_dedup_survives_save_and_load(tmp_path, policy):
    bank = bank_of(dedup_policy=policy)
    rng = random.Random(3)
    strategy, query = variant(rng)
    bank.add(strategy, source_query=query)
    bank.save(tmp_path / "bank")
    loaded = StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings(), max_size=5)
    strategy, query = variant(rng)
    loaded.add(strategy, source_query=query)
    assert len(loaded) == 1 and loaded.max_size == 5
