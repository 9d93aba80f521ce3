"""The lock that serializes calls into one llama.cpp model, without a model."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from langchain_intercascade.models import llama_lock


class FakeLlama:
    """Stands in for a ``llama_cpp.Llama``: any object that can be weakly referenced."""


def test_one_lock_per_model_object() -> None:
    llama, other = FakeLlama(), FakeLlama()
    assert llama_lock(llama) is llama_lock(llama)
    assert llama_lock(llama) is not llama_lock(other)


def test_hold_is_reentrant_within_a_thread_and_exclusive_across_threads() -> None:
    lock = llama_lock(FakeLlama())
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with lock.hold(), lock.hold():  # a locked call making another
            order.append("first")
            inside.set()
            release.wait(5)
        order.append("first done")

    def second() -> None:
        inside.wait(5)
        with lock.hold():
            order.append("second")

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(first), pool.submit(second)]
        inside.wait(5)
        assert order == ["first"]  # the second thread waits
        release.set()
        for future in futures:
            future.result(timeout=5)
    assert order == ["first", "first done", "second"]


def test_a_stream_holds_the_lock_until_its_last_chunk_even_across_threads() -> None:
    lock = llama_lock(FakeLlama())
    chunks = lock.stream(iter(["a", "b"]))
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(next, chunks).result() == "a"
    assert not lock._lock.acquire(blocking=False)  # held between chunks
    # Resumed on this thread, as LangChain's default astream may do.
    assert list(chunks) == ["b"]
    with lock.hold():
        pass


def test_a_stream_inside_hold_on_the_same_thread_does_not_wait_for_itself() -> None:
    lock = llama_lock(FakeLlama())
    with lock.hold():
        assert list(lock.stream(iter([1, 2]))) == [1, 2]
