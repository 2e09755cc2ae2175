"""Shared fixtures: real DuckDB files, real Dagster materialisations, real exports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import run_job
from pipelines.config import ClinicConfig
from pipelines.settings import REPO_ROOT

DEMO_EXPORT = REPO_ROOT / "data" / "raw" / "0000-00-00T0000_demo"  # sorts before any real export
FIXTURES = Path(__file__).parent / "fixtures"


def settings_for(tmp: Path, raw: Path, **given) -> ClinicConfig:
    return ClinicConfig.with_overrides(**{"raw_dir": raw, "marts_dir": tmp / "marts",
                                          "warehouse": tmp / "warehouse.duckdb", **given})


def clinic(*args, env: dict | None = None, stdin: str | None = None, timeout: int = 600,
           python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`clinic` in a process of its own, as an operator runs it from the repository: its
    output, errors and exit code (`env` added to this process's environment)."""
    return subprocess.run([sys.executable, *python_flags, "-m", "pipelines.cli", *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})})


def _without_defs_state_storage():
    """Dagster 1.13 keeps the storage of a DagsterInstance entered with `with` in a context
    variable; one left there by an earlier test or fixture of this worker (a run in process) whose
    instance has been collected since makes the next Definitions built here fail ("Attempted to
    resolve undefined DagsterInstance weakref"), depending on when Python collects it: seen in 2
    of 4 full runs of the suite on 2026-12-07, in one worker, never in a test run alone."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
    yield
    _current_storage.set(None)


# Before a module's own fixtures (autouse fixtures come first in their scope) and around each test.
_fresh_module = pytest.fixture(scope="module", autouse=True, name="_fresh_module")(_without_defs_state_storage)
_fresh_test = pytest.fixture(autouse=True, name="_fresh_test")(_without_defs_state_storage)


@pytest.fixture
def clinic_here(capsys, monkeypatch):
    """`clinic` through its own main() in this process, for tests of what a command says and
    returns rather than of its process (signals, imports, a kill): the same output, errors and
    exit code as `clinic()` gives, without an interpreter's and GX's start-up per call (a run
    here reuses the GX worker an earlier run of this process left)."""
    from pipelines.cli import main

    def run(*args, env: dict | None = None) -> subprocess.CompletedProcess:
        monkeypatch.delenv("CLINIC_PROGRESS", raising=False)  # `clinic run` sets it: unset after the test
        with monkeypatch.context() as scoped:
            for name, value in (env or {}).items():
                scoped.setenv(name, value)
            capsys.readouterr()
            code = main([str(a) for a in args])
            said = capsys.readouterr()
        return subprocess.CompletedProcess(["clinic", *map(str, args)], code, said.out, said.err)

    return run


def run_pipeline(settings: ClinicConfig, **kwargs):
    """The project's job, executed in process as `clinic run` does (ephemeral instance)."""
    return run_job(settings, **kwargs)


def snapshot_cut_short(settings: ClinicConfig, marts: Path) -> Path:
    """A copy of the published snapshot cut to half its size, as the only file of a marts
    folder `marts` (a disk that filled, a copy that stopped)."""
    marts.mkdir()
    damaged = marts / "clinic.duckdb"
    damaged.write_bytes(Path(settings.snapshot).resolve().read_bytes())
    with damaged.open("r+b") as fh:
        fh.truncate(damaged.stat().st_size // 2)
    return damaged


def query_snapshot(settings: ClinicConfig, sql: str) -> list[tuple]:
    """Rows of a query on the published snapshot, opened read-only as analysts do."""
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def mart_contents(settings: ClinicConfig, gx_outcomes: bool = True) -> dict[str, list[tuple]]:
    """Every published mart's rows, sorted; run_info left out (it differs every run).
    Without gx_outcomes, data_quality leaves out the Great Expectations rows: they name the
    exports each run validated, so a warm run's differ from a cold run's by design."""
    from pipelines.publish.snapshot import published_marts

    def rows(mart: str) -> str:
        keep = "" if gx_outcomes or mart != "data_quality" else "WHERE implemented_by <> 'great_expectations'"
        return f"SELECT * FROM marts.{mart} {keep} ORDER BY ALL"

    return {m.name: query_snapshot(settings, rows(m.name)) for m in published_marts() if m.name != "run_info"}


def materialization(result, asset: str):
    """The materialisation of one asset in a run (a run's steps fuse several assets, so an asset
    is found by its key, not by its step)."""
    import dagster as dg

    found = [e.materialization for e in result.get_asset_materialization_events()
             if e.materialization.asset_key == dg.AssetKey(asset)]
    assert len(found) == 1, f"{asset} materialised {len(found)} times"
    return found[0]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One real in-process materialisation of every asset on the committed demo export."""
    tmp = tmp_path_factory.mktemp("demo_run")
    raw = tmp / "raw"
    shutil.copytree(DEMO_EXPORT, raw / DEMO_EXPORT.name)
    settings = settings_for(tmp, raw)
    result = run_pipeline(settings)
    return settings, result


@pytest.fixture
def demo_copy(demo_run, tmp_path):
    """The demo run's raw folder (modification times kept), warehouse and published set, copied
    for one test to run on or change: the first run many tests need, for the cost of a copy."""
    settings, result = demo_run
    assert result.success
    for name in ("raw", "marts"):
        shutil.copytree(Path(settings.marts_dir).parent / name, tmp_path / name, symlinks=True)
    shutil.copy(settings.warehouse, tmp_path / "warehouse.duckdb")
    return settings_for(tmp_path, tmp_path / "raw")


@pytest.fixture(scope="session")
def spark_session():
    """One local Spark session for every Spark test (the JVM starts once, ~5-20 s): the
    pipeline's Spark runs in this process reuse it (pyspark's getOrCreate) and leave it open."""
    from tests.engine_compare import SPARK_MISSING

    if SPARK_MISSING:
        pytest.skip(f"Spark cannot run here: {SPARK_MISSING}")
    from pipelines.engines.spark import start_session

    session = start_session("local[*]", app_name="clinic-tests")
    yield session
    session.stop()


SPARK_FILE = "test_spark.py"  # every Spark test: one file, so one worker and one JVM (--dist=loadfile)
LONG_FILES = (SPARK_FILE, "test_benchmark.py")  # minutes each, in a few tests


def pytest_collection_modifyitems(items):
    """Markers that follow from what a test uses (the rest are set in the test modules): a test
    on the demo run's outputs is `slow` (the session's one whole-job run), one in the Spark
    file or on the Spark session is `spark`. Then the Spark file first: xdist sends it (one
    worker, one JVM, minutes) out before the rest, so it runs beside the other files instead
    of alone at the end."""
    for item in items:
        if "demo_run" in item.fixturenames:
            item.add_marker(pytest.mark.slow)
        if item.path.name == SPARK_FILE or "spark_session" in item.fixturenames:
            item.add_marker(pytest.mark.spark)
    # The heaviest files first (the Spark file and the benchmark's, each minutes in few tests, then
    # by their whole-job tests), so that no worker is left running a long file alone at the end
    # (xdist hands files out in this order).
    slow = Counter(item.path.name for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: (item.path.name not in LONG_FILES, LONG_FILES.index(item.path.name)
                                 if item.path.name in LONG_FILES else 0, -slow[item.path.name]))
