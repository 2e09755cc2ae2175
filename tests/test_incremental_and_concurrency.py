"""Incremental runs equal cold runs; readers of the snapshot never block or see half of one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.demo.generator import generate
from pipelines.quality.gx_worker import WORK_PREFIX
from tests.conftest import (
    FIXTURES,
    mart_contents,
    query_snapshot,
    run_pipeline,
    settings_for,
)

pytestmark = pytest.mark.slow  # cold and warm runs of the whole job

EXPORTS = ["2026-11-01T0600_site-a", "2026-11-02T0600_site-a"]


@pytest.fixture(scope="module")
def cold_run_of_both(tmp_path_factory):
    """Both messy exports in one cold run: what every order of applying them must publish."""
    cold = settings_for(tmp_path_factory.mktemp("cold"), tmp_path_factory.mktemp("cold_raw"))
    for export in EXPORTS:
        shutil.copytree(FIXTURES / "messy" / export, Path(cold.raw_dir) / export)
    assert run_pipeline(cold).success
    return cold


def test_warm_run_over_a_new_export_equals_a_cold_run(tmp_path, cold_run_of_both):
    warm = settings_for(tmp_path / "warm", tmp_path / "warm" / "raw")
    shutil.copytree(FIXTURES / "messy" / EXPORTS[0], Path(warm.raw_dir) / EXPORTS[0])
    assert run_pipeline(warm).success
    shutil.copytree(FIXTURES / "messy" / EXPORTS[1], Path(warm.raw_dir) / EXPORTS[1])
    assert run_pipeline(warm).success
    assert mart_contents(warm, gx_outcomes=False) == mart_contents(cold_run_of_both, gx_outcomes=False)
    modes = query_snapshot(warm, "SELECT ingest_mode FROM marts.run_info ORDER BY run_time")
    assert modes == [("cold",), ("incremental",)]


def test_an_export_sorting_before_applied_ones_rebuilds(tmp_path, cold_run_of_both):
    s = settings_for(tmp_path, tmp_path / "raw")
    shutil.copytree(FIXTURES / "messy" / EXPORTS[1], Path(s.raw_dir) / EXPORTS[1])
    assert run_pipeline(s).success
    shutil.copytree(FIXTURES / "messy" / EXPORTS[0], Path(s.raw_dir) / EXPORTS[0])
    assert run_pipeline(s).success
    assert mart_contents(s) == mart_contents(cold_run_of_both)


def test_snapshot_readers_work_and_see_whole_snapshots_while_a_run_writes(demo_copy, tmp_path):
    """... and the run's process, which ends without the interpreter's teardown (`cli.entry`),
    still runs its exit handlers: the GX worker it started is stopped and its folder removed."""
    s = demo_copy  # the demo export applied and published
    before = mart_contents(s)["patient_response"]
    generate(60, seed=9, id_prefix="N").write(Path(s.raw_dir) / "2026-12-01_new_patients")

    run_tmp = tmp_path / "tmp"  # the run's temp folder: where its GX worker keeps its files
    run_tmp.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--raw", str(s.raw_dir),
                            "--marts", str(s.marts_dir), "--warehouse", str(s.warehouse)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "TMPDIR": str(run_tmp)})
    seen, reads, mid_run, worker_seen = set(), 0, None, False
    try:
        while run.poll() is None:
            if mid_run is None:  # the command-line reader, while the run holds the warehouse
                mid_run = subprocess.run(
                    [sys.executable, "-m", "pipelines.cli", "sql", "--marts", str(s.marts_dir),
                     "SELECT count(*) FROM patient_response"], capture_output=True, text=True, timeout=120)
            con = duckdb.connect(str(s.snapshot), read_only=True)
            try:
                # Two relations read in one snapshot must agree with each other.
                n_patients, n_flow = con.execute(
                    "SELECT (SELECT count(*) FROM marts.patient_response), "
                    "(SELECT enrolled FROM marts.cohort_flow WHERE indication = 'all')").fetchone()
            finally:
                con.close()
            assert n_patients == n_flow
            seen.add(n_patients)
            reads += 1
            worker_seen = worker_seen or any(run_tmp.glob(f"{WORK_PREFIX}*"))
            time.sleep(0.05)
    finally:
        run.wait(timeout=300)
    assert run.returncode == 0, run.stderr.read()[-2000:]
    assert mid_run is not None and mid_run.returncode == 0, mid_run and mid_run.stderr
    assert reads >= 5
    assert seen <= {len(before), len(before) + 60}
    assert mart_contents(s)["patient_response"] != before
    assert worker_seen and not list(run_tmp.glob(f"{WORK_PREFIX}*"))  # started, then stopped at exit


def test_a_second_writer_is_told_to_wait(tmp_path):
    s = settings_for(tmp_path, tmp_path / "raw")
    Path(s.warehouse).parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; "
                               f"c = duckdb.connect({str(s.warehouse)!r}); print('ready', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        out = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--raw", str(s.raw_dir),
                              "--warehouse", str(s.warehouse), "--marts", str(s.marts_dir)],
                             capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
    assert out.returncode == 3
    assert "being written by another run" in out.stderr
