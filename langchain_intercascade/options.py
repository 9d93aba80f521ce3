"""Every option of a cascade, declared, defaulted, validated and documented once.

:class:`CascadeOptions` is taken by every entry point: :func:`create_intercascade`
and :func:`build_intercascade_graph` (as ``options=`` or its fields as keyword
arguments), :class:`ChatInterCascade`, the server and CLI settings and the
evaluation config. A bad value fails at construction with the parameter's name,
instead of silently switching learning off on every turn.

Example:
    ```python
    from langchain_intercascade import CascadeOptions

    options = CascadeOptions(threshold=0.7, k=3)
    assert options.search_type == "similarity"
    try:
        CascadeOptions(k=2.5)
    except ValueError as error:
        assert "k" in str(error)
    ```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from langchain_intercascade.answers import AnswerExtractor, extract_number
from langchain_intercascade.bank import SearchType
from langchain_intercascade.budgets import StrongCallBudget
from langchain_intercascade.calibration import OnlineRecalibrator, ThresholdCalibration
from langchain_intercascade.guards import StrategyFilter
from langchain_intercascade.judges import BaseJudge, as_judge
from langchain_intercascade.prompts import CascadePrompts
from langchain_intercascade.strategies import Strategy
from langchain_intercascade.teacher_records import TeacherRecorder

DistillMode = Literal["separate", "joint"]
"""``"separate"``: a second strong call writes the strategy; ``"joint"``: one call."""

JudgeLike = BaseJudge | Runnable[Any, Any] | Callable[..., Any]
"""A judge: a :class:`BaseJudge`, a Runnable or a callable returning a 0-1 score."""

# Strict numbers: a string or a float where an int belongs is a configuration error.
_Number = StrictFloat | StrictInt


def last_user_turn(messages: Sequence[BaseMessage]) -> str:
    """The default retrieval query: the text of the last human message.

    Args:
        messages: The conversation.

    Returns:
        The last human message's text.

    Raises:
        ValueError: If the conversation has no human message.
    """
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    raise ValueError("the conversation has no user (human) message to answer")


class CascadeOptions(BaseModel):
    """The options of an Inter-Cascade; every field has a working default.

    Attributes:
        judge: Scores the weak answer in [0, 1]: a :class:`BaseJudge`, a Runnable or
            a callable ``(messages, answer)``. None uses :class:`AutoJudge`: the
            answer's normalized token probability when the weak model returns
            logprobs, else the weak model's own 0-1 rating.
        threshold: Accept the weak answer when the confidence is at least this:
            a number in [0, 1], ``math.inf`` (defer everything), or a
            :class:`ThresholdCalibration` from :func:`calibrate_threshold`. A bare
            number counts as uncalibrated: the output says so.
        k: How many strategies to show the weak model (2, as in the paper).
        score_threshold: Show only strategies at least this similar to the query
            (cosine similarity, in [-1, 1]); None shows the top ``k``.
        distill: Distill and store a strategy after each strong answer. Two strong
            answers are not distilled, and the turn's ``distill_skipped`` says
            why: one below ``distill_threshold`` (``"untrusted"``), and one whose
            query retrieved a strategy at least the bank's ``dedup_threshold``
            similar (``"near_duplicate"``: the bank would merge the new strategy
            into that one, so the distillation call would buy nothing).
        distill_in_background: Distill after the answer is returned, on a worker
            thread, so a deferred query costs the user one strong call's latency,
            not two. The turn's output then has no ``new_strategy`` and its
            ``usage`` no distillation tokens:
            :meth:`InterCascadeGraph.wait_for_distillations` returns them.
        distill_kept: How many finished background distillations are kept for
            ``wait_for_distillations``; past it the oldest is dropped and counted
            (:attr:`InterCascadeGraph.dropped_distillations`), so a server that
            never waits does not grow.
        on_distilled: Called, on the worker thread, with each finished
            background distillation's update (``usage``, and ``new_strategy`` or
            ``errors``) instead of keeping it; an update it raises on is dropped
            and counted.
        distill_mode: ``"separate"`` asks the strong model for the strategy in a
            second call; ``"joint"`` gets answer and strategy from one strong call
            and strips the strategy from the user's answer (its block is then part
            of the strong model's streamed tokens).
        prompts: The cascade's prompts; override any field.
        retrieval_query: Picks the retrieval text from the conversation; the
            default is the last user turn.
        store_source_query: Keep the query a strategy came from in its record;
            False leaves it out for privacy. Either way, the strategies in a
            turn's output never carry their source queries (other users' words);
            the bank's own reads (``bank.get``, ``bank.search``) do.
        strategy_filter: Screens each distilled strategy before it is stored:
            returns why to reject it, or None to store it. A rejected strategy is
            not stored, and the reason is in the turn's ``errors``. The default,
            :class:`StrategyFilter`, rejects personal data, secrets, injected
            instructions and overlong strategies; None stores every strategy.
        search_type: ``"similarity"`` shows the ``k`` most similar strategies;
            ``"mmr"`` shows diverse ones (maximal marginal relevance).
        budget: Opt-in strong-call budget per tenant (the run's bank namespace)
            and hour or day: a :class:`~langchain_intercascade.budgets.StrongCallBudget`,
            or its JSON (as ``INTERCASCADE_BUDGET`` gives it). A deferred turn over
            it gets the weak answer (``route="weak_budget"``, nothing distilled) or
            raises :class:`~langchain_intercascade.budgets.StrongCallBudgetExceeded`;
            either way the strong model is not called. The turn's ``budget`` is the
            tenant's use of the window.
        strong_threshold: Opt-in two-threshold mode (Jung et al.): the strong answer
            is judged too, and below this the cascade abstains
            (``route="abstain"``, the more confident answer attached, nothing
            distilled). None always trusts the strong answer.
        strong_judge: Scores the strong answer, in two-threshold mode and for
            ``distill_threshold``; None uses :class:`AutoJudge` on the strong model.
        distill_threshold: Opt-in trusted distillation: distill only a strong
            answer whose ``strong_judge`` confidence is at least this, e.g. the
            agreement of samples (:class:`SelfConsistencyJudge`) or a verifier
            (:class:`VerifierJudge`). The user gets the strong answer either way.
            None distills every strong answer.
        recalibrator: Opt-in online recalibration: every deferred query whose weak
            answer was judged adds ``(confidence, agreed)`` to this
            :class:`OnlineRecalibrator` (``agreed``: weak and strong final answers
            are equal, a proxy that assumes the strong model is right), and the
            judge uses its threshold instead of ``threshold``.
        answer_extractor: Reads the final answer from a reply, to compare weak and
            strong answers for the recalibrator (numbers by default).
        max_input_chars: Reject a conversation longer than this many characters.
        weak_timeout: Seconds the weak model may take to answer (None: no limit);
            a weak model that times out is deferred like a failing one.
        strong_timeout: Seconds the strong model may take to answer; when it times
            out, the weak answer is returned (``route="weak_fallback"``).
        distill_timeout: Seconds a distillation call may take; the answer never
            waits on a failed distillation.
        max_retries: How often a model call that failed transiently (a rate limit,
            a dropped connection, a 5xx) is repeated, with exponential backoff. A
            weak model that is still rate-limited raises instead of escalating to
            the (more expensive) strong model.
        record_to: Opt-in recording of the teacher's answers: each turn the strong
            model answered (route ``"strong"``) is written to this
            :class:`~langchain_intercascade.teacher_records.TeacherRecorder` as a
            :class:`~langchain_intercascade.teacher_records.TeacherRecord`, after its
            distillation (on the worker, with ``distill_in_background``). An answer
            the ``strategy_filter`` rejects (read as a strategy: its first line the
            title) is not recorded, and the recorder counts it; a failed write is
            counted and goes to the turn's ``errors``, the answer stands.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        extra="forbid",
        frozen=True,
        # A calibrated threshold may be inf; keep it through JSON.
        ser_json_inf_nan="constants",
    )

    judge: Annotated[BaseJudge | None, Field(exclude=True)] = None
    threshold: _Number | ThresholdCalibration = 0.8
    k: StrictInt = Field(default=2, ge=1)
    score_threshold: _Number | None = Field(default=0.5, ge=-1.0, le=1.0)
    distill: StrictBool = True
    distill_in_background: StrictBool = False
    distill_kept: StrictInt = Field(default=1000, ge=0)
    on_distilled: Annotated[Callable[[dict[str, Any]], Any] | None, Field(exclude=True)] = None
    distill_mode: DistillMode = "separate"
    prompts: Annotated[CascadePrompts, Field(exclude=True, repr=False)] = Field(
        default_factory=CascadePrompts
    )
    retrieval_query: Annotated[Callable[[Sequence[BaseMessage]], str], Field(exclude=True)] = (
        last_user_turn
    )
    store_source_query: StrictBool = True
    strategy_filter: Annotated[Callable[[Strategy], str | None] | None, Field(exclude=True)] = (
        Field(default_factory=StrategyFilter)
    )
    search_type: SearchType = "similarity"
    budget: StrongCallBudget | None = None
    strong_threshold: _Number | None = Field(default=None, ge=0.0, le=1.0)
    strong_judge: Annotated[BaseJudge | None, Field(exclude=True)] = None
    distill_threshold: _Number | None = Field(default=None, ge=0.0, le=1.0)
    recalibrator: Annotated[OnlineRecalibrator | None, Field(exclude=True)] = None
    answer_extractor: Annotated[AnswerExtractor, Field(exclude=True)] = extract_number
    max_input_chars: StrictInt = Field(default=100_000, ge=1)
    weak_timeout: _Number | None = Field(default=None, gt=0)
    strong_timeout: _Number | None = Field(default=None, gt=0)
    distill_timeout: _Number | None = Field(default=None, gt=0)
    max_retries: StrictInt = Field(default=2, ge=0)
    record_to: Annotated[TeacherRecorder | None, Field(exclude=True)] = None

    @field_validator("judge", "strong_judge", mode="before")
    @classmethod
    def _as_judge(cls, value: Any) -> BaseJudge | None:
        return None if value is None else as_judge(value)

    @field_validator("threshold")
    @classmethod
    def _threshold_in_range(
        cls, value: float | ThresholdCalibration
    ) -> float | ThresholdCalibration:
        number = value.threshold if isinstance(value, ThresholdCalibration) else value
        if not (0.0 <= number <= 1.0 or number == math.inf):
            raise ValueError(f"must lie in [0, 1] or be math.inf, got {number}")
        return value

    @field_validator("budget", mode="before")
    @classmethod
    def _budget_from_json(cls, value: Any) -> Any:
        # A settings variable holds the budget as JSON.
        return StrongCallBudget.model_validate_json(value) if isinstance(value, str) else value

    @field_validator("retrieval_query", "answer_extractor")
    @classmethod
    def _callable(cls, value: Any) -> Any:
        if not callable(value):
            raise ValueError(f"must be callable, got {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _strong_judge_needs_a_threshold(self) -> CascadeOptions:
        # Without a threshold the strong answer is never judged: say so, not ignore it.
        if self.strong_judge is not None and not self.judges_strong_answer:
            raise ValueError(
                "strong_judge is used only with strong_threshold or distill_threshold: "
                "set one of them"
            )
        return self

    @property
    def judges_strong_answer(self) -> bool:
        """Whether the strong answer is judged (two-threshold mode or trusted distillation)."""
        return self.strong_threshold is not None or self.distill_threshold is not None

    @property
    def threshold_value(self) -> float:
        """The acceptance threshold as a number."""
        threshold = self.threshold
        return float(
            threshold.threshold if isinstance(threshold, ThresholdCalibration) else threshold
        )

    @property
    def threshold_calibrated(self) -> bool:
        """Whether the threshold came from a calibration on labelled data."""
        return isinstance(self.threshold, ThresholdCalibration)

    def with_values(self, **values: Any) -> CascadeOptions:
        """A copy with some fields replaced, validated like a new instance.

        Args:
            **values: Fields of :class:`CascadeOptions`.

        Returns:
            The new options.

        Raises:
            pydantic.ValidationError: If a value is invalid or a name unknown (a
                ``ValueError`` naming the field).
        """
        if not values:
            return self
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self).model_validate({**current, **values})


def fold_options(data: Any) -> Any:
    """Fold option fields given among a model's own fields into its ``options``.

    For models that hold a :class:`CascadeOptions` and accept its fields flat
    (``ChatInterCascade(weak=..., threshold=0.7)``).

    Args:
        data: The model's input, before validation.

    Returns:
        The input with the option fields moved into ``options``.
    """
    if not isinstance(data, dict):
        return data
    given = {k: v for k, v in data.items() if k in CascadeOptions.model_fields}
    if not given:
        return data
    rest = {k: v for k, v in data.items() if k not in given}
    return {**rest, "options": resolve_options(data.get("options"), given)}


def resolve_options(options: CascadeOptions | None, values: dict[str, Any]) -> CascadeOptions:
    """Options from an ``options=`` argument and field keyword arguments.

    Args:
        options: Base options; None starts from the defaults.
        values: Field values that override the base.

    Returns:
        The validated options.

    Raises:
        TypeError: If ``options`` is not a :class:`CascadeOptions`.
        pydantic.ValidationError: If a value is invalid or a name unknown.
    """
    if options is None:
        return CascadeOptions.model_validate(values)
    if not isinstance(options, CascadeOptions):
        raise TypeError(f"options must be CascadeOptions, got {type(options).__name__}")
    return options.with_values(**values)
