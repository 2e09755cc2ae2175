"""Scheduled runs are the tested path: one in-process job and one run history, nothing
published is ever emptied by a slip, failures say why, a crash leaves nothing half-done."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.demo.generator import generate
from pipelines.orchestration.schedules import clinic_job, new_export_sensor
from tests.conftest import DEMO_EXPORT, clinic, query_snapshot, settings_for


def run_args(s) -> list[str]:
    return ["--raw", str(s.raw_dir), "--marts", str(s.marts_dir), "--warehouse", str(s.warehouse)]


def published_files(marts: Path) -> dict[str, str]:
    """Every file readers can reach through the published paths, by content hash."""
    found = {}
    for path in sorted(Path(marts).rglob("*")):
        if path.is_file() and "versions" not in path.relative_to(marts).parts[:1]:
            found[str(path.relative_to(marts))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def warehouse_contents(path: str) -> dict[str, list]:
    """Every table of the warehouse, sorted (DuckDB rewrites its file header on open, so bytes
    are not the measure of an untouched warehouse)."""
    con = duckdb.connect(path, read_only=True)
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        return {f"{s}.{t}": con.execute(f'SELECT * FROM "{s}"."{t}" ORDER BY ALL').fetchall() for s, t in tables}
    finally:
        con.close()


def test_the_job_runs_in_process_on_every_path():
    """Its definition; tests/test_benchmark.py runs the scheduled and the UI path in one process."""
    assert clinic_job.executor_def is dg.in_process_executor


def test_the_sensor_asks_the_ledger_not_its_cursor(demo_run, tmp_path):
    settings, result = demo_run
    raw = tmp_path / "raw"
    shutil.copytree(settings.raw_dir, raw)
    s = settings_for(tmp_path, raw, warehouse=settings.warehouse)
    with dg.instance_for_test() as instance:
        first = new_export_sensor(dg.build_sensor_context(instance=instance, resources={"clinic": s}))
        assert not first.run_requests  # the demo export is applied already: a fresh cursor changes nothing
        generate(20, seed=5, id_prefix="S").write(raw / "2026-12-01_new")
        (raw / "2026-12-02_unfinished").mkdir()  # no _READY: still being written
        second = new_export_sensor(dg.build_sensor_context(instance=instance, resources={"clinic": s},
                                                           cursor=first.cursor))
        assert [(r.run_key, r.tags["clinic/export"]) for r in second.run_requests] == [
            ("export:2026-12-01_new", "2026-12-01_new")]
        third = new_export_sensor(dg.build_sensor_context(instance=instance, resources={"clinic": s},
                                                          cursor=second.cursor))
        assert not third.run_requests  # requested, not applied yet: not requested twice
        assert "not applied yet, each requested once already (2026-12-01_new)" in third.skip_reason.skip_message
        busy = duckdb.connect(str(settings.warehouse))  # a run holds the warehouse
        try:
            held = new_export_sensor(dg.build_sensor_context(instance=instance, resources={"clinic": s}))
        finally:
            busy.close()
        assert not held.run_requests and "writing the warehouse" in held.skip_reason.skip_message


@pytest.fixture
def published(demo_copy):
    """A copy of the demo run's warehouse and published set, to be slipped on."""
    return demo_copy


@pytest.mark.parametrize("slip", ["mistyped", "empty", "vanished", "changed"])
def test_a_slip_in_the_raw_folder_publishes_nothing_less(published, tmp_path, slip, clinic_here):
    before = published_files(Path(published.marts_dir))
    warehouse_before = warehouse_contents(published.warehouse)
    raw = Path(published.raw_dir)
    if slip == "mistyped":
        raw = raw.with_name("rwa")
    elif slip == "empty":
        raw = tmp_path / "empty"
        raw.mkdir()
    elif slip == "vanished":
        shutil.move(raw / DEMO_EXPORT.name, tmp_path / "elsewhere")
        generate(20, seed=5, id_prefix="S").write(raw / "2026-12-01_new")
    else:
        with (raw / DEMO_EXPORT.name / "patients.csv").open("a") as fh:
            fh.write("ZZZ0001,site-a,crps,ldn,F,50,2024\n")
    out = clinic_here("run", "--raw", str(raw), "--marts", published.marts_dir, "--warehouse", published.warehouse)
    assert out.returncode == 4, out.stderr
    assert "Nothing was changed or published" in out.stderr and "Traceback" not in out.stderr
    if slip in ("vanished", "changed"):
        assert "demo" in out.stderr and "--rebuild" in out.stderr
    assert published_files(Path(published.marts_dir)) == before
    assert warehouse_contents(published.warehouse) == warehouse_before
    if slip == "vanished":  # dropping it is explicit, and says what it drops
        out = clinic_here("run", "--raw", str(raw), "--marts", published.marts_dir, "--warehouse", published.warehouse,
                     "--rebuild")
        assert out.returncode == 0, out.stderr
        assert f"dropping: export {DEMO_EXPORT.name} is gone" in out.stderr
        assert query_snapshot(published, "SELECT count(*) FROM marts.patient_response") == [(20,)]


def test_failures_say_why(published, tmp_path, clinic_here):
    args = run_args(published)
    bogus = clinic_here("run", *args, env={"CLINIC_DUCKDB_MEMORY_LIMIT": "bogus"})
    assert bogus.returncode == 2 and "'bogus' is not a size DuckDB understands" in bogus.stderr
    missing = clinic_here("run", *args, "--rules", str(tmp_path / "no_rules.yaml"))
    assert missing.returncode == 2 and "no_rules.yaml" in missing.stderr
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(b"not a database" * 100)
    opened = clinic_here("run", "--raw", published.raw_dir, "--marts", published.marts_dir, "--warehouse", str(damaged))
    assert opened.returncode == 5 and "cannot be opened" in opened.stderr
    assert "another run" not in opened.stderr
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    step = clinic_here("run", "--raw", published.raw_dir, "--marts", str(blocked / "marts"), "--warehouse",
                  str(tmp_path / "fresh.duckdb"))
    assert step.returncode == 5
    # The failing step (the fused publish step, clinic_snapshot's) and the root cause, once.
    assert "publish: NotADirectoryError" in step.stderr and "Error occurred while executing" not in step.stderr
    for out in (bogus, missing, opened, step):
        assert "Traceback" not in out.stderr


def test_a_run_killed_while_publishing_leaves_a_whole_set_and_the_next_run_tidies_up(published, clinic_here):
    marts = Path(published.marts_dir)
    current = os.readlink(marts / "current")
    before = published_files(marts)
    generate(30, seed=8, id_prefix="K").write(Path(published.raw_dir) / "2026-12-03_more")
    home = {"DAGSTER_HOME": str(marts.parent / "dagster_home")}  # the run history the UI's queue reads
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", *run_args(published)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **home})
    deadline = time.monotonic() + 300
    while not any((marts / "versions").glob(".building-*/*.parquet")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Readers still see the whole previous set: the same files, consistent with each other.
    assert os.readlink(marts / "current") == current
    assert published_files(marts) == before
    runs_in_snapshot = query_snapshot(published, "SELECT run_id FROM marts.run_info ORDER BY ALL")
    con = duckdb.connect()
    runs_in_parquet = con.execute("SELECT run_id FROM read_parquet(?) ORDER BY ALL",
                                  [str(marts / "run_info.parquet")]).fetchall()
    assert runs_in_snapshot == runs_in_parquet
    assert list((marts / "versions").glob(".building-*"))  # the killed run's leftovers...
    with dg.DagsterInstance.from_config(home["DAGSTER_HOME"]) as instance:
        [killed] = instance.get_runs()
        assert killed.status == dg.DagsterRunStatus.STARTED  # as a kill leaves it: the queue counts it running
    out = clinic_here("run", *run_args(published), env=home)  # the next run: in this process (the killed one was not)
    assert out.returncode == 0, out.stderr
    with dg.DagsterInstance.from_config(home["DAGSTER_HOME"]) as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        assert [r.status for r in instance.get_runs()] == [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]
    assert not list((marts / "versions").glob(".building-*"))  # ...are gone after the next run
    assert not list(marts.glob(".*.tmp*"))
    statuses = [s for (s,) in query_snapshot(published, "SELECT status FROM marts.run_info ORDER BY run_time")]
    assert statuses == ["published", "interrupted", "published"]


@pytest.mark.slow
def test_odd_exports_are_named_in_the_summary_and_in_data_quality(tmp_path, clinic_here, monkeypatch):
    """Run as an operator types it, from the project folder with relative paths (GX refused a
    relative Data Docs folder: the run failed at its last step)."""
    s = settings_for(tmp_path, tmp_path / "raw")
    full = generate(25, seed=4, id_prefix="O")
    export = Path(s.raw_dir) / "2026-12-04_partial"
    full.write(export)
    for table in ("fiqr_items", "adverse_events", "discontinuations"):
        (export / f"{table}.csv").unlink()
    (export / "notes.csv").write_text("a,b\n1,2\n")
    (export / "doses.txt").write_text("x")
    (export / "attachments").mkdir()
    (export / "jane.doe@example.com.csv").write_text("x")
    monkeypatch.chdir(tmp_path)
    out = clinic_here("run", *(os.path.relpath(a) if Path(a).is_absolute() else a for a in run_args(s)))
    assert out.returncode == 0, out.stderr
    assert (Path(s.marts_dir) / "current" / "data_docs" / "index.html").exists()
    # The summary's next steps name the folders as typed: run from here, they read this run's set.
    assert 'clinic sql --marts marts "' in out.stdout
    assert "clinic release --marts marts --warehouse warehouse.duckdb " in out.stdout
    for name in ("fiqr_items", "adverse_events", "discontinuations", "notes.csv", "doses.txt", "attachments/"):
        assert name in out.stdout, name
    assert "jane.doe" not in out.stdout + out.stderr
    found = query_snapshot(s, "SELECT check_name, table_name, severity, status FROM marts.data_quality "
                              "WHERE check_name IN ('missing_table', 'unknown_file') AND status = 'fail' ORDER BY ALL")
    assert found == [("missing_table", t, "info", "fail") for t in ("adverse_events", "discontinuations",
                                                                    "fiqr_items")] + \
        [("unknown_file", "(export)", "warning", "fail")]
    assert query_snapshot(s, "SELECT count(*) FROM marts.patient_response") == [(25,)]
    assert b"jane.doe" not in Path(s.warehouse).read_bytes()


def test_help_that_helps():
    run = clinic("run", "--help").stdout
    assert "exit codes:" in run and "CLINIC_DUCKDB_MEMORY_LIMIT" in run and "DAGSTER_HOME" in run
    for flag in ("--raw", "--marts", "--warehouse", "--rules", "--rebuild"):
        assert flag in run
    sql = clinic("sql", "--help").stdout
    assert "--marts" in sql and not any(f in sql for f in ("--raw", "--warehouse", "--rules"))
    for command in ("run", "sql", "demo-data", "ui"):
        text = clinic(command, "--help").stdout
        options = [line for line in text.splitlines() if line.strip().startswith("--")]
        assert options and all("default" in line or "required" in line or line.strip().startswith("--help")
                               for line in _option_blocks(text)), command


def _option_blocks(help_text: str) -> list[str]:
    """Each option's help, joined over its wrapped lines."""
    blocks, current = [], None
    for line in help_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-") and line.startswith("  "):
            if current:
                blocks.append(current)
            current = stripped
        elif current and line.startswith("    "):
            current += " " + stripped
        else:
            if current:
                blocks.append(current)
            current = None
    return [b for b in blocks + ([current] if current else []) if not b.startswith("-h")]


def test_the_schedule_runs_the_whole_pipeline_daily():
    from pipelines.orchestration.schedules import daily_schedule

    assert daily_schedule.cron_schedule == "0 6 * * *"
    assert daily_schedule.job_name == "clinic_pipeline"
