"""benchmarks/reliability: the fault benchmark is reproducible and checks many strategies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BENCHMARK = ROOT / "benchmarks" / "reliability"


def _run(script: str, tmp_path: Path, name: str, *args: str, hash_seed: str = "0") -> dict:
    out = tmp_path / f"{name}.json"
    subprocess.run(
        [sys.executable, str(BENCHMARK / script), *args, "--out", str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        cwd=ROOT,
    )
    return json.loads(out.read_text())


def test_the_fault_benchmark_gives_the_same_result_for_a_seed(tmp_path):
    # Different hash seeds too: set and dict order must not matter.
    first = _run("faults.py", tmp_path, "first", "--seed", "0", hash_seed="1")
    second = _run("faults.py", tmp_path, "second", "--seed", "0", hash_seed="2")
    assert first == second


def test_the_fault_benchmark_checks_none_lost_on_many_strategies(tmp_path):
    result = _run("faults.py", tmp_path, "result", "--seed", "0")
    assert result["distinct_strategies_reported"] >= 30
    assert result["strategies_lost"] == 0


def test_the_committed_fault_figures_are_those_the_benchmark_gives(tmp_path):
    result = _run("faults.py", tmp_path, "result", "--seed", "0")
    assert result == json.loads((BENCHMARK / "faults.json").read_text())


def test_the_soak_benchmark_reports_memory_at_start_end_and_checkpoints(tmp_path):
    if not (BENCHMARK / "soak.py").exists():
        pytest.fail("benchmarks/reliability/soak.py is missing")
    result = _run("soak.py", tmp_path, "soak", "--queries", "80", "--chunk", "40", "--warmup", "40")
    assert {"rss_mib_start", "rss_mib_end", "tracemalloc_mib_start", "tracemalloc_mib_end"} <= set(
        result
    )
    assert [c["queries"] for c in result["checkpoints"]] == [0, 40, 80]
    assert result["checkpoints"][-1]["tracker_runs_held"] == 0
    assert result["checkpoints"][-1]["distillations_kept"] <= 100


def test_the_soak_benchmark_reads_rss_alone_without_tracemalloc(tmp_path):
    # tracemalloc's own records grow RSS; the RSS figure comes from a run without it.
    args = ("--queries", "40", "--chunk", "40", "--warmup", "40", "--no-tracemalloc")
    result = _run("soak.py", tmp_path, "rss", *args)
    assert result["tracemalloc"] is False and result["tracemalloc_mib_end"] is None
    assert result["rss_mib_end"] > 0
    if sys.platform == "linux":  # malloc_trim is glibc's
        assert 0 < result["rss_trimmed_mib_end"] <= result["rss_mib_end"] + 1
