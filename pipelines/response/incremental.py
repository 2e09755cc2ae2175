"""Per-patient tables kept up to date patient by patient.

A daily export touches a few patients, so marts.patient_response and
response.trajectory_points recompute only the patients with rows from exports applied
since the table was last refreshed. A table is rebuilt in full when it is new, when the
rules file or the staging/response SQL changed (its fingerprint), or when an export it
reflects was applied again (the warehouse was rebuilt). What a table reflects (export and
time applied) is recorded in response.per_patient_state in the same transaction as the
refresh, so a run that fails half-way is caught up by the next one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import sql_dir
from pipelines.sqlfiles import has_table, run_sql, sql


@dataclass(frozen=True)
class Refresh:
    mode: str  # "full" or "incremental"
    reason: str
    patients: int

    def metadata(self) -> dict:
        return {"refresh": self.mode, "refresh_reason": self.reason, "patients_recomputed": self.patients}


def fingerprint(rules_file: Path, contract=None) -> str:
    """What the per-patient tables are computed with: the rules, the instrument registry (each
    instrument's direction) and the SQL up to them."""
    digest = hashlib.sha256(Path(rules_file).read_bytes())
    if contract is not None:
        digest.update(repr(sorted(contract.instruments.items())).encode())
    for path in sorted([*(sql_dir() / "staging").glob("*.sql"), *(sql_dir() / "response").glob("*.sql")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _applications(con) -> set[tuple[str, str]]:
    return set(con.execute("SELECT export_id, CAST(max(applied_at) AS VARCHAR) "
                           "FROM ingest.applied_files GROUP BY export_id").fetchall())


def _full_rebuild_reason(con, table_name: str, fp: str, state: list[tuple[str, str, str]],
                         applied: set[tuple[str, str]]) -> str | None:
    schema, name = table_name.split(".")
    if not has_table(con, schema, name) or not state:
        return "first build"
    if any(f != fp for f, _, _ in state):
        return "the rules, the instrument registry or the staging/response SQL changed"
    if not {(e, a) for _, e, a in state} <= applied:
        return "the warehouse was rebuilt from the exports"
    return None


def refresh_per_patient(con, table_name: str, sql_name: str, fp: str, core_tables: list[str],
                        compute=None) -> Refresh:
    """Recompute `table_name` (one row set per patient) from the view response.<sql_name>_to_score
    that sql/response/<sql_name>.sql defines over response.patients_to_score: for every
    patient, or only for those with rows from exports the table has not seen. `compute` (the
    run's engine; DuckDB when None) runs the SQL; an engine that cannot DELETE (Spark)
    recomputes every patient each run, and the bookkeeping stays in the warehouse."""
    from pipelines.engines import DuckDBCompute

    compute = compute or DuckDBCompute()
    scoped_view = f"response.{sql_name}_to_score"
    applied = _applications(con)
    state = con.execute("SELECT fingerprint, export_id, applied_at FROM response.per_patient_state "
                        "WHERE table_name = ?", [table_name]).fetchall()
    reason = _full_rebuild_reason(con, table_name, fp, state, applied)
    if reason is None and not compute.incremental:
        reason = f"the {compute.engine} engine recomputes every patient each run"
    con.execute("BEGIN TRANSACTION")
    try:
        if reason is not None:
            compute.run(con, "response", "score_every_patient")
            compute.run(con, "response", sql_name)
            compute.run(con, "response", "rebuild_per_patient", table_name=table_name, scoped_view=scoped_view)
        else:
            con.execute("CREATE OR REPLACE TABLE response.unseen_exports (export_id VARCHAR)")
            unseen = sorted(applied - {(e, a) for _, e, a in state})
            for export_id, _ in unseen:
                con.execute("INSERT INTO response.unseen_exports VALUES (?)", [export_id])
            changed = " UNION ".join(sql("response", "changed_patients", core_table=t) for t in core_tables)
            con.execute(f"CREATE OR REPLACE TABLE response.patients_to_score AS {changed}")
            run_sql(con, "response", sql_name)
            run_sql(con, "response", "refresh_per_patient", table_name=table_name, scoped_view=scoped_view)
        patients = con.execute("SELECT count(*) FROM response.patients_to_score").fetchone()[0]
        con.execute("DELETE FROM response.refreshed_patients WHERE table_name = ?", [table_name])
        con.execute("INSERT INTO response.refreshed_patients SELECT ?, patient_id "
                    "FROM response.patients_to_score", [table_name])
        con.execute("DELETE FROM response.per_patient_state WHERE table_name = ?", [table_name])
        for export_id, applied_at in sorted(applied):
            con.execute("INSERT INTO response.per_patient_state VALUES (?, ?, ?, ?)",
                        [table_name, fp, export_id, applied_at])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    if reason is not None:
        return Refresh("full", reason, patients)
    return Refresh("incremental", f"{len(unseen)} export(s) applied since the last refresh", patients)
