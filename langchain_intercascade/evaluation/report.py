"""A run's result and its outputs: :class:`EvaluationResult`, markdown tables, JSON, plots."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from langchain_intercascade.calibration import ThresholdCalibration
from langchain_intercascade.evaluation.metrics import (
    ConfigMetrics,
    Difference,
    JudgeQuality,
    RollingMetrics,
    config_metrics,
    paired_differences,
    reliability,
    rolling_metrics,
)
from langchain_intercascade.evaluation.records import (
    LABELS,
    ConfigName,
    EvaluationConfig,
    QueryRecord,
    TokenCounts,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class EvaluationResult(BaseModel):
    """Everything an evaluation measured.

    Attributes:
        config: The configuration it ran with.
        n_examples: Questions in the stream.
        metrics: Per configuration, over the whole stream.
        differences: Paired bootstrap differences between configurations.
        rolling: Per configuration, over stream position.
        judge: The judge's reliability (weak answers judged by either cascade).
        records: Per configuration, one record per question.
        calibration: How ``config.options.threshold`` was calibrated on held-out
            questions (None when it was given).
    """

    config: EvaluationConfig
    n_examples: int
    metrics: dict[ConfigName, ConfigMetrics]
    differences: list[Difference]
    rolling: dict[ConfigName, RollingMetrics]
    judge: JudgeQuality
    records: dict[ConfigName, list[QueryRecord]]
    calibration: ThresholdCalibration | None = None

    model_config = ConfigDict(ser_json_inf_nan="constants")

    @classmethod
    def from_records(
        cls,
        records: dict[ConfigName, list[QueryRecord]],
        config: EvaluationConfig,
        n_examples: int,
        calibration: ThresholdCalibration | None = None,
    ) -> EvaluationResult:
        """Compute every metric from the records.

        Args:
            records: Each configuration's records, in stream order.
            config: The run's configuration.
            n_examples: Questions in the stream.
            calibration: How the threshold was calibrated, if it was.

        Returns:
            The result.
        """
        judged = [
            r
            for name in ("cascade", "intercascade")
            for r in records.get(name, [])
            if r.confidence is not None and r.weak_correct is not None
        ]
        return cls(
            config=config,
            n_examples=n_examples,
            metrics={name: config_metrics(rs, config) for name, rs in records.items()},
            differences=paired_differences(records, config),
            rolling={name: rolling_metrics(rs, config.window) for name, rs in records.items()},
            judge=reliability(
                [r.confidence or 0.0 for r in judged],
                [bool(r.weak_correct) for r in judged],
                config.reliability_bins,
            ),
            records=records,
            calibration=calibration,
        )

    def to_markdown(self) -> str:
        """Render the headline metrics and differences as markdown tables.

        Returns:
            The markdown.
        """
        currency = self.config.prices.currency
        lines = [
            f"| configuration | n | system accuracy [{self.config.confidence_level:.0%} CI] "
            "| weak accuracy | weak acc. with / without strategies (n with) "
            f"| strong-call rate | weak tokens | strong tokens | fee per 1k queries ({currency}) "
            "| model s/query |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in self.metrics.items():
            acc = m.system_accuracy
            with_without = (
                f"{_pct(m.weak_accuracy_with_strategies)} / "
                f"{_pct(m.weak_accuracy_without_strategies)} ({m.n_with_strategies})"
            )
            lines.append(
                f"| {LABELS[name]} | {m.n} | {acc.estimate:.1%} [{acc.low:.1%}, {acc.high:.1%}] "
                f"| {_pct(m.weak_accuracy)} | {with_without} | {m.strong_call_rate:.1%} "
                f"| {_tokens(m.tokens, 'weak')} | {_tokens(m.tokens, 'strong')} "
                f"| {1000 * m.fee_per_query:.3f} | {m.latency_mean_s:.1f} |"
            )
        for name, m in self.metrics.items():
            if m.distillations_skipped:
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(m.distillations_skipped.items()))
                lines += ["", f"{LABELS[name]}: strong answers not distilled: {reasons}."]
        lines += [
            "",
            f"| difference | metric | n | estimate [{self.config.confidence_level:.0%} CI] |",
            "|---|---|---|---|",
        ]
        for d in self.differences:
            iv = d.interval
            scale = 1000.0 if d.metric == "fee_per_query" else 100.0
            unit = f" {currency}/1k" if d.metric == "fee_per_query" else " pts"
            lines.append(
                f"| {LABELS[d.a]} - {LABELS[d.b]} | {d.metric} | {d.n} "
                f"| {scale * iv.estimate:+.2f}{unit} [{scale * iv.low:+.2f}, "
                f"{scale * iv.high:+.2f}] |"
            )
        j = self.judge
        lines += [
            "",
            f"Judge: AUROC {_num(j.auroc)}, ECE {_num(j.ece)} over {j.n} judged weak answers; "
            f"threshold {self.config.options.threshold_value}. Prices: {self.config.prices.as_of}.",
        ]
        if (c := self.calibration) is not None:
            lines.append(
                f"Threshold calibrated on {c.n_samples} held-out questions at alpha {c.alpha}, "
                f"delta {c.delta}: {c.n_accepted} accepted ({c.n_errors_accepted} wrong), "
                f"risk upper bound {c.risk_upper_bound:.3f}"
                + (
                    " (no threshold meets alpha: everything is deferred)."
                    if math.isinf(c.threshold)
                    else "."
                )
            )
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path, *, plots: bool = True) -> Path:
        """Write ``results.json``, ``results.md`` and (with matplotlib) the PNG plots.

        Without matplotlib the plots are skipped with a warning naming the
        ``eval`` extra; the JSON and markdown are written regardless.

        Args:
            folder: The output folder (created if missing).
            plots: Also draw ``accuracy_vs_cost.png``, ``over_stream.png`` and
                ``reliability.png``.

        Returns:
            The folder.
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        (target / "results.json").write_text(self.model_dump_json(indent=1), encoding="utf-8")
        (target / "results.md").write_text(self.to_markdown(), encoding="utf-8")
        if plots:
            try:
                plot_results(self, target)
            except ImportError as exc:
                warnings.warn(f"{target}: results written without plots; {exc}", stacklevel=2)
        return target


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _tokens(tokens: TokenCounts, model: str) -> str:
    total = sum(c["total_tokens"] for c in tokens.get(model, {}).values())
    return f"{total:,}"


def plot_results(result: EvaluationResult, folder: Path) -> list[Path]:
    """Draw the three plots into ``folder``.

    The figures are matplotlib ``Figure`` objects rather than pyplot's, so
    drawing touches neither pyplot's state nor the process's backend.

    Args:
        result: The evaluation's result.
        folder: Where to write the PNG files.

    Returns:
        The files written.

    Raises:
        ImportError: If matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'plots need matplotlib: pip install "langchain-intercascade[eval]"'
        ) from exc

    plots = (
        ("accuracy_vs_cost.png", (6.0, 4.5), _draw_accuracy_vs_cost),
        ("over_stream.png", (7.0, 9.0), _draw_over_stream),
        ("reliability.png", (5.0, 5.0), _draw_reliability),
    )
    written = []
    for filename, size, draw in plots:
        fig = Figure(figsize=size)
        draw(fig, result)
        fig.tight_layout()
        written.append(folder / filename)
        fig.savefig(written[-1], dpi=120)
    return written


def _draw_accuracy_vs_cost(fig: Figure, result: EvaluationResult) -> None:
    ax = fig.subplots()
    for name, m in result.metrics.items():
        acc = m.system_accuracy
        x = 1000 * m.fee_per_query
        ax.errorbar(
            x,
            acc.estimate,
            yerr=[[acc.estimate - acc.low], [acc.high - acc.estimate]],
            fmt="o",
            capsize=4,
            label=LABELS[name],
        )
        ax.annotate(f"{m.strong_call_rate:.0%} strong", (x, acc.estimate), fontsize=8)
    ax.set_xlabel(f"fee per 1,000 queries ({result.config.prices.currency})")
    ax.set_ylabel("system accuracy")
    ax.set_title("Accuracy vs cost")
    ax.legend()


def _draw_over_stream(fig: Figure, result: EvaluationResult) -> None:
    axes = fig.subplots(3, 1, sharex=True)
    for name, roll in result.rolling.items():
        if name in ("cascade", "intercascade"):
            axes[0].plot(roll.positions, roll.strong_call_rate, label=LABELS[name])
        if roll.weak_accuracy:
            weak_positions = [
                r.position for r in result.records[name] if r.weak_correct is not None
            ]
            axes[1].plot(weak_positions, roll.weak_accuracy, label=LABELS[name])
        if name == "intercascade":
            axes[2].plot(roll.positions, roll.bank_size, label=LABELS[name])
    window = result.config.window
    axes[0].set_ylabel(f"strong-call rate\n(last {window})")
    axes[1].set_ylabel(f"weak accuracy\n(last {window})")
    axes[2].set_ylabel("strategies in bank")
    axes[2].set_xlabel("stream position")
    for ax in axes:
        ax.legend(fontsize=8)


def _draw_reliability(fig: Figure, result: EvaluationResult) -> None:
    ax = fig.subplots()
    bins = [b for b in result.judge.bins if b.count]
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.bar(
        [(b.low + b.high) / 2 for b in bins],
        [b.accuracy or 0.0 for b in bins],
        width=[b.high - b.low for b in bins],
        edgecolor="black",
        alpha=0.6,
        label="weak accuracy in bin",
    )
    for b in bins:
        ax.annotate(str(b.count), ((b.low + b.high) / 2, (b.accuracy or 0.0) + 0.02), ha="center")
    ax.axvline(result.config.options.threshold_value, color="red", linewidth=1, label="threshold")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("judge confidence")
    ax.set_ylabel("fraction right")
    ax.set_title(f"Judge reliability (AUROC {_num(result.judge.auroc)})")
    ax.legend(fontsize=8, loc="upper left")
