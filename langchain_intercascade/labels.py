"""Label tasks: the answer is one label of a fixed set (intents, ticket categories, routes).

Recurring label traffic is where small weak models learn from the strong one: the
strong model's label for a message is a fact the weak model can copy for the next
message like it. A :class:`LabelSet` holds the labels and everything that depends
on them: reading a label out of a reply (:meth:`LabelSet.extract`), grading
(:meth:`LabelSet.grade`), the cascade's prompts (the label list first, so a
prompt cache reuses it) and the options of a label cascade
(:meth:`LabelSet.options`). :func:`~langchain_intercascade.evaluation.load_labelled`
reads labelled messages from CSV or JSONL.

Example:
    ```python
    from langchain_intercascade import StrategyBank, create_intercascade
    from langchain_intercascade.labels import LabelSet
    from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

    labels = LabelSet(labels=["card_arrival", "lost_or_stolen_card"])
    assert labels.extract("Intent: 'Card Arrival'.") == "card_arrival"
    assert labels.extract("card_delivery") is None  # outside the set: no answer

    weak = ScriptedChatModel(respond=lambda m: "lost_or_stolen_card", logprob=-3.0)
    strong = ScriptedChatModel(
        respond=lambda m: (
            '{"title": "card_arrival", "applies_when": "The customer waits for a new card.",'
            ' "steps": ["Answer card_arrival."]}'
            if "Label:" in m[-1].text
            else "card_arrival"
        ),
        model_name="strong",
    )
    bank = StrategyBank(BagOfWordsEmbeddings())
    cascade = create_intercascade(weak, strong, bank=bank, options=labels.options())
    out = cascade.invoke("My new card has still not arrived.")
    assert out["answer"] == "card_arrival" and out["route"] == "strong"
    assert labels.label_of(out["new_strategy"].strategy) == "card_arrival"
    ```
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from langchain_intercascade.guards import StrategyFilter
from langchain_intercascade.prompts import CascadePrompts
from langchain_intercascade.strategies import Strategy

if TYPE_CHECKING:
    from langchain_intercascade.options import CascadeOptions

# What small models put around a label: "Intent: x", "The label is x", "**x**", "`x`."
_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:answer|label|intent|category|class|classification|final answer)"
    r"\s*(?:is|:|=|-)\s*",
    re.IGNORECASE,
)
_WRAPPING = "\"'`*_“”‘’«»[]()<>. \t"
# Where a label written first on a line may be followed by an explanation.
_AFTER_LABEL = re.compile(r"\s+[-–—:(]|[,;:]\s|\.\s|\s+because\b", re.IGNORECASE)


def label_key(text: str) -> str:
    """The form labels are compared in: case, spaces and hyphens vs underscores ignored.

    Args:
        text: A label as written.

    Returns:
        ``"Card arrival"``, ``"card-arrival"`` and ``"CARD_ARRIVAL"`` all give
        ``"card_arrival"``.
    """
    words = re.split(r"[\s_\-]+", text.strip(_WRAPPING).casefold())
    return "_".join(word for word in words if word)


class LabelSet(BaseModel):
    """The labels of a task, and reading, grading and prompting with them.

    Attributes:
        labels: The labels, in the order the prompt lists them. Two labels that
            compare equal (:func:`label_key`) are an error.
    """

    model_config = ConfigDict(frozen=True)

    labels: tuple[str, ...] = Field(min_length=1)
    _keys: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _well_formed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(label.strip() for label in value)
        if any(not label_key(label) for label in cleaned):
            raise ValueError("a label must not be blank")
        seen: dict[str, str] = {}
        for label in cleaned:
            other = seen.setdefault(label_key(label), label)
            if other != label or cleaned.count(label) > 1:
                raise ValueError(f"labels {other!r} and {label!r} are the same label")
        return cleaned

    def model_post_init(self, context: Any, /) -> None:
        """Index the labels by their normalized form."""
        self._keys = {label_key(label): label for label in self.labels}

    @classmethod
    def from_file(cls, path: str | Path) -> LabelSet:
        """Read labels from a JSON list (e.g. Banking77's ``categories.json``) or one per line.

        Args:
            path: The label file.

        Returns:
            The label set.

        Raises:
            ValueError: If the file holds no labels, or JSON that is not a list of
                strings.
        """
        text = Path(path).read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            data = json.loads(text)
            if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
                raise ValueError(f"{path}: expected a JSON list of label strings")
            labels = data
        else:
            labels = [line.strip() for line in text.splitlines() if line.strip()]
        if not labels:
            raise ValueError(f"{path}: no labels")
        return cls(labels=tuple(labels))

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and label_key(label) in self._keys

    def __len__(self) -> int:
        return len(self.labels)

    def canonical(self, text: str) -> str | None:
        """The label ``text`` names, exactly as listed, or None if it names none."""
        return self._keys.get(label_key(text))

    def extract(self, reply: str) -> str | None:
        """Read the label from a reply; an answer outside the set is no answer.

        The first line with text counts, without a stray prefix ("Intent:",
        "The label is"), quotes or markup; where it does not name a label as a
        whole, what comes before an explanation ("x - because ...") is tried.

        Args:
            reply: The model's reply.

        Returns:
            The label as listed, or None.
        """
        line = next((ln for ln in reply.splitlines() if ln.strip(_WRAPPING)), "")
        while (stripped := _PREFIX.sub("", line, count=1)) != line:
            line = stripped
        found = self.canonical(line)
        if found is None:
            head = _AFTER_LABEL.split(line, maxsplit=1)[0]
            found = self.canonical(head)
        return found

    def grade(self, reply: str, gold: str) -> bool:
        """Whether the reply's label is the gold label.

        A :data:`~langchain_intercascade.answers.Grader`.

        Raises:
            ValueError: If the gold label is not in the set.
        """
        expected = self.canonical(gold)
        if expected is None:
            raise ValueError(f"gold label {gold!r} is not one of the task's labels")
        return self.extract(reply) == expected

    def label_of(self, strategy: Strategy) -> str | None:
        """The label a label strategy names (its title), or None for any other strategy."""
        return self.extract(strategy.title)

    def screen(self, strategy: Strategy) -> str | None:
        """Reject a strategy that names no label of the set (a strong answer off the list)."""
        if self.label_of(strategy) is None:
            return f"names no label of the task: {strategy.title[:60]!r}"
        return None

    def prompts(self) -> CascadePrompts:
        """The cascade's prompts for this task: :meth:`CascadePrompts.for_labels`."""
        return CascadePrompts.for_labels(self.labels)

    def options(self, **values: Any) -> CascadeOptions:
        """The options of a cascade for this task.

        The prompts list the labels; the judge is the answered label's token
        probability (:class:`LogprobJudge` over the label's tokens); the
        recalibrator compares labels; the strategy filter is the default
        :class:`StrategyFilter` and then :meth:`screen`, so only a strategy that
        names a label is stored. Strategies are shown from the cascade's default
        ``score_threshold`` up: on the intents benchmark (all-MiniLM-L6-v2), the
        top strategy's label was right on 4 of 34 messages it matched below 0.5,
        and one wrong label shown to every later ticket however unlike made the
        weak model repeat it.

        Args:
            **values: Any other field of :class:`CascadeOptions`, or one of these
                to replace.

        Returns:
            The validated options.
        """
        from langchain_intercascade.judges import LogprobJudge
        from langchain_intercascade.options import CascadeOptions

        screen_default = StrategyFilter()

        def screen(strategy: Strategy) -> str | None:
            return screen_default(strategy) or self.screen(strategy)

        defaults: dict[str, Any] = {
            "prompts": self.prompts(),
            "judge": LogprobJudge(extractor=self.extract),
            "answer_extractor": self.extract,
            "strategy_filter": screen,
        }
        return CascadeOptions.model_validate({**defaults, **values})
