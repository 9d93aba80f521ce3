"""Strategies: the reusable problem-solving methods the strong model distills.

A :class:`Strategy` is what the strong model writes; a :class:`StrategyRecord` is a
strategy as the bank stores it (with its id, namespace and provenance); a
:class:`RetrievedStrategy` is a record found for a query, with its similarity.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any

from langchain_core.utils.json import parse_partial_json
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator


def to_well_formed(text: str) -> str:
    r"""Text that encodes as UTF-8: each lone surrogate becomes U+FFFD.

    ASCII JSON, such as a model's reply, can carry a lone surrogate (the escape
    ``\ud83d``), which no UTF-8 encoder accepts: such text could not be hashed,
    embedded or saved. A surrogate pair split into two code points is joined.

    Args:
        text: Any text.

    Returns:
        The text, well-formed.

    Example:
        ```python
        from langchain_intercascade.strategies import to_well_formed

        assert to_well_formed("ok \ud83d") == "ok \ufffd"
        assert to_well_formed("ok \ud83d\ude00") == "ok \U0001f600"
        ```
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _well_formed(value: Any) -> Any:
    return to_well_formed(value) if isinstance(value, str) else value


WellFormedStr = Annotated[str, BeforeValidator(_well_formed)]
"""A ``str`` field whose lone surrogates are replaced on validation."""

# Ids become store keys, Chroma ids and log lines: no path separators, dots first,
# control characters or unbounded lengths.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_strategy_id(value: object) -> str:
    """Return a strategy id unchanged, or raise ``ValueError`` naming it.

    An id is 1 to 128 ASCII letters, digits, ``.``, ``_``, ``:`` or ``-``, and
    starts with a letter or digit; the ids the bank makes are 32 hex digits.

    Args:
        value: The id to check.

    Returns:
        The id.

    Raises:
        ValueError: If it is not such a string.

    Example:
        ```python
        from langchain_intercascade.strategies import check_strategy_id

        assert check_strategy_id("other-7") == "other-7"
        try:
            check_strategy_id("../../etc/passwd")
        except ValueError as exc:
            assert "'../../etc/passwd'" in str(exc)
        else:
            raise AssertionError("a path was taken for an id")
        ```
    """
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    shown = value[:64] + "..." if isinstance(value, str) and len(value) > 64 else value
    raise ValueError(
        f"strategy id {shown!r} is not 1 to 128 letters, digits, '.', '_', ':' or '-' "
        "starting with a letter or digit"
    )


class Strategy(BaseModel):
    """A general, reusable method for a class of problems.

    It names the method, never one problem's numbers or final answer, so that it
    helps the weak model on the next problem of the same kind.
    """

    title: WellFormedStr = Field(description="A short name for the kind of problem and method.")
    applies_when: WellFormedStr = Field(
        description="When the strategy applies: the shape of problem it solves."
    )
    steps: list[WellFormedStr] = Field(
        description="The method as ordered, general steps, with named quantities "
        "instead of the solved problem's numbers."
    )
    pitfalls: list[WellFormedStr] = Field(
        default_factory=list, description="Mistakes to avoid with this kind of problem."
    )

    @field_validator("title", "applies_when")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("steps")
    @classmethod
    def _has_steps(cls, value: list[str]) -> list[str]:
        steps = [step.strip() for step in value if step and step.strip()]
        if not steps:
            raise ValueError("a strategy needs at least one step")
        return steps

    def to_text(self) -> str:
        """Render the strategy as the text shown to the weak model (and screened).

        The bank embeds :attr:`StrategyRecord.key_text`, not this.

        Returns:
            A compact, human-readable rendering.
        """
        lines = [f"{self.title}", f"Applies when: {self.applies_when}", "Steps:"]
        lines += [f"{i}. {step}" for i, step in enumerate(self.steps, 1)]
        if self.pitfalls:
            lines.append("Pitfalls:")
            lines += [f"- {pitfall}" for pitfall in self.pitfalls]
        return "\n".join(lines)


class StrategyRecord(BaseModel):
    """A strategy as stored in the bank, with its provenance and usage counters.

    Records are immutable: the bank stores an updated copy when a counter
    changes. ``usefulness`` summarizes the counters for ranking and eviction.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Content hash of namespace and strategy text, as first stored.")
    strategy: Strategy
    namespace: str = Field(default="default", min_length=1)
    source_query: WellFormedStr | None = Field(
        default=None,
        description="The query it was distilled from; None to keep it private.",
    )
    model: WellFormedStr | None = Field(default=None, description="The model that wrote it.")
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    last_used_at: datetime | None = Field(
        default=None, description="When the cascade last acted on it after retrieving it."
    )
    times_retrieved: int = Field(default=0, ge=0, description="Retrievals the cascade judged.")
    times_accepted: int = Field(
        default=0, ge=0, description="Retrievals after which the weak answer was accepted."
    )
    times_deferred: int = Field(
        default=0, ge=0, description="Retrievals after which the query was deferred."
    )
    helpful: int = Field(default=0, ge=0, description="Times rated helpful (e.g. by a grader).")
    harmful: int = Field(default=0, ge=0, description="Times rated harmful.")
    variants: int = Field(
        default=0, ge=0, description="Near-duplicate strategies merged into this one."
    )

    @field_validator("id")
    @classmethod
    def _id_well_formed(cls, value: str) -> str:
        return check_strategy_id(value)

    @field_validator("namespace")
    @classmethod
    def _namespace_well_formed(cls, value: str) -> str:
        # Rejected, not repaired: two broken tenant names must not become one.
        if to_well_formed(value) != value:
            raise ValueError("must not hold lone surrogates")
        return value

    @field_validator("created_at", "last_used_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # Hand-edited JSONL may carry naive times; ordering needs them all comparable.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @classmethod
    def create(
        cls,
        strategy: Strategy,
        *,
        namespace: str = "default",
        source_query: str | None = None,
        model: str | None = None,
    ) -> StrategyRecord:
        """Build a record whose id is a deterministic hash of its content and key.

        The same strategy distilled from two different queries is two records, each
        found by its own query: a label task's strategies for one label are often
        word for word the same, and one record keyed by the first query would hide
        the label from every other way of asking. Distilled again from the same
        query (a retry), it is the same record.

        Args:
            strategy: The distilled strategy.
            namespace: The namespace it belongs to.
            source_query: The query it came from, or None to leave it out.
            model: The name of the model that wrote it.

        Returns:
            The record.
        """
        return cls(
            id=content_id(strategy, namespace, source_query),
            strategy=strategy,
            namespace=namespace,
            source_query=source_query,
            model=model,
        )

    @property
    def text(self) -> str:
        """The strategy's text, as shown to the weak model."""
        return self.strategy.to_text()

    def without_source_query(self) -> StrategyRecord:
        """A copy to show outside the bank, whose source query (a user's words) is left out.

        Returns:
            The record without ``source_query``.
        """
        return self if self.source_query is None else self.model_copy(update={"source_query": None})

    @property
    def key_text(self) -> str:
        """The text the bank indexes the strategy by.

        The source query when it is kept, as in the paper (a new query is matched
        against the queries strategies were distilled from); otherwise the
        strategy's title and when it applies.
        """
        return self.source_query or f"{self.strategy.title}. {self.strategy.applies_when}"

    @property
    def usefulness(self) -> float:
        """How often the strategy helped, in (0, 1); 0.5 without evidence.

        The Laplace-smoothed share of good outcomes (accepted afterwards, rated
        helpful) among all outcomes, so one bad outcome does not condemn a new
        strategy.
        """
        good = self.times_accepted + self.helpful
        bad = self.times_deferred + self.harmful
        return (good + 1) / (good + bad + 2)

    @property
    def last_active(self) -> datetime:
        """When the strategy was last used, or created if never used."""
        return self.last_used_at or self.created_at

    def with_counts(self, *, used_at: datetime | None = None, **increments: int) -> StrategyRecord:
        """Return a copy with counters increased.

        Args:
            used_at: Set ``last_used_at`` to this time.
            **increments: Counter names (``times_retrieved``, ``times_accepted``,
                ``times_deferred``, ``helpful``, ``harmful``, ``variants``) and
                how much to add.

        Returns:
            The updated copy.

        Raises:
            ValueError: If a name is not a counter.
        """
        unknown = set(increments) - _COUNTERS
        if unknown:
            raise ValueError(f"not a strategy counter: {sorted(unknown)}")
        update: dict[str, Any] = {name: getattr(self, name) + n for name, n in increments.items()}
        if used_at is not None:
            update["last_used_at"] = used_at
        return self.model_copy(update=update)

    def merged_with(
        self, other: StrategyRecord, screen: Callable[[Strategy], str | None] | None = None
    ) -> StrategyRecord:
        """Fold a near-duplicate into this record.

        The method (steps) stays this record's, as a rewritten method tends to
        lose detail; the other's new pitfalls are appended, one by one, each only
        if ``screen`` accepts the strategy with it (so a merge never grows past a
        filter's ``max_chars`` nor joins pitfalls into a poisoned text), and its
        counters and variants are added.

        Args:
            other: The near-duplicate strategy.
            screen: A strategy filter (why to reject, or None); None appends every
                new pitfall.

        Returns:
            The merged copy, with this record's id.
        """
        known = {p.casefold() for p in self.strategy.pitfalls}
        pitfalls = list(self.strategy.pitfalls)
        for pitfall in other.strategy.pitfalls:
            if pitfall.casefold() in known:
                continue
            candidate = self.strategy.model_copy(update={"pitfalls": [*pitfalls, pitfall]})
            if screen is None or screen(candidate) is None:
                pitfalls.append(pitfall)
                known.add(pitfall.casefold())
        merged = self.with_counts(
            **{name: getattr(other, name) for name in _COUNTERS - {"variants"}},
            variants=other.variants + 1,
        )
        last = [t for t in (self.last_used_at, other.last_used_at) if t is not None]
        return merged.model_copy(
            update={
                "strategy": self.strategy.model_copy(update={"pitfalls": pitfalls}),
                "last_used_at": max(last) if last else None,
            }
        )


_COUNTERS = frozenset(
    {"times_retrieved", "times_accepted", "times_deferred", "helpful", "harmful", "variants"}
)


def content_id(strategy: Strategy, namespace: str, source_query: str | None = None) -> str:
    """The deterministic id of a strategy in a namespace, keyed by its source query.

    Args:
        strategy: The strategy.
        namespace: Its namespace.
        source_query: The query it is keyed by, if one is kept.

    Returns:
        32 hex digits.
    """
    digest = hashlib.sha256(f"{namespace}\x00{strategy.to_text()}".encode())
    if source_query is not None:
        digest.update(b"\x00" + source_query.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


class RetrievedStrategy(BaseModel):
    """A stored strategy retrieved for a query, with its similarity score."""

    model_config = ConfigDict(frozen=True)

    record: StrategyRecord
    score: float = Field(description="Similarity to the query; higher is closer.")

    @property
    def text(self) -> str:
        """The strategy's text."""
        return self.record.text


_SECTION = re.compile(
    r"^\s*(?:#+\s*|\*\*)?(title|applies[ _]when|when it applies|steps|pitfalls)"
    r"\s*(?:\*\*)?\s*:?\s*(?:\*\*)?\s*(.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def parse_strategy(text: str) -> Strategy:
    """Parse a strategy from a model's free-text reply, tolerantly.

    Accepts a JSON object (bare, fenced or embedded in prose) with the
    :class:`Strategy` fields, or labelled sections (``Title:``, ``Applies when:``,
    ``Steps:``, ``Pitfalls:``) with bulleted or numbered items. Small models'
    habits are forgiven: steps written as objects are flattened to text, and a
    JSON object cut off by the token cap is closed, dropping its last item.

    Args:
        text: The model's reply.

    Returns:
        The parsed strategy.

    Raises:
        ValueError: If no strategy can be read from the text.
    """
    data = _json_object(text)
    if data is not None:
        try:
            return Strategy.model_validate(_normalize_keys(data))
        except ValidationError:
            pass  # fall through to the sectioned format
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            current = _canonical_key(header.group(1))
            sections[current] = [header.group(2)] if header.group(2).strip() else []
        elif current and line.strip():
            sections[current].append(_BULLET.sub("", line).strip())
    try:
        return Strategy(
            title=" ".join(sections.get("title", [])),
            applies_when=" ".join(sections.get("applies_when", [])),
            steps=sections.get("steps", []),
            pitfalls=sections.get("pitfalls", []),
        )
    except ValidationError as exc:
        raise ValueError(f"could not parse a strategy from the model's reply: {exc}") from exc


# After a backslash: \u and 4 hex digits, a run of letters (LaTeX, or \n and a word), or 1 char.
_BACKSLASH = re.compile(r"\\(u[0-9a-fA-F]{4}|[a-zA-Z]+|.)", re.DOTALL)
_JSON_ESCAPE = re.compile(r'["\\/]|u[0-9a-fA-F]{4}|[bfnrt][a-zA-Z]*')
# LaTeX commands that JSON would read as \b, \f, \n, \r or \t followed by letters.
_LATEX_COMMANDS = frozenset(
    {
        "begin",
        "binom",
        "boxed",
        "frac",
        "neq",
        "right",
        "rightarrow",
        "text",
        "textbf",
        "tfrac",
        "times",
    }
)


def _escape_latex(text: str) -> str:
    r"""Double the backslashes of LaTeX written inside JSON strings, e.g. ``\(3 \times 4\)``."""

    def repair(match: re.Match[str]) -> str:
        escape = match.group(1)
        if _JSON_ESCAPE.fullmatch(escape) and escape not in _LATEX_COMMANDS:
            return match.group(0)
        return "\\\\" + escape

    return _BACKSLASH.sub(repair, text)


def _json_object(text: str) -> dict[str, Any] | None:
    """The reply's JSON object; one cut off by the token cap is closed and its last item dropped."""
    text = _escape_latex(text)
    start = text.find("{")
    if start < 0:
        return None
    try:
        # raw_decode stops at the object's end: prose or a stray "}" may follow it.
        data, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        pass
    else:
        return data if isinstance(data, dict) else None
    data = parse_partial_json(text[start:])
    if not isinstance(data, dict) or not data:
        return None
    # The last item written is the one the cap cut, so it is probably incomplete.
    last = next(reversed(data))
    if isinstance(data[last], list) and len(data[last]) > 1:
        data[last] = data[last][:-1]
    return data


_INDEX_KEYS = {"step", "number", "index", "id", "n"}


def _item_text(item: Any) -> str:
    # Small models write steps as objects, e.g. {"formula": "a = b * c", "result": 6}.
    if isinstance(item, dict):
        values = [v for k, v in item.items() if str(k).lower() not in _INDEX_KEYS]
        return " = ".join(str(v) for v in values if str(v).strip())
    return str(item)


def _canonical_key(key: str) -> str:
    key = key.lower().replace(" ", "_")
    return "applies_when" if key in {"applies_when", "when_it_applies"} else key


def _normalize_keys(data: dict[str, Any]) -> dict[str, Any]:
    normalized = {_canonical_key(str(k)): v for k, v in data.items()}
    for key in ("steps", "pitfalls"):
        value = normalized.get(key)
        if isinstance(value, (str, dict)):
            value = [value]
        if isinstance(value, list):
            normalized[key] = [_item_text(item) for item in value]
    return normalized
