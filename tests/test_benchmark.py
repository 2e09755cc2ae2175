"""The benchmark works end to end at scale demo (it times nothing the suite asserts on)."""

from __future__ import annotations

import json

import pytest

from benchmarks.run import main
from pipelines.definitions import INGEST_STEP

pytestmark = pytest.mark.slow  # every contender of the benchmark at demo scale


def test_benchmark_runs_at_demo_scale(tmp_path):
    out = tmp_path / "demo.json"
    assert main(["--scale", "demo", "--repeats", "1", "--work", str(tmp_path / "work"),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["ratios"]) == {"clinic_cold/floor", "clinic_warm/clinic_cold", "peer/clinic_cold",
                                     "scheduled/clinic_cold", "ui/clinic_cold", "nothing_new/clinic_cold"}
    assert all(result[k]["seconds"] > 0 and result[k]["peak_mib"] > 0
               for k in ("floor", "clinic_cold", "clinic_nothing_new", "scheduled_cold", "ui_cold", "clinic_warm",
                         "peer"))
    steps = result["clinic_cold_steps"]["steps"]
    assert INGEST_STEP in steps and "publish" in steps  # the fused steps (pipelines/definitions.py)
