"""The operator's bad day (issue 22): runs that die or fail at a bad moment, damaged files,
paths that cross, odd entries in an export. Each fault is injected for real (an exception
raised inside a real step or transaction, a truncated DuckDB file, a FIFO), and the next
run is held to what a cold run publishes. Whole-job runs are few: most tests drive the
ingest functions on a real DuckDB file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.demo.generator import generate
from pipelines.ingest.contract import load_contract
from pipelines.ingest.load import ingest_table, plan_ingest
from pipelines.resources import build_resources
from pipelines.settings import RULES_DIR
from pipelines.sqlfiles import run_sql
from tests.conftest import FIXTURES, query_snapshot, run_pipeline, settings_for

CONTRACT = load_contract(RULES_DIR / "contract.yaml")
MESSY = ["2026-11-01T0600_site-a", "2026-11-02T0600_site-a"]


class InjectedFault(RuntimeError):
    """Stands for a kill, a timeout or a crash at the point where it is raised."""


def warehouse_rows(s, query: str) -> list[tuple]:
    """Rows of a query on the warehouse, opened as the run opens it (an in-process run's
    database may still be cached by DuckDB, which refuses another configuration)."""
    with build_resources(s)["warehouse"].get_connection() as con:
        return con.execute(query).fetchall()


def _rewrite_csv(path: Path, change) -> None:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *(change(r) for r in rows[1:])])


# --- 1. checks follow the data, not the run ------------------------------------------------------


def test_an_export_applied_by_a_run_that_died_is_checked_by_the_next_run(tmp_path, monkeypatch):
    import pipelines.quality.assets as quality_assets

    s = settings_for(tmp_path, tmp_path / "raw")
    raw = Path(s.raw_dir)
    generate(150, seed=21, id_prefix="A").write(raw / "2026-11-01_ug_per_g")
    later = raw / "2026-11-02_mg_per_g"
    generate(80, seed=22, id_prefix="B").write(later)
    # Calprotectin now in mg/g: every value divided by 1000, all still inside the contract's range.
    _rewrite_csv(later / "measurements.csv",
                 lambda r: r if r[2] != "calprotectin_ug_g" else [*r[:3], f"{float(r[3]) / 1000:g}"])

    real_run_sql = quality_assets.run_sql

    def dies_after_staging(con, stage, name, **params):
        if name == "export_profiles":
            raise InjectedFault("the run died right after staging")
        return real_run_sql(con, stage, name, **params)

    monkeypatch.setattr(quality_assets, "run_sql", dies_after_staging)
    died = run_pipeline(s)
    assert not died.success
    monkeypatch.undo()
    assert {e for (e,) in warehouse_rows(s, "SELECT export_id FROM ingest.applied_exports")} == {
        "2026-11-01_ug_per_g", "2026-11-02_mg_per_g"}  # both applied by the run that died

    after = run_pipeline(s)  # nothing new to apply: the checks of what the dead run applied still run
    assert not after.success
    failed = {e.check_name for e in after.get_asset_check_evaluations() if not e.passed}
    assert "no_fatal_expectation_failed" in failed
    assert not Path(s.snapshot).exists()  # nothing was published
    failing = warehouse_rows(s, "SELECT DISTINCT export_id, check_name FROM quality.gx_outcomes "
                                "WHERE severity = 'fatal' AND rows_failed > threshold_pct / 100.0 * rows_checked "
                                "AND rows_failed > 0")
    assert any(e == "2026-11-02_mg_per_g" for e, _ in failing), failing
