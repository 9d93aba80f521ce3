"""The `intercascade` command line, on the scripted fake models (--fake)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langchain_intercascade.cli import app
from langchain_intercascade.server import CascadeSettings

FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CascadeSettings.model_fields:
        monkeypatch.delenv(f"INTERCASCADE_{name.upper()}", raising=False)


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.output


def test_help_lists_every_command() -> None:
    out = _ok("--help")
    for command in ("ask", "run", "eval", "demo", "models", "bank"):
        assert command in out
    assert all(c in _ok("bank", "--help") for c in ("ls", "search", "stats", "export", "rm"))


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
    assert both.exit_code == 2 and "--threshold or --calibrate, not both" in both.output


def test_bank_commands_round_trip(tmp_path: Path) -> None:
    bank = str(tmp_path / "bank")
    _ok("ask", "--fake", "--bank", bank, FIRST)
    listing = _ok("bank", "ls", "--fake", "--bank", bank)
    assert "1 strategies" in listing and "Total from" in listing
    assert "Total from" in _ok("bank", "search", "--fake", "--bank", bank, RELATED)
    assert "strategies: 1" in _ok("bank", "stats", "--fake", "--bank", bank)

    exported = tmp_path / "strategies.jsonl"
    _ok("bank", "export", "--fake", "--bank", bank, str(exported))
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
        (["bank", "ls", "--fake"], "no bank folder"),
        (["bank", "ls", "--fake", "--bank", "/no/such/bank"], "no bank at"),
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
    assert result.exit_code == 2 and "line 2: not JSON" in result.output


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
