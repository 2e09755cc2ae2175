"""The response SQL on an in-memory DuckDB: given rows, each patient's category and reason.

Only the inputs sql/response/patient_response.sql reads are made here (core.patients,
staging.measurements, staging.discontinuations, staging.adverse_events); the rest is the
project's own code: the rules tables from the rules file and the instrument registry
(pipelines/response/rules.py), staging.patients, response.measure_values and the scoped
patient list from their .sql files, then the category view itself.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.ingest.contract import Contract, load_contract
from pipelines.response.rules import load_rules, write_rules_table
from pipelines.settings import RULES_DIR
from pipelines.sqlfiles import run_sql

# patient id: (indication, primary instrument, [(day, value)], discontinuation (day, reason) or None,
#              adverse events [(day, event, action)])
Case = tuple[str, str, list[tuple[int, float]], tuple[int, str] | None, list[tuple[int, str, str]]]


def categorise(cases: dict[str, Case], rules_file: Path = RULES_DIR / "response_rules.yaml",
               contract: Contract | None = None) -> dict[str, dict]:
    """Each case's row of the category view (patient_response_to_score), by patient id."""
    contract = contract or load_contract(RULES_DIR / "contract.yaml")
    con = duckdb.connect()
    try:
        for schema in ("core", "staging", "response"):
            con.execute(f"CREATE SCHEMA {schema}")
        write_rules_table(con, load_rules(rules_file, contract), contract)
        con.execute("CREATE TABLE core.patients (patient_id VARCHAR, site_id VARCHAR, indication VARCHAR, "
                    "regimen VARCHAR, sex VARCHAR, age_years BIGINT, start_year BIGINT)")
        con.execute("CREATE TABLE staging.measurements (patient_id VARCHAR, study_day BIGINT, instrument VARCHAR, "
                    "value DOUBLE, source_file VARCHAR, line_number BIGINT)")
        con.execute("CREATE TABLE staging.discontinuations (patient_id VARCHAR, study_day BIGINT, reason VARCHAR)")
        con.execute("CREATE TABLE staging.adverse_events (patient_id VARCHAR, study_day BIGINT, event VARCHAR, "
                    "severity VARCHAR, action VARCHAR)")
        con.execute("CREATE TABLE response.fiqr_questionnaires (patient_id VARCHAR, study_day BIGINT, "
                    "export_id VARCHAR, source_file VARCHAR, scorable BOOLEAN, fiqr_total DOUBLE)")
        line = 1
        for pid, (indication, instrument, values, stop, events) in cases.items():
            con.execute("INSERT INTO core.patients VALUES (?, 'site-a', ?, 'ldn', 'F', 62, 2024)", [pid, indication])
            for day, value in values:
                line += 1
                con.execute("INSERT INTO staging.measurements VALUES (?, ?, ?, ?, 'cases/measurements.csv', ?)",
                            [pid, day, instrument, value, line])
            if stop:
                con.execute("INSERT INTO staging.discontinuations VALUES (?, ?, ?)", [pid, *stop])
            for day, event, action in events:
                con.execute("INSERT INTO staging.adverse_events VALUES (?, ?, ?, 'moderate', ?)",
                            [pid, day, event, action])
        run_sql(con, "staging", "stage_patients", table_name="patients")
        run_sql(con, "response", "measure_values")
        run_sql(con, "response", "score_every_patient")
        run_sql(con, "response", "patient_response")
        cursor = con.execute("SELECT * FROM response.patient_response_to_score")
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    finally:
        con.close()
