"""The warehouse's bookkeeping comes from numbered migrations, once each, recorded in a version
table; a warehouse from before them is adopted without losing a row; nothing is read at import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from pipelines.ingest.contract import load_contract
from pipelines.ingest.load import ensure_warehouse
from pipelines.migrations import migrate, migration_files
from pipelines.settings import REPO_ROOT, RULES_DIR, SQL_DIR, ConfigError

CONTRACT = load_contract(RULES_DIR / "contract.yaml")


def _versions(con) -> list[int]:
    return [v for (v,) in con.execute("SELECT version FROM main.warehouse_migrations ORDER BY version").fetchall()]


def test_a_new_warehouse_takes_every_migration_once():
    con = duckdb.connect()
    ensure_warehouse(con, CONTRACT)
    assert _versions(con) == [v for v, _, _ in migration_files()]
    assert migrate(con) == []  # the next run applies nothing
    tables = {r for (r,) in con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
    assert {"ingest.applied_files", "quality.gx_outcomes", "quality.run_log", "quality.export_profiles",
            "response.per_patient_state", "core.patients"} <= tables


def test_a_warehouse_from_before_migrations_is_adopted_with_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    old = duckdb.connect(str(path))
    old.execute("CREATE SCHEMA quality; CREATE SCHEMA ingest")
    old.execute("CREATE TABLE quality.run_log (run_id VARCHAR, run_time TIMESTAMP, ingest_mode VARCHAR, "
                "exports_applied VARCHAR, exports_new VARCHAR, rules_version VARCHAR, code_version VARCHAR, "
                "rows_in BIGINT, rows_accepted BIGINT, rows_quarantined BIGINT, rows_duplicate BIGINT, "
                "patients_out BIGINT)")
    old.execute("INSERT INTO quality.run_log (run_id) VALUES ('an old run')")
    old.execute("CREATE TABLE quality.gx_results (x INTEGER)")
    old.close()
    con = duckdb.connect(str(path))
    applied = migrate(con)
    assert applied[0].startswith("001_") and len(applied) == len(migration_files())
    assert con.execute("SELECT run_id, status, engine FROM quality.run_log").fetchall() == [("an old run", None, None)]
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'gx_results'").fetchone()[0] == 0


def test_a_badly_named_migration_is_refused(tmp_path, monkeypatch):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    (tmp_path / "sql" / "migrations" / "add_a_column.sql").write_text("SELECT 1;")
    monkeypatch.setenv("CLINIC_SQL_DIR", str(tmp_path / "sql"))
    with pytest.raises(ConfigError, match=r"add_a_column\.sql: name a migration NNN_what\.sql"):
        migrate(duckdb.connect())


def test_importing_the_definitions_reads_no_file():
    """The contract and the manifest are read when the definitions are built, not at import:
    with both pointing nowhere, the import still succeeds."""
    env = {**os.environ, "CLINIC_CONTRACT": "/nonexistent/contract.yaml", "CLINIC_SQL_DIR": "/nonexistent/sql",
           "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", "import pipelines.definitions, pipelines.cli"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
