"""What the commands share: the stderr console, the common options, settings resolution."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast, get_args

import typer
from rich.console import Console

from langchain_intercascade.evaluation.data import DataFormat
from langchain_intercascade.server import Cascade
from langchain_intercascade.settings import CascadeSettings, ConfigurationError

if TYPE_CHECKING:
    from langchain_intercascade.evaluation import Example
    from langchain_intercascade.labels import LabelSet

# soft_wrap: a message is one line however long its paths are (greppable, copyable).
console = Console(stderr=True, soft_wrap=True)

FLAG = ""
"""The metavar of a flag: typer's rich help would label it ``<bool>`` as if it took a value."""

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        metavar="FILE",
        help="JSON settings file (fields: weak_model, strong_model, fake, bank_dir, "
        "calibration, labels, max_tokens and the text-form cascade options, e.g. threshold, k).",
    ),
]
WeakOpt = Annotated[
    str | None,
    typer.Option("--weak", metavar="MODEL", help="Weak model: a GGUF file or module:attribute."),
]
StrongOpt = Annotated[
    str | None,
    typer.Option(
        "--strong", metavar="MODEL", help="Strong model: a GGUF file or module:attribute."
    ),
]
FakeOpt = Annotated[
    bool,
    typer.Option("--fake", metavar=FLAG, help="Use scripted fake models (no model files needed)."),
]
BankOpt = Annotated[
    Path | None,
    typer.Option(
        "--bank",
        metavar="FOLDER",
        help="Strategy bank folder: loaded if present, saved after the run.",
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        metavar="NUMBER",
        help="Accept the weak answer at this confidence or above (uncalibrated).",
    ),
]
CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration",
        exists=True,
        dir_okay=False,
        metavar="FILE",
        help="The threshold calibrated by `intercascade calibrate` (instead of --threshold).",
    ),
]
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        exists=True,
        dir_okay=False,
        metavar="FILE",
        help="A label task's labels (a JSON list or one per line): DATA is then CSV or JSONL "
        "messages with --text-key and --label-key, answered and graded as labels.",
    ),
]
TextKeyOpt = Annotated[
    str, typer.Option(metavar="KEY", help="With --labels: the message's column.")
]
LabelKeyOpt = Annotated[
    str, typer.Option(metavar="KEY", help="With --labels: the gold label's column.")
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(metavar="NAME", help="Only this bank namespace (default: all)."),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _resolve_settings(
    config: Path | None,
    *,
    weak: str | None = None,
    strong: str | None = None,
    fake: bool = False,
    bank: Path | None = None,
    threshold: float | None = None,
    calibration: Path | None = None,
    labels: Path | None = None,
) -> CascadeSettings:
    """Settings from the file, then the environment, then the flags given.

    Raises:
        ConfigurationError: If a source holds an invalid value.
    """
    flags = {
        "weak_model": weak,
        "strong_model": strong,
        "fake": fake or None,
        "bank_dir": bank,
        "threshold": threshold,
        "calibration": calibration,
        "labels": labels,
    }
    try:
        # Each source is read whole, so its calibration file becomes its threshold,
        # which a later source's threshold or calibration then overrides.
        layers = [
            CascadeSettings.from_file(config) if config else CascadeSettings(),
            CascadeSettings.from_env(),
            CascadeSettings.model_validate({k: v for k, v in flags.items() if v is not None}),
        ]
        values: dict[str, Any] = {}
        for layer in layers:
            values.update(layer.given())
        return CascadeSettings.model_validate(values)
    except ConfigurationError:
        raise
    except ValueError as exc:  # pydantic's, on the flags
        raise ConfigurationError(f"invalid settings: {exc}") from exc


def _settings(config: Path | None, **flags: Any) -> CascadeSettings:
    """:func:`_resolve_settings`, failing the command on invalid settings."""
    try:
        return _resolve_settings(config, **flags)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc


def _examples(
    data: Path,
    data_format: str,
    label_set: LabelSet | None,
    *,
    text_key: str = "text",
    label_key: str = "label",
) -> list[Example]:
    """The questions in ``data``: labelled messages for a label task, else ``data_format``'s."""
    from langchain_intercascade.evaluation import load_examples, load_labelled

    try:
        if label_set is not None:
            return load_labelled(data, label_set, text_key=text_key, label_key=label_key)
        if data_format not in get_args(DataFormat):
            raise ValueError(
                f"--format must be one of {', '.join(get_args(DataFormat))}, got {data_format!r}"
            )
        return load_examples(data, cast(DataFormat, data_format))
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from exc


def _label_set(settings: CascadeSettings) -> LabelSet | None:
    """The settings' label task, failing the command on an unreadable label file."""
    try:
        return settings.label_set()
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc


def _threshold_text(threshold: float, calibrated: bool) -> str:
    """The threshold in force, and whether it was calibrated (and how to calibrate it)."""
    if calibrated:
        return f"threshold {threshold:.2f} (calibrated)"
    return f"threshold {threshold:.2f} (uncalibrated: run intercascade calibrate)"


def _messages(question: str, system: str | None) -> list[tuple[str, str]]:
    return [("system", system), ("human", question)] if system else [("human", question)]


def _open(settings: CascadeSettings) -> Cascade:
    """The configured cascade, built under a spinner (loading models takes a while)."""
    with console.status("loading models and bank..."):
        try:
            return Cascade(settings)
        except ConfigurationError as exc:
            raise _fail(str(exc)) from exc
