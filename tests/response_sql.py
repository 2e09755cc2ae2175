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
#              adverse events [(day, event, action)]); every row numbered in one sequence of lines,
#              in this order, from 2

Case = tuple[str, str, list[tuple[int, float]], tuple[int, str] | None, list[tuple[int, str, str]]]


def _scored(con, cases: dict[str, Case], rules_file: Path, contract: Contract | None) -> None:
    """The cases' input tables in `con`, and the category view over them."""
    contract = contract or load_contract(RULES_DIR / "contract.yaml")
    for schema in ("core", "staging", "response"):
        con.execute(f"CREATE SCHEMA {schema}")
    write_rules_table(con, load_rules(rules_file, contract), contract)
    con.execute("CREATE TABLE core.patients (patient_id VARCHAR, site_id VARCHAR, indication VARCHAR, "
                "regimen VARCHAR, sex VARCHAR, age_years BIGINT, start_year BIGINT)")
    con.execute("CREATE TABLE staging.measurements (patient_id VARCHAR, study_day BIGINT, instrument VARCHAR, "
                "value DOUBLE, source_file VARCHAR, line_number BIGINT)")
    con.execute("CREATE TABLE staging.discontinuations (patient_id VARCHAR, study_day BIGINT, reason VARCHAR, "
                "source_file VARCHAR, line_number BIGINT)")
    con.execute("CREATE TABLE staging.adverse_events (patient_id VARCHAR, study_day BIGINT, event VARCHAR, "
                "severity VARCHAR, action VARCHAR, source_file VARCHAR, line_number BIGINT)")
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
            line += 1
            con.execute("INSERT INTO staging.discontinuations VALUES (?, ?, ?, 'cases/discontinuations.csv', ?)",
                        [pid, *stop, line])
        for day, event, action in events:
            line += 1
            con.execute("INSERT INTO staging.adverse_events VALUES (?, ?, ?, 'moderate', ?, "
                        "'cases/adverse_events.csv', ?)", [pid, day, event, action, line])
    run_sql(con, "staging", "stage_patients", table_name="patients")
    run_sql(con, "response", "measure_values")
    run_sql(con, "response", "score_every_patient")
    run_sql(con, "response", "patient_response")


def _rows(con, query: str) -> list[dict]:
    cursor = con.execute(query)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def categorise(cases: dict[str, Case], rules_file: Path = RULES_DIR / "response_rules.yaml",
               contract: Contract | None = None) -> dict[str, dict]:
    """Each case's row of the category view (patient_response_to_score), by patient id."""
    con = duckdb.connect()
    try:
        _scored(con, cases, rules_file, contract)
        return {row["patient_id"]: row for row in _rows(con, "SELECT * FROM response.patient_response_to_score")}
    finally:
        con.close()


def cohort_flow(cases: dict[str, Case]) -> dict[str, dict]:
    """sql/marts/cohort_flow.sql over the cases' categories: its rows by indication."""
    con = duckdb.connect()
    try:
        _scored(con, cases, RULES_DIR / "response_rules.yaml", None)
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.patient_response AS SELECT * FROM response.patient_response_to_score")
        run_sql(con, "marts", "functions")
        run_sql(con, "marts", "cohort_flow")
        return {row["indication"]: row for row in _rows(con, "FROM marts.cohort_flow")}
    finally:
        con.close()
