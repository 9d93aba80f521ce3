"""Notebook 01 in its local mode (``INTERCASCADE_LOCAL_NOTEBOOKS=1``) on real GGUF models.

Both roles run the 98 MB smoke model, so this is about the plumbing a new user
touches first (``cascade.batch`` over one llama.cpp model used to crash), not quality.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from smoke_model import SMOKE, requires_smoke_model

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"

pytestmark = [
    *requires_smoke_model,
    # The kernel talks to this process over loopback sockets.
    pytest.mark.enable_socket,
    pytest.mark.allow_hosts(["127.0.0.1"]),
]


def test_the_quickstart_notebook_runs_on_local_models() -> None:
    env = {
        **os.environ,
        "INTERCASCADE_LOCAL_NOTEBOOKS": "1",
        "INTERCASCADE_WEAK_MODEL": str(SMOKE),
        "INTERCASCADE_STRONG_MODEL": str(SMOKE),
    }
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute(env=env)
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "ChatLlamaCpp" in printed  # the local models ran, not the scripted fallback
