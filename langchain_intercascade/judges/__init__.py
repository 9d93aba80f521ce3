"""Confidence judges: how sure is the cascade that the weak answer is right?

A judge maps the conversation and the weak model's ``AIMessage`` to a
:class:`Judgement` whose ``confidence`` lies in [0, 1]; the cascade accepts the
weak answer when the confidence reaches its threshold. Subclass
:class:`BaseJudge`, or pass any callable ``(messages, answer) -> float`` or any
Runnable taking ``{"messages": ..., "answer": ...}``: :func:`as_judge` adapts it.

A judge that reads something from the weak model's replies (token logprobs)
says so through :meth:`BaseJudge.prepare`, which returns the weak model set up
to provide it; the cascade answers with the prepared model.

Module map:

- ``base``: :class:`Judgement`, :class:`BaseJudge`,
  :func:`as_judge` and its adapters for callables and Runnables, and the run
  config and prompt variables every judge call uses.
- ``logprob``: :class:`LogprobJudge` (token probability),
  :class:`MissingLogprobsError`, :func:`token_logprobs`,
  :func:`answer_token_span` and :func:`request_logprobs`.
- ``verbalized``: :class:`VerbalizedJudge` (the model's own rating),
  :class:`Rating` and :func:`parse_rating`.
- ``auto``: :class:`AutoJudge`, the default: token probability where the reply
  carries logprobs, another judge elsewhere.
- ``self_consistency``: :class:`SelfConsistencyJudge` (agreement of extra samples).
- ``verifier``: :class:`VerifierJudge` (P(yes) to "is your answer correct?").
- ``logistic``: :class:`LogisticJudge`, a fitted logistic combination of judges.
- ``label_agreement``: :class:`LabelAgreementJudge` (a label task's answer against
  the labels of the strategies shown).
"""

from langchain_intercascade.judges.auto import AutoJudge
from langchain_intercascade.judges.base import BaseJudge, Judgement, as_judge
from langchain_intercascade.judges.label_agreement import LabelAgreementJudge
from langchain_intercascade.judges.logistic import LogisticJudge
from langchain_intercascade.judges.logprob import (
    LogprobJudge,
    MissingLogprobsError,
    answer_token_span,
    request_logprobs,
    token_logprobs,
)
from langchain_intercascade.judges.self_consistency import SelfConsistencyJudge
from langchain_intercascade.judges.verbalized import Rating, VerbalizedJudge, parse_rating
from langchain_intercascade.judges.verifier import VerifierJudge

__all__ = [
    "AutoJudge",
    "BaseJudge",
    "Judgement",
    "LabelAgreementJudge",
    "LogisticJudge",
    "LogprobJudge",
    "MissingLogprobsError",
    "Rating",
    "SelfConsistencyJudge",
    "VerbalizedJudge",
    "VerifierJudge",
    "answer_token_span",
    "as_judge",
    "parse_rating",
    "request_logprobs",
    "token_logprobs",
]
