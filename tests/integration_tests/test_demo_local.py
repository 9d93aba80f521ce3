"""``intercascade demo`` end to end on a real GGUF model (the ``smoke`` model as both models).

The smoke model cannot do the demo's arithmetic; this checks that the command runs
both cascades on llama.cpp, prints a line per problem and ends with its summary.
"""

from __future__ import annotations

from smoke_model import SMOKE, requires_smoke_model
from typer.testing import CliRunner

from langchain_intercascade.cli import app

pytestmark = requires_smoke_model


def test_demo_runs_on_a_real_model_and_sums_up() -> None:
    result = CliRunner().invoke(
        app, ["demo", "--weak", str(SMOKE), "--strong", str(SMOKE), "--limit", "2"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1. Tom saves $5 every day for 3 weeks." in result.output
    assert "2. Ada buys 3 dozen eggs" in result.output
    assert "Summary over 2 problems" in result.output
    assert "strong calls: Inter-Cascade" in result.output
