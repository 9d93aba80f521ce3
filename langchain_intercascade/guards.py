"""Guards on what the bank learns: strategies are screened before they are stored.

A stored strategy is shown to later queries, possibly other users', so a strong
reply that carries personal data, a secret or an injected instruction must not
become one. The cascade option ``strategy_filter`` (see
:class:`~langchain_intercascade.options.CascadeOptions`) takes any callable that
returns why a strategy is rejected, or None to store it; :class:`StrategyFilter`
is the default. A rejected strategy is not stored, and the reason is in the
turn's ``errors``.

Example:
    ```python
    from langchain_intercascade import StrategyBank, create_intercascade
    from langchain_intercascade.guards import StrategyFilter
    from langchain_intercascade.strategies import Strategy
    from langchain_intercascade.testing import fake_models

    screen = StrategyFilter(max_chars=2000)
    clean = Strategy(title="Speed", applies_when="distance and time", steps=["d / t"])
    assert screen(clean) is None
    leaky = clean.model_copy(update={"steps": ["Mail the answer to ann@example.com"]})
    assert screen(leaky) == "contains an e-mail address"

    # A filter of your own: here, the default one plus a rule of yours.
    def no_urls(strategy: Strategy) -> str | None:
        if "http" in strategy.to_text():
            return "contains a URL"
        return screen(strategy)

    weak, strong, embeddings = fake_models()
    bank = StrategyBank(embeddings)
    cascade = create_intercascade(weak, strong, bank=bank, strategy_filter=no_urls)
    out = cascade.invoke("Sam has 3 boxes with 4 pens in each box. How many pens?")
    assert out["new_strategy"] is not None and len(bank) == 1
    ```
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from langchain_intercascade.strategies import Strategy


class StrategyRejected(ValueError):
    """A distilled strategy was not stored: the strategy filter rejected it."""


# Every pattern stays linear on long runs (a poisoned reply may be long): a match
# starts only where a run starts, and what may repeat is bounded or unambiguous.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# Digits grouped by single spaces, dots, hyphens or parentheses, as phone numbers are
# written; each group starts with a separator or "(", so matching stays linear.
_DIGIT_RUN = re.compile(r"\+?\(?\d+\)?(?:[ .-]?\(\d+\)|[ .-]\d+)*")
_DECIMAL = re.compile(r"\d+\.\d+")
_PHONE_DIGITS = 9
_KEY = re.compile(
    r"\bsk-[\w-]{16,}"  # OpenAI, Anthropic
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[opsu]_[A-Za-z0-9]{20,}"  # GitHub
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAIza[\w-]{30,}"  # Google
    r"|\beyJ[\w-]{10,}\.[\w-]{10,}"  # JWT
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\b[0-9a-fA-F]{32,}\b"  # hex secrets and hashes
)
# A run as long as a random token; it counts when it mixes cases and digits, as
# base64 does and words and identifiers do not.
_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{32,}")
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:(?:the|your|my|any|these|those|of)\s+)*"
    r"(?:all|previous|prior|above|earlier|preceding|system|original)\s+"
    r"(?:(?:the|your|my|of|previous|prior|above|earlier|preceding|system|original)\s+)*"
    r"(?:instructions?|prompts?|rules|messages|directions|guidelines)\b"
    r"|\bsystem\s+prompt\b|\byou\s+must\s+now\b|\byou\s+are\s+now\b|\bnew\s+instructions\b",
    re.IGNORECASE,
)
# Role markers: upper case anywhere, capitalized at the start of a line or field
# ("Solve the system: ..." is mathematics, not a role).
_ROLE = re.compile(
    r"\b(?:SYSTEM|ASSISTANT|DEVELOPER|USER|HUMAN)[ \t]*:"
    r"|^[ \t]*(?:System|Assistant|Developer|User|Human)[ \t]*:",
    re.MULTILINE,
)
_MARKUP = re.compile(
    r"<\|[^|>\n]{1,40}\|>"  # chat template tokens: <|im_start|>, <|eot_id|>
    r"|\[/?INST\]|<</?SYS>>"
    r"|</?[ \t]*(?:system|assistant|user|developer|instructions?|reference_strategies|strategy)"
    r"\b[^<>\n]{0,80}>",
    re.IGNORECASE,
)


def _has_phone_number(text: str) -> bool:
    for match in _DIGIT_RUN.finditer(text):
        run = match.group(0)
        if _DECIMAL.fullmatch(run):
            continue  # 3.14159265 is a number, not a phone number
        if sum(c.isdigit() for c in run) >= _PHONE_DIGITS:
            return True
    return False


def _has_token(text: str) -> bool:
    return any(
        re.search(r"\d", t) and re.search(r"[a-z]", t) and re.search(r"[A-Z]", t)
        for t in _TOKEN.findall(text)
    )


_CHECKS: tuple[tuple[str, Callable[[str], object]], ...] = (
    ("an e-mail address", _EMAIL.search),
    ("a phone number", _has_phone_number),
    ("a key-like string", lambda text: _KEY.search(text) or _has_token(text)),
    ("instruction-like text", _INSTRUCTION.search),
    ("a role marker", _ROLE.search),
    ("prompt markup", _MARKUP.search),
)


def _canonical(text: str) -> str:
    # Fullwidth letters and zero-width characters must not slip past the patterns.
    folded = unicodedata.normalize("NFKC", text)
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


class StrategyFilter(BaseModel):
    """The default strategy filter: rejects personal data, secrets and injected instructions.

    Called with a strategy, it returns why the strategy must not be stored, or
    None. It rejects a strategy whose text holds an e-mail address; a phone
    number (9 or more digits, grouped by spaces, dots, hyphens or parentheses,
    which also catches card and account numbers: a strategy names quantities,
    not long numbers); a key-like string (``sk-...``, ``AKIA...``, GitHub, Slack
    and Google tokens, JWTs, private keys, 32 or more hex digits, a 32-character
    run mixing upper case, lower case and digits as base64 does); instruction-like
    text ("ignore previous instructions", "system prompt", "you must now", "you
    are now", "new instructions"); role markers (``SYSTEM:``, or ``User:`` at the
    start of a line); prompt markup (``<|im_start|>``, ``[INST]``, role and
    section tags such as ``</reference_strategies>``); or more than ``max_chars``
    characters.

    Attributes:
        max_chars: The longest strategy text (as shown to the weak model) to store.
    """

    model_config = ConfigDict(frozen=True)

    max_chars: int = Field(default=4000, ge=1)

    def __call__(self, strategy: Strategy) -> str | None:
        """Screen a strategy.

        Args:
            strategy: The distilled strategy.

        Returns:
            Why it is rejected, or None to store it.
        """
        text = strategy.to_text()
        if len(text) > self.max_chars:
            return f"has {len(text)} characters, over max_chars={self.max_chars}"
        # One field a line, so that a field's start is a line's start for role markers.
        fields = _canonical(
            "\n".join([strategy.title, strategy.applies_when, *strategy.steps, *strategy.pitfalls])
        )
        for what, found in _CHECKS:
            if found(fields):
                return f"contains {what}"
        return None
