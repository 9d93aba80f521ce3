"""Each model role has a timeout; transient faults are retried; a rate-limited weak model raises."""

from __future__ import annotations

import time

import pytest
from conftest import APPLES, EASY, strong_respond, weak_logprob, weak_respond

from langchain_intercascade import create_intercascade
from langchain_intercascade.testing import ScriptedChatModel


class RateLimitError(Exception):
    status_code = 429


def flaky(respond, failures: list[Exception]):
    """A responder that raises the given errors first, then answers."""

    def reply(messages):
        if failures:
            raise failures.pop(0)
        return respond(messages)

    return reply


def test_a_hung_strong_model_times_out_and_the_weak_answer_is_returned(weak, bank):
    def hang(messages):
        time.sleep(5)
        return "too late"

    strong = ScriptedChatModel(respond=hang)
    cascade = create_intercascade(weak, strong, bank=bank, strong_timeout=0.2)
    started = time.monotonic()
    out = cascade.invoke(APPLES)
    assert time.monotonic() - started < 2
    assert out["route"] == "weak_fallback"
    assert any("did not answer within 0.2 s" in e for e in out["errors"])


async def test_a_hung_strong_model_times_out_async(weak, bank):
    import asyncio

    class Hanging(ScriptedChatModel):
        async def _agenerate(self, *args, **kwargs):
            await asyncio.sleep(5)
            raise AssertionError("not reached")

    strong = Hanging(respond=strong_respond)
    out = await create_intercascade(weak, strong, bank=bank, strong_timeout=0.2).ainvoke(APPLES)
    assert out["route"] == "weak_fallback"


@pytest.mark.parametrize("run", ["sync", "async"])
async def test_a_transient_strong_fault_is_retried(weak, bank, run):
    strong = ScriptedChatModel(
        respond=flaky(strong_respond, [ConnectionError("reset"), RateLimitError("slow down")])
    )
    cascade = create_intercascade(weak, strong, bank=bank, distill=False)
    out = cascade.invoke(APPLES) if run == "sync" else await cascade.ainvoke(APPLES)
    assert out["route"] == "strong" and out["errors"] == []
    assert out["answer"].endswith("the total is 12.")
    assert len(strong.calls) == 3


@pytest.mark.parametrize("run", ["sync", "async"])
@pytest.mark.parametrize("max_retries", [0, 1])
async def test_retries_are_bounded(weak, bank, run, max_retries):
    strong = ScriptedChatModel(respond=flaky(strong_respond, [ConnectionError("reset")] * 5))
    cascade = create_intercascade(weak, strong, bank=bank, max_retries=max_retries)
    out = cascade.invoke(APPLES) if run == "sync" else await cascade.ainvoke(APPLES)
    assert out["route"] == "weak_fallback"
    assert len(strong.calls) == 1 + max_retries


def test_a_rate_limited_weak_model_raises_instead_of_paying_the_strong_one(strong, bank):
    weak = ScriptedChatModel(
        respond=flaky(weak_respond, [RateLimitError("quota")] * 3), logprob=weak_logprob
    )
    cascade = create_intercascade(weak, strong, bank=bank, max_retries=1)
    with pytest.raises(RateLimitError):
        cascade.invoke(EASY)
    assert strong.calls == []


def test_timeouts_must_be_positive(weak, strong, bank):
    with pytest.raises(ValueError, match="weak_timeout"):
        create_intercascade(weak, strong, bank=bank, weak_timeout=0)


def _slow(respond, seconds: float):
    def reply(messages):
        time.sleep(seconds)
        return respond(messages)

    return reply


@pytest.mark.parametrize("run", ["sync", "async"])
async def test_background_distillation_returns_the_answer_first(weak, bank, run):
    strong = ScriptedChatModel(respond=_slow(strong_respond, 0.3), model_name="strong-fake")
    cascade = create_intercascade(weak, strong, bank=bank, distill_in_background=True)
    started = time.monotonic()
    out = cascade.invoke(APPLES) if run == "sync" else await cascade.ainvoke(APPLES)
    answered = time.monotonic() - started
    assert out["route"] == "strong" and out["new_strategy"] is None
    assert answered < 0.55  # one strong call, not two
    (update,) = cascade.wait_for_distillations()
    assert update["new_strategy"].strategy.title == "Total from equal groups"
    assert update["usage"]["strong"]["distill"]["total_tokens"] > 0
    assert len(bank) == 1 and cascade.wait_for_distillations() == []


def test_a_failing_background_distillation_never_touches_the_answer(weak, bank):
    def fail_to_distill(messages):
        if "Problem:" in messages[-1].text:
            raise RuntimeError("distiller down")
        return strong_respond(messages)

    strong = ScriptedChatModel(respond=fail_to_distill, supports_tools=False)
    cascade = create_intercascade(weak, strong, bank=bank, distill_in_background=True)
    out = cascade.invoke(APPLES)
    assert out["answer"].endswith("the total is 12.") and out["errors"] == []
    (update,) = cascade.wait_for_distillations()
    assert any("distiller down" in e for e in update["errors"]) and len(bank) == 0


class _NativeAsync(ScriptedChatModel):
    """A scripted model whose async path answers on the event loop, as a provider's would."""

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        return self._generate(messages, stop, run_manager, **kwargs)


async def test_async_passes_stay_on_the_event_loop():
    # A hop to the default executor per pass would cap concurrent queries at its few threads.
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    hops: list[object] = []

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            hops.append(fn)
            return super().submit(fn, *args, **kwargs)

    asyncio.get_running_loop().set_default_executor(Counting(max_workers=1))
    weak = _NativeAsync(respond=weak_respond, logprob=weak_logprob)
    cascade = create_intercascade(weak, _NativeAsync(respond=strong_respond))
    accepted, deferred = await cascade.ainvoke(EASY), await cascade.ainvoke(APPLES)
    assert (accepted["route"], deferred["route"]) == ("weak", "strong")
    assert deferred["usage"]["strong"]["answer"]["output_tokens"] > 0
    assert hops == []
