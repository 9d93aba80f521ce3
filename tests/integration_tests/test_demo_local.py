"""``intercascade demo`` end to end on a real GGUF model (the ``smoke`` model as both models).

The smoke model cannot triage tickets or do arithmetic; this checks that the command
runs both cascades on llama.cpp, for each task, prints a line per query and ends with
its summary.
"""

from __future__ import annotations

import pytest
from smoke_model import SMOKE, requires_smoke_model
from typer.testing import CliRunner

from langchain_intercascade.cli import app
from langchain_intercascade.demo import DEMO_TASKS

pytestmark = requires_smoke_model


@pytest.mark.parametrize("task", sorted(DEMO_TASKS))
def test_demo_runs_on_a_real_model_and_sums_up(task: str) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--task", task, "--weak", str(SMOKE), "--strong", str(SMOKE), "--limit", "2"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    first, second = DEMO_TASKS[task]().problems[:2]
    assert f"1. {first.question[:30]}" in result.output
    assert f"2. {second.question[:30]}" in result.output
    assert "Summary over 2 problems" in result.output
    assert "strong calls: Inter-Cascade" in result.output
