"""Settings of a served or command-line cascade: models, bank and options.

:class:`CascadeSettings` is read from ``INTERCASCADE_*`` environment variables
(:meth:`CascadeSettings.from_env`), from a JSON file of the same field names
(:meth:`CascadeSettings.from_file`) or from CLI flags; the cascade options among
them are the fields of :class:`~langchain_intercascade.options.CascadeOptions`
that have a text form (``threshold``, ``k``, ``score_threshold``, ``distill``,
``distill_mode``, ``store_source_query``, ``search_type``, ``strong_threshold``,
``max_input_chars``), and ``calibration``, a JSON file written by
``intercascade calibrate`` (a :class:`~langchain_intercascade.calibration.ThresholdCalibration`)
that sets ``threshold``:

================================= ===========================================
``INTERCASCADE_WEAK_MODEL``       weak model: a GGUF file or ``module:attribute``
``INTERCASCADE_STRONG_MODEL``     strong model: likewise
``INTERCASCADE_FAKE``             ``1``: scripted models, no files needed
``INTERCASCADE_BANK``             where the bank lives: ``local`` (default) or ``store``
``INTERCASCADE_BANK_DIR``         folder a ``local`` bank is loaded from and saved to
``INTERCASCADE_MAX_TOKENS``       generation cap of local GGUF models
``INTERCASCADE_CALIBRATION``      calibration file whose threshold the cascade uses
``INTERCASCADE_LABELS``           a label task's label file
``INTERCASCADE_TEACHER_RECORDS``  record the teacher's answers: a JSONL file, or ``store``
``INTERCASCADE_<OPTION>``         any text-form cascade option, e.g. ``INTERCASCADE_K=3``
================================= ===========================================

Any other ``INTERCASCADE_*`` variable is an error naming it (a misspelt setting
would otherwise be ignored), except those read elsewhere, listed in
:data:`OTHER_VARIABLES`.

``module:attribute`` names a chat model object, or a function that returns one,
so any LangChain chat model can be served.

A ``local`` bank lives in this process: in memory, or in ``INTERCASCADE_BANK_DIR``
when that is set. A ``store`` bank lives in the LangGraph server's own store
(``langgraph.store.json`` sets ``INTERCASCADE_BANK=store``): only the served graph
can open it, and it cannot have a bank folder too (see
:mod:`~langchain_intercascade.server.store`). ``INTERCASCADE_TEACHER_RECORDS=store``
likewise keeps the teacher's records in the server's store.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langgraph.store.base import BaseStore
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.calibration import ThresholdCalibration
from langchain_intercascade.labels import LabelSet
from langchain_intercascade.options import CascadeOptions, fold_options
from langchain_intercascade.teacher_records import (
    JsonlTeacherRecorder,
    StoreTeacherRecorder,
    TeacherRecorder,
)
from langchain_intercascade.testing import BagOfWordsEmbeddings, fake_label_models, fake_models

ENV_PREFIX = "INTERCASCADE_"

# Options a file or variable can set: those with a text form (the rest are objects).
TEXT_OPTIONS = tuple(
    name for name, field in CascadeOptions.model_fields.items() if not field.exclude
)


OTHER_VARIABLES = {
    "API_KEYS": "the example server auth's API keys (server/auth.py)",
    "MODEL_DIR": "where downloaded GGUF models are kept (models/download.py)",
    "GSM8K": "the GSM8K test file of the benchmarks",
    "BANKING77": "the BANKING77 folder of the intents benchmark",
    "CACHE": "the model-call cache of benchmarks/run_benchmark.py",
    "RESULTS_DIR": "the run folder the results notebook reads",
    "LOCAL_NOTEBOOKS": "1: the quickstart notebook runs on local GGUF models",
    "SMOKE_MODEL": "the GGUF model of the integration smoke tests",
}
"""``INTERCASCADE_*`` variables read elsewhere: server auth, notebooks, benchmarks and tests."""


BankPlace = Literal["local", "store"]
"""Where the bank lives: in this process (``local``) or in the LangGraph server's store."""

_SERVED_ONLY = "only the served graph can open it"


class ConfigurationError(ValueError):
    """The cascade's configuration is incomplete or invalid."""


class CascadeSettings(BaseModel):
    """Everything needed to build a served or command-line cascade.

    Option fields of :class:`CascadeOptions` may be given flat
    (``CascadeSettings(threshold=0.7)``); they are kept in :attr:`options`. So may
    ``calibration``, the path of a :class:`ThresholdCalibration` saved as JSON
    (by ``intercascade calibrate``): it is read into ``options.threshold``, and
    cannot be given together with ``threshold``.

    Attributes:
        weak_model: The weak model: a GGUF file, or ``module:attribute`` naming a
            chat model or a function returning one.
        strong_model: The strong model, likewise.
        fake: Use the scripted models of :func:`~.testing.fake_models` instead
            (:func:`~.testing.fake_label_models` for a label task).
        bank: Where the strategy bank lives: ``local``, in this process (in
            memory, or in :attr:`bank_dir`), or ``store``, in the LangGraph
            server's store, which only the served graph can open.
        bank_dir: Load a ``local`` strategy bank from this folder (when it holds
            one) and save it there; None keeps the bank in memory.
        max_tokens: Generation cap of GGUF models.
        labels: A label task's label file (a JSON list, or one label per line):
            the cascade answers with one of its labels, with the options of
            :meth:`LabelSet.options <langchain_intercascade.labels.LabelSet.options>`
            under the options given here.
        teacher_records: Record the teacher's answers (the option ``record_to``):
            to a JSONL file (one process), or ``store``, the LangGraph server's
            store, which only the served graph can open; None records nothing.
        options: The cascade's options (:meth:`cascade_options` adds the
            teacher's recorder).
    """

    model_config = ConfigDict(extra="forbid")

    weak_model: str | None = None
    strong_model: str | None = None
    fake: bool = False
    bank: BankPlace = "local"
    bank_dir: Path | None = None
    max_tokens: int = Field(default=384, ge=1)
    labels: Path | None = None
    teacher_records: Literal["store"] | Path | None = None
    options: CascadeOptions = Field(default_factory=CascadeOptions)

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        return fold_options(_read_calibration(data))

    @model_validator(mode="after")
    def _one_bank(self) -> CascadeSettings:
        if self.bank == "store" and self.bank_dir is not None:
            raise ValueError(
                f"the bank is in the server's store ({ENV_PREFIX}BANK=store): "
                f"give it no bank folder ({ENV_PREFIX}BANK_DIR)"
            )
        return self

    @model_validator(mode="after")
    def _one_recorder(self) -> CascadeSettings:
        if self.teacher_records is not None and self.options.record_to is not None:
            raise ValueError("give teacher_records or the option record_to, not both")
        return self

    @model_validator(mode="after")
    def _label_task(self) -> CascadeSettings:
        label_set = self.label_set()
        if label_set is not None:
            explicit = {name: getattr(self.options, name) for name in self.options.model_fields_set}
            self.options = label_set.options(**explicit)
        return self

    def cascade_options(self, store: BaseStore | None = None) -> CascadeOptions:
        """The cascade's options, with the recorder :attr:`teacher_records` names.

        Build them once per cascade: a recorder counts what it skipped and failed.

        Args:
            store: The LangGraph server's store, for ``teacher_records="store"``.

        Returns:
            :attr:`options`, recording as :attr:`teacher_records` says.

        Raises:
            ConfigurationError: If the records go to the server's store and no
                store was given.
        """
        if self.teacher_records is None:
            return self.options
        recorder: TeacherRecorder
        if self.teacher_records != "store":
            recorder = JsonlTeacherRecorder(self.teacher_records)
        elif store is None:
            raise ConfigurationError(
                f"the teacher's records go to the LangGraph server's store "
                f"({ENV_PREFIX}TEACHER_RECORDS=store): {_SERVED_ONLY}"
            )
        else:
            recorder = StoreTeacherRecorder(store)
        return self.options.model_copy(update={"record_to": recorder})

    def label_set(self) -> LabelSet | None:
        """The label task's labels, read from :attr:`labels` (None without a label file).

        Raises:
            ConfigurationError: If the file cannot be read as labels.
        """
        if self.labels is None:
            return None
        try:
            return LabelSet.from_file(self.labels)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the label file {self.labels}: {exc}") from exc

    def given(self) -> dict[str, Any]:
        """The fields set explicitly, flat (options included), for layering sources."""
        own = self.model_dump(exclude_unset=True, exclude={"options"})
        return {**own, **self.options.model_dump(exclude_unset=True)}

    @classmethod
    def known_variables(cls) -> frozenset[str]:
        """Every ``INTERCASCADE_*`` variable this project reads: settings, options and others."""
        names = [*(n for n in cls.model_fields if n != "options"), "calibration", *TEXT_OPTIONS]
        return frozenset(ENV_PREFIX + n.upper() for n in [*names, *OTHER_VARIABLES])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CascadeSettings:
        """Read the settings from ``INTERCASCADE_*`` environment variables.

        Args:
            environ: The variables; None reads ``os.environ``.

        Returns:
            The settings.

        Raises:
            ConfigurationError: If a variable's value is invalid, or an
                ``INTERCASCADE_*`` variable is unknown.
        """
        environ = os.environ if environ is None else environ
        unknown = sorted(
            name
            for name in environ
            if name.startswith(ENV_PREFIX) and name.upper() not in cls.known_variables()
        )
        if unknown:
            raise ConfigurationError(
                f"unknown {ENV_PREFIX}* variable(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(cls.known_variables()))})"
            )

        def read(names: Any) -> dict[str, str]:
            return {
                n: environ[ENV_PREFIX + n.upper()]
                for n in names
                if environ.get(ENV_PREFIX + n.upper())
            }

        try:
            options = CascadeOptions.model_validate_strings(read(TEXT_OPTIONS))
            own = read([*(n for n in cls.model_fields if n != "options"), "calibration"])
            return cls.model_validate({**own, **options.model_dump(exclude_unset=True)})
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {ENV_PREFIX}* settings: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CascadeSettings:
        """Read the settings from a JSON file of the same field names, flat.

        Args:
            path: The JSON file.

        Returns:
            The settings.

        Raises:
            ConfigurationError: If the file is missing, not JSON, or invalid.
        """
        file = Path(path)
        try:
            return cls.model_validate_json(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read the settings file {file}: {exc}") from exc
        except ValidationError as exc:
            raise ConfigurationError(f"invalid settings in {file}: {exc}") from exc

    def models(self) -> tuple[BaseChatModel, BaseChatModel]:
        """Build the weak and strong models.

        Returns:
            The weak model and the strong model.

        Raises:
            ConfigurationError: If models are missing or cannot be loaded.
        """
        if self.fake:
            label_set = self.label_set()
            weak, strong, _ = fake_models() if label_set is None else fake_label_models(label_set)
            return weak, strong
        if not self.weak_model or not self.strong_model:
            raise ConfigurationError(
                "no models configured: set the weak and strong models (GGUF files or "
                f"module:attribute; {ENV_PREFIX}WEAK_MODEL/{ENV_PREFIX}STRONG_MODEL) "
                f"or use the scripted fake models ({ENV_PREFIX}FAKE=1, --fake)"
            )
        return self._model(self.weak_model, "weak"), self._model(self.strong_model, "strong")

    def _model(self, spec: str, role: Literal["weak", "strong"]) -> BaseChatModel:
        from langchain_intercascade.models import local_chat_model

        if Path(spec).expanduser().suffix.lower() == ".gguf":
            # Token logprobs let the default judge score the weak answer by token
            # probability (small models rate their own wrong answers highly); the strong
            # model writes strategies as plain-text JSON (grammar-forced tool calls ran
            # at ~2 tokens/s on CPU).
            options: dict[str, Any] = (
                {"logprobs": True} if role == "weak" else {"structured_output": False}
            )
            try:
                return local_chat_model(spec, max_tokens=self.max_tokens, **options)
            except (FileNotFoundError, ImportError) as exc:
                raise ConfigurationError(str(exc)) from exc
        return import_chat_model(spec)

    def embeddings(self) -> Embeddings:
        """The bank's embeddings: bag-of-words when fake, else :func:`~.models.local_embeddings`.

        Returns:
            The embeddings.

        Raises:
            ConfigurationError: If no offline embeddings are available.
        """
        from langchain_intercascade.models import local_embeddings

        if self.fake:
            return BagOfWordsEmbeddings()

        ggufs = [m for m in (self.weak_model, self.strong_model) if m and m.endswith(".gguf")]
        try:
            return local_embeddings(fallback_gguf=ggufs[0] if ggufs else None)
        except ImportError as exc:
            raise ConfigurationError(str(exc)) from exc

    def load_bank(self, embeddings: Embeddings | None = None) -> StrategyBank:
        """The ``local`` bank: from :attr:`bank_dir` if it holds one, else an empty bank.

        Args:
            embeddings: The bank's embeddings; None uses :meth:`embeddings`.

        Returns:
            The bank.

        Raises:
            ConfigurationError: If the folder holds a bank that cannot be read, or
                the bank is in the server's store (``bank="store"``).
        """
        if self.bank == "store":
            raise ConfigurationError(
                f"the bank is in the LangGraph server's store ({ENV_PREFIX}BANK=store): "
                f"{_SERVED_ONLY}"
            )
        embeddings = embeddings or self.embeddings()
        if self.bank_dir is None or not self.bank_dir.exists():
            return StrategyBank(embeddings=embeddings)
        try:
            return StrategyBank.load(self.bank_dir, embeddings=embeddings)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"cannot load the bank: {exc}") from exc


def _read_calibration(data: Any) -> Any:
    """Replace a ``calibration`` file among the settings by the threshold it holds."""
    if not isinstance(data, dict) or "calibration" not in data:
        return data
    rest = {key: value for key, value in data.items() if key != "calibration"}
    if data["calibration"] is None:
        return rest
    if rest.get("threshold") is not None:
        raise ValueError("give a threshold or a calibration, not both")
    path = Path(data["calibration"])
    try:
        threshold = ThresholdCalibration.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the calibration file {path}: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(f"{path} is not a threshold calibration: {exc}") from exc
    return {**rest, "threshold": threshold}


def import_chat_model(spec: str) -> BaseChatModel:
    """The chat model ``module:attribute`` names (a model, or a factory taking no arguments).

    Args:
        spec: ``module:attribute``, e.g. ``my_models:weak``.

    Returns:
        The chat model.

    Raises:
        ConfigurationError: If the spec is malformed, cannot be imported, or is not a chat model.
    """
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ConfigurationError(
            f"model {spec!r} is neither a .gguf file nor of the form module:attribute"
        )
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import the model {spec!r}: {exc}") from exc
    model = value() if callable(value) and not isinstance(value, BaseChatModel) else value
    if not isinstance(model, BaseChatModel):
        raise ConfigurationError(f"{spec!r} is not a chat model ({type(model).__name__})")
    return model
