"""The real ``smoke`` GGUF model the integration tests run on, and when they skip."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from langchain_intercascade.models import KNOWN_MODELS, model_dir

SMOKE = Path(
    os.environ.get("INTERCASCADE_SMOKE_MODEL") or model_dir() / KNOWN_MODELS["smoke"].filename
)

requires_smoke_model = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed (the 'local' extra)",
    ),
    pytest.mark.skipif(
        not SMOKE.is_file(),
        reason=f"no smoke model at {SMOKE}: run `intercascade models pull smoke`",
    ),
]
