"""The confidence judges on fakes with crafted logprobs and scripted replies."""

from __future__ import annotations

import math
from itertools import cycle
from typing import Any

import numpy as np
import pytest
from conftest import APPLES
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult

from langchain_intercascade import create_intercascade
from langchain_intercascade.answers import extract_choice, extract_number
from langchain_intercascade.judges import (
    AutoJudge,
    Judgement,
    LogisticJudge,
    LogprobJudge,
    MissingLogprobsError,
    SelfConsistencyJudge,
    VerbalizedJudge,
    VerifierJudge,
    answer_token_span,
    as_judge,
)
from langchain_intercascade.testing import ScriptedChatModel

QUESTION = [HumanMessage("Sam has 3 baskets with 4 apples each. How many apples?")]


def with_logprobs(tokens: list[tuple[str, float]], **top: list[tuple[str, float]]) -> AIMessage:
    """An AIMessage carrying OpenAI-format logprobs (token, logprob) and alternatives."""
    alternatives = top.get("top", [])
    content = [
        {
            "token": token,
            "logprob": logprob,
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alternatives]
            if i == 0
            else [],
        }
        for i, (token, logprob) in enumerate(tokens)
    ]
    return AIMessage(
        "".join(t for t, _ in tokens), response_metadata={"logprobs": {"content": content}}
    )


# --- LogprobJudge ----------------------------------------------------------------

# Qwen-style tokens: digits one by one. The reasoning is unsure (-1.0), the
# final answer's digits sure (-0.1, -0.2).
REPLY = [("3", -1.0), (" x", -1.0), (" 4", -1.0), (".", -1.0), (" The answer is", -1.0)]
REPLY += [(" 1", -0.1), ("2", -0.2), (".", -1.0)]


def test_logprob_judge_mean_and_min_over_all_tokens() -> None:
    answer = with_logprobs(REPLY)
    mean = LogprobJudge().judge(QUESTION, answer)
    least = LogprobJudge("min").judge(QUESTION, answer)
    expected_mean = math.exp((-1.0 * 6 - 0.1 - 0.2) / 8)
    assert mean.confidence == pytest.approx(expected_mean)
    assert mean.signal == "logprob_mean"
    assert least.confidence == pytest.approx(math.exp(-1.0))
    assert least.signal == "logprob_min"
    assert mean.details["tokens"] == 8
    assert mean.usage == {}  # reading logprobs calls no model


def test_logprob_judge_scores_the_final_answer_span_when_an_extractor_finds_it() -> None:
    answer = with_logprobs(REPLY)
    mean = LogprobJudge(extractor=extract_number).judge(QUESTION, answer)
    least = LogprobJudge("min", extractor=extract_number).judge(QUESTION, answer)
    assert mean.signal == "logprob_span_mean"
    assert mean.confidence == pytest.approx(math.exp(-0.15))
    assert least.confidence == pytest.approx(math.exp(-0.2))
    assert mean.details["span_tokens"] == 2
    # The whole-reply figures stay in the details, for tracing.
    assert mean.details["min_token_prob"] == pytest.approx(math.exp(-1.0))


def test_logprob_judge_falls_back_to_all_tokens_without_an_answer() -> None:
    answer = with_logprobs([("I", -0.5), (" don't know", -0.5)])
    verdict = LogprobJudge(extractor=extract_number).judge(QUESTION, answer)
    assert verdict.signal == "logprob_mean"
    assert verdict.confidence == pytest.approx(math.exp(-0.5))
    assert "span_tokens" not in verdict.details


def test_logprob_judge_without_logprobs_says_how_to_turn_them_on() -> None:
    with pytest.raises(MissingLogprobsError, match=r"logprobs=True.*logits_all=True"):
        LogprobJudge().judge(QUESTION, AIMessage("12"))
    with pytest.raises(ValueError, match="aggregate"):
        LogprobJudge("median")


@pytest.mark.parametrize(
    ("tokens", "span"),
    [
        (["The answer is", " 1", "8", "0", "."], (1, 4)),
        (["Total: $", "1", ",", "200", " dollars"], (1, 4)),  # canonical "1200"
        (["12", " then ", "30", ". The answer is ", "12"], (4, 5)),  # the final mention
        (["Answer: (", "C", ")"], (1, 2)),
    ],
)
def test_answer_token_span(tokens: list[str], span: tuple[int, int]) -> None:
    extractor = extract_choice if "(" in tokens[0] else extract_number
    assert answer_token_span(tokens, extractor) == span


def test_answer_token_span_is_none_without_an_answer() -> None:
    assert answer_token_span(["no", " idea"], extract_number) is None


# --- VerbalizedJudge -------------------------------------------------------------


def rater(reply: str, **kwargs: object) -> ScriptedChatModel:
    return ScriptedChatModel(respond=lambda messages: reply, **kwargs)  # type: ignore[arg-type]


def test_verbalized_judge_reads_a_structured_rating() -> None:
    model = rater('{"confidence": 0.8}')
    verdict = VerbalizedJudge(model).judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == 0.8
    assert verdict.signal == "verbalized_structured"
    assert len(model.calls) == 1
    assert verdict.usage["weak"]["judge"]["total_tokens"] > 0
    # The rating prompt shows the conversation and the answer.
    prompt = model.calls[0][-1].text
    assert "baskets" in prompt and "12" in prompt


def test_verbalized_judge_rescues_a_percentage_in_the_structured_reply() -> None:
    model = rater('{"confidence": 80}')
    assert VerbalizedJudge(model).judge(QUESTION, AIMessage("12")).confidence == 0.8
    assert len(model.calls) == 1


def test_verbalized_judge_falls_back_to_a_text_reply() -> None:
    # The structured call yields no rating (no JSON to fill the tool call), so the
    # judge asks again for text; both calls are counted.
    model = rater("I'd say 0.3")
    verdict = VerbalizedJudge(model, model_key="strong").judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == pytest.approx(0.3)
    assert verdict.signal == "verbalized"
    assert len(model.calls) == 2
    assert set(verdict.usage) == {"strong"}
    assert verdict.usage["strong"]["judge"]["output_tokens"] == 1 + 3


@pytest.mark.parametrize(("reply", "expected"), [("7/10", 0.7), ("85%", 0.85), ("no idea", 0.0)])
def test_verbalized_judge_text_only_model(reply: str, expected: float) -> None:
    model = rater(reply, supports_tools=False)
    verdict = VerbalizedJudge(model).judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == pytest.approx(expected)
    assert len(model.calls) == 1


async def test_verbalized_judge_async_matches_sync() -> None:
    sync = VerbalizedJudge(rater("0.3")).judge(QUESTION, AIMessage("12"))
    asynchronous = await VerbalizedJudge(rater("0.3")).ajudge(QUESTION, AIMessage("12"))
    assert asynchronous == sync


REFUSAL = ValueError("400: response_format: Input should be 'text' or 'json_object'")


def test_verbalized_judge_falls_back_to_text_when_the_structured_call_is_refused() -> None:
    # An OpenAI-compatible server accepts with_structured_output, then refuses the request.
    model = rater("I'd say 0.7", refuse_structured=REFUSAL)
    judge = VerbalizedJudge(model)
    verdict = judge.judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == pytest.approx(0.7)
    assert verdict.signal == "verbalized"
    assert len(model.calls) == 2
    assert verdict.usage["weak"]["judge"]["output_tokens"] == 3
    # It refused structured output, not that call: the next rating is asked in text only.
    assert judge.judge(QUESTION, AIMessage("12")) == verdict
    assert len(model.calls) == 3


async def test_verbalized_judge_async_falls_back_to_text_when_refused() -> None:
    model = rater("85%", refuse_structured=REFUSAL)
    verdict = await VerbalizedJudge(model).ajudge(QUESTION, AIMessage("12"))
    assert (verdict.confidence, verdict.signal) == (pytest.approx(0.85), "verbalized")


def test_verbalized_judge_raises_and_keeps_structured_output_when_the_text_call_fails_too() -> None:
    model = rater('{"confidence": 0.6}', fail_with=REFUSAL)
    judge = VerbalizedJudge(model)
    with pytest.raises(ValueError, match="response_format"):
        judge.judge(QUESTION, AIMessage("12"))
    model.fail_with = None  # the outage is over: structured output is asked for again
    assert judge.judge(QUESTION, AIMessage("12")).signal == "verbalized_structured"


# --- SelfConsistencyJudge ----------------------------------------------------------


def sampler(*replies: str, **kwargs: object) -> ScriptedChatModel:
    pending = cycle(replies)
    return ScriptedChatModel(respond=lambda messages: next(pending), **kwargs)  # type: ignore[arg-type]


def test_self_consistency_is_the_fraction_of_samples_that_agree() -> None:
    model = sampler("So 12.", "The answer is 12", "The answer is 7")
    judge = SelfConsistencyJudge(model, n=3)
    verdict = judge.judge(QUESTION, AIMessage("3 x 4 = 12. The answer is 12."))
    assert verdict.confidence == pytest.approx(2 / 3)
    assert verdict.signal == "self_consistency"
    assert verdict.details == {"agreeing": 2.0, "samples": 3.0, "answered": 3.0}
    # Every sample is asked the conversation itself, and its tokens are counted.
    assert [call[-1].text for call in model.calls] == [QUESTION[0].text] * 3
    assert verdict.usage["weak"]["judge"]["output_tokens"] == 2 + 4 + 4


def test_self_consistency_skips_sampling_when_the_answer_states_nothing() -> None:
    model = sampler("12")
    verdict = SelfConsistencyJudge(model).judge(QUESTION, AIMessage("I cannot tell."))
    assert verdict.confidence == 0.0
    assert model.calls == []


def test_self_consistency_with_a_pluggable_extractor() -> None:
    model = sampler("Answer: (B)", "(C)")
    judge = SelfConsistencyJudge(model, extractor=extract_choice, n=4)
    assert judge.judge(QUESTION, AIMessage("The answer is B")).confidence == 0.5


def test_self_consistency_seeds_keep_samples_distinct_under_a_cache() -> None:
    # An LLM cache keys on the call's parameters: without a seed the n samples
    # are one cache entry, so the first sample comes back n times.
    unseeded = sampler("12", "7", "7", cache=InMemoryCache())
    assert SelfConsistencyJudge(unseeded).judge(QUESTION, AIMessage("12")).confidence == 1.0
    assert len(unseeded.calls) == 1
    seeded = sampler("12", "7", "7", cache=InMemoryCache())
    verdict = SelfConsistencyJudge(seeded, seed=0).judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == pytest.approx(1 / 3)
    assert len(seeded.calls) == 3


async def test_self_consistency_async_samples_concurrently_with_the_same_result() -> None:
    judge = SelfConsistencyJudge(sampler("12"), n=3)
    verdict = await judge.ajudge(QUESTION, AIMessage("12"), config={"max_concurrency": 2})
    assert verdict.confidence == 1.0
    assert verdict.usage["weak"]["judge"]["output_tokens"] == 3


@pytest.mark.parametrize(("kwargs", "message"), [({"n": 0}, "n must"), ({"temperature": 0}, "> 0")])
def test_self_consistency_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SelfConsistencyJudge(sampler("1"), **kwargs)  # type: ignore[arg-type]


# --- VerifierJudge ------------------------------------------------------------------


def verifier(reply: AIMessage | str) -> ScriptedChatModel:
    return ScriptedChatModel(respond=lambda messages: reply)


def test_verifier_scores_p_yes_from_top_logprobs() -> None:
    reply = with_logprobs(
        [("Yes", math.log(0.6)), (".", -0.1)],
        top=[("Yes", math.log(0.6)), ("No", math.log(0.3)), (" yes", math.log(0.05))],
    )
    model = verifier(reply)
    verdict = VerifierJudge(model).judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == pytest.approx(0.65 / 0.95)
    assert verdict.signal == "verifier_p_yes"
    assert verdict.usage["weak"]["judge"]["total_tokens"] > 0
    # Asked as a follow-up turn: the conversation, the answer, then the question.
    prompt = model.calls[0]
    assert [m.type for m in prompt] == ["human", "ai", "human"]
    assert prompt[1].text == "12" and "correct" in prompt[2].text


def test_verifier_reads_the_first_token_that_answers() -> None:
    reply = with_logprobs([("Well", -0.1), (",", -0.1), (" no", math.log(0.8))])
    # Only the chosen token is known: the unseen mass counts as "yes".
    verdict = VerifierJudge(verifier(reply)).judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == pytest.approx(0.2)


@pytest.mark.parametrize(("text", "expected"), [("Yes, it is.", 1.0), ("No.", 0.0), ("Hm", 0.0)])
def test_verifier_falls_back_to_the_text_without_logprobs(text: str, expected: float) -> None:
    verdict = VerifierJudge(verifier(text), top_logprobs=None).judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == expected
    assert verdict.signal == "verifier_text"


async def test_verifier_async() -> None:
    verdict = await VerifierJudge(verifier("Yes")).ajudge(QUESTION, AIMessage("12"))
    assert verdict.confidence == 1.0


# --- LogisticJudge ------------------------------------------------------------------


def test_logistic_fit_weights_the_informative_judge() -> None:
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.5
    informative = np.clip(0.5 + np.where(correct, 0.25, -0.25) + rng.normal(0, 0.1, 400), 0, 1)
    noise = rng.random(400)
    fitted = LogisticJudge.fit(
        [lambda m, a: 0.0, lambda m, a: 0.0], np.column_stack([informative, noise]), correct
    )
    assert fitted.weights[0] > 3.0
    assert abs(fitted.weights[1]) < 0.2 * fitted.weights[0]
    assert fitted.combine([0.9, 0.5]) > 0.5 > fitted.combine([0.1, 0.5])
    # The unpenalized bias makes the mean prediction match the rate of correct answers.
    predicted = [fitted.combine(row) for row in np.column_stack([informative, noise])]
    assert np.mean(predicted) == pytest.approx(correct.mean(), abs=1e-4)


def test_logistic_judge_combines_components_and_their_usage() -> None:
    rating = VerbalizedJudge(rater("0.5", supports_tools=False), model_key="strong")
    combined = LogisticJudge([rating, lambda m, a: 1.0], weights=[2.0, -1.0], bias=0.5)
    verdict = combined.judge(QUESTION, AIMessage("12"))
    assert verdict.confidence == pytest.approx(1 / (1 + math.exp(-(0.5 + 1.0 - 1.0))))
    assert verdict.signal == "logistic"
    assert verdict.details == {"0_verbalized": 0.5, "1_<lambda>": 1.0}
    assert "judge" in verdict.usage["strong"]


async def test_logistic_judge_async_matches_sync() -> None:
    combined = LogisticJudge([lambda m, a: 0.2, lambda m, a: 0.9], weights=[1.0, 1.0])
    assert await combined.ajudge(QUESTION, AIMessage("1")) == combined.judge(
        QUESTION, AIMessage("1")
    )


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([[0.1, 0.2]] * 4, [True, False, True, False], r"shape \(n, 1\)"),
        ([[0.1], [0.9]], [True, True], "both correct and incorrect"),
        ([[1.5], [0.2]], [True, False], r"\[0, 1\]"),
    ],
)
def test_logistic_fit_rejects_bad_data(x: list[list[float]], y: list[bool], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogisticJudge.fit([lambda m, a: 0.0], x, y)


def test_logistic_judge_rejects_mismatched_weights() -> None:
    with pytest.raises(ValueError, match="2 weights for 1 judges"):
        LogisticJudge([lambda m, a: 0.0], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        LogisticJudge([], weights=[])


# --- prepare: the weak model asks for what the judge reads ------------------------


class OpenAIStyleModel(ScriptedChatModel):
    """Logprobs only when asked with ``top_logprobs`` too, like ``python -m llama_cpp.server``."""

    logprobs: bool | None = None
    top_logprobs: int | None = None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        asked = kwargs.pop("logprobs", self.logprobs) and kwargs.pop(
            "top_logprobs", self.top_logprobs
        )
        result = super()._generate(messages, stop, run_manager, **kwargs)
        if not asked:
            for generation in result.generations:
                (generation.generation_info or {}).pop("logprobs", None)
        return result


def openai_style(**fields: object) -> OpenAIStyleModel:
    return OpenAIStyleModel(respond=lambda m: "12", logprob=-0.1, **fields)  # type: ignore[arg-type]


def test_auto_judge_prepare_gets_logprobs_from_an_openai_style_server() -> None:
    weak = openai_style(logprobs=True)  # ChatOpenAI(logprobs=True) against the server
    judge = AutoJudge(VerbalizedJudge(rater('{"confidence": 0.4}')))
    assert judge.judge(QUESTION, weak.invoke(QUESTION)).signal == "verbalized_structured"
    prepared = judge.prepare(weak)
    assert prepared.kwargs == {"logprobs": True, "top_logprobs": 1}  # type: ignore[union-attr]
    verdict = judge.judge(QUESTION, prepared.invoke(QUESTION))
    assert verdict.signal == "logprob_mean"
    assert verdict.confidence == pytest.approx(math.exp(-0.1))


def test_prepare_keeps_a_chosen_top_logprobs_and_other_bound_arguments() -> None:
    judge = LogprobJudge()
    assert judge.prepare(openai_style(top_logprobs=5)).kwargs == {"logprobs": True}  # type: ignore[union-attr]
    bound = openai_style().bind(stop=["\n"], top_logprobs=3)
    assert judge.prepare(bound).kwargs == {"stop": ["\n"], "top_logprobs": 3, "logprobs": True}  # type: ignore[union-attr]


def test_prepare_leaves_models_without_openai_logprob_fields_and_other_judges_alone() -> None:
    scripted = rater("12", logprob=-0.1)
    assert AutoJudge(VerbalizedJudge(scripted)).prepare(scripted) is scripted
    weak = openai_style()
    for judge in (VerbalizedJudge(weak), VerifierJudge(weak), as_judge(lambda m, a: 0.5)):
        assert judge.prepare(weak) is weak
    logistic = LogisticJudge([VerbalizedJudge(weak), LogprobJudge("min")], weights=[1, 1])
    assert logistic.prepare(weak).kwargs == {"logprobs": True, "top_logprobs": 1}  # type: ignore[union-attr]


# ChatOpenAI probes socket options when built (no connection); pytest-socket blocks that.
@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_prepare_binds_arguments_chat_openai_sends() -> None:
    openai = pytest.importorskip("langchain_openai")
    model = openai.ChatOpenAI(
        base_url="http://127.0.0.1:9/v1", api_key="none", model="local", logprobs=True
    )
    prepared = LogprobJudge().prepare(model)
    payload = prepared.bound._get_request_payload(QUESTION, **prepared.kwargs)  # type: ignore[union-attr]
    assert (payload["logprobs"], payload["top_logprobs"]) == (True, 1)


# --- as_judge -----------------------------------------------------------------------


def test_as_judge_adapts_callables_and_checks_their_range() -> None:
    def calls(messages: list[BaseMessage], answer: AIMessage) -> float:
        return 0.4

    assert as_judge(calls).judge(QUESTION, AIMessage("1")) == Judgement(
        confidence=0.4, signal="calls"
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_judge(lambda m, a: 1.5).judge(QUESTION, AIMessage("1"))
    with pytest.raises(TypeError):
        as_judge(0.5)  # type: ignore[arg-type]


# --- Two thresholds: the strong answer is judged too ------------------------------


def test_two_thresholds_abstain_with_the_more_confident_answer(weak, strong, bank) -> None:
    # The weak answer (confidence e^-1.5 = 0.22) is deferred; the strong judge is
    # unsure too, so the cascade abstains and attaches the more confident answer.
    unsure = create_intercascade(
        weak, strong, bank=bank, strong_threshold=0.5, strong_judge=lambda m, a: 0.1
    ).invoke(APPLES)
    assert unsure["route"] == "abstain"
    assert unsure["strong_confidence"] == 0.1
    assert unsure["answer"] == "The total is 7." == unsure["messages"][-1].text
    assert len(bank) == 0  # nothing is distilled from an answer nobody is sure of

    less_unsure = create_intercascade(
        weak, strong, bank=bank, strong_threshold=0.5, strong_judge=lambda m, a: 0.3
    ).invoke(APPLES)
    assert less_unsure["route"] == "abstain"
    assert less_unsure["answer"].endswith("the total is 12.")


def test_two_thresholds_keep_a_confident_strong_answer(weak, strong, bank) -> None:
    out = create_intercascade(
        weak, strong, bank=bank, strong_threshold=0.5, strong_judge=lambda m, a: 0.9
    ).invoke(APPLES)
    assert out["route"] == "strong"
    assert out["strong_confidence"] == 0.9
    assert out["new_strategy"] is not None


async def test_two_thresholds_default_strong_judge_rates_with_the_strong_model(weak, bank) -> None:
    def respond(messages: list[BaseMessage]) -> str:
        last = messages[-1].text
        return "0.4" if last.startswith("Rate how likely") else "The total is 12."

    strong = ScriptedChatModel(respond=respond, supports_tools=False)
    cascade = create_intercascade(weak, strong, bank=bank, strong_threshold=0.5, distill=False)
    out = await cascade.ainvoke(APPLES)
    assert out["route"] == "abstain"
    assert out["strong_confidence"] == pytest.approx(0.4)
    assert out["answer"] == "The total is 12."
    assert "judge" in out["usage"]["strong"]
    # Off by default: the strong answer is trusted and not judged.
    plain = create_intercascade(weak, strong, bank=None).invoke(APPLES)
    assert plain["route"] == "strong" and plain["strong_confidence"] is None


def test_a_failing_strong_judge_abstains_and_records_the_error(weak, strong) -> None:
    def broken(messages: object, answer: object) -> float:
        raise RuntimeError("judge down")

    out = create_intercascade(
        weak, strong, bank=None, strong_threshold=0.5, strong_judge=broken
    ).invoke(APPLES)
    assert out["route"] == "abstain"
    assert any("strong_judge" in e and "judge down" in e for e in out["errors"])


def test_strong_threshold_is_validated(weak, strong) -> None:
    with pytest.raises(ValueError, match="strong_threshold"):
        create_intercascade(weak, strong, bank=None, strong_threshold=1.5)
