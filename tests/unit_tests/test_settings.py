"""Settings from the environment (settings.py): an unknown INTERCASCADE_* variable is an error."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from langchain_intercascade.settings import CascadeSettings, ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_variable_is_an_error_naming_it():
    with pytest.raises(ConfigurationError, match="INTERCASCADE_TRESHOLD"):
        CascadeSettings.from_env({"INTERCASCADE_TRESHOLD": "0.5", "INTERCASCADE_K": "3"})


def test_variables_read_elsewhere_are_not_errors():
    environ = {"INTERCASCADE_GSM8K": "test.jsonl", "INTERCASCADE_API_KEYS": "k:t", "OTHER": "1"}
    assert CascadeSettings.from_env(environ).options.k == 2


def test_every_variable_the_project_names_is_known():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    # "INTERCASCADE_WEAK/STRONG_MODEL" in prose abbreviates two names.
    pattern = re.compile(r"INTERCASCADE_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_/])")
    suffixes = {".py", ".md", ".json", ".ipynb", ".yml", ".yaml", ".toml"}
    named = set()
    for name in files:
        path = ROOT / name
        # This file names a misspelt variable on purpose.
        if path.suffix in suffixes and path.is_file() and path != Path(__file__):
            named |= set(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    unknown = named - CascadeSettings.known_variables()
    assert named and not unknown, unknown


# -- the teacher's records -----------------------------------------------------


def test_teacher_records_to_a_file_record_each_deferred_turn(tmp_path: Path) -> None:
    from langchain_intercascade.server.graph import Cascade

    path = tmp_path / "teacher.jsonl"
    environ = {"INTERCASCADE_FAKE": "1", "INTERCASCADE_TEACHER_RECORDS": str(path)}
    cascade = Cascade(CascadeSettings.from_env(environ))
    question = "Sam has 3 baskets with 4 apples in each basket. How many apples does Sam have?"
    out = cascade.graph.invoke(question)
    assert out["route"] == "strong" and out["errors"] == []
    (record,) = cascade.options.record_to.read()  # type: ignore[union-attr]
    assert record.answer == out["answer"] and record.messages[-1].content == question
    assert path.is_file()
    assert cascade.chat_model().options.record_to is cascade.options.record_to


def test_teacher_records_in_the_store_need_the_served_graph() -> None:
    settings = CascadeSettings.from_env(
        {"INTERCASCADE_FAKE": "1", "INTERCASCADE_TEACHER_RECORDS": "store"}
    )
    with pytest.raises(ConfigurationError, match="TEACHER_RECORDS=store.*only the served graph"):
        settings.cascade_options()


def test_teacher_records_and_a_recorder_option_are_one_too_many(tmp_path: Path) -> None:
    from langchain_intercascade.teacher_records import JsonlTeacherRecorder

    with pytest.raises(ValueError, match="teacher_records or the option record_to"):
        CascadeSettings(
            teacher_records=tmp_path / "a.jsonl",
            record_to=JsonlTeacherRecorder(tmp_path / "b.jsonl"),
        )
