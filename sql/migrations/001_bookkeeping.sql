-- The warehouse's schemas and the bookkeeping tables the pipeline keeps across runs. Every
-- statement creates only what is missing: a warehouse from before numbered migrations takes
-- this one as it stands. Owners: ingest, quality and the response bookkeeping here; core.<table>
-- the contract (pipelines/ingest/load.py); staging, response and marts tables their SQL models.
CREATE SCHEMA IF NOT EXISTS ingest;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS response;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS quality;

-- One row per source file applied: the reconciliation's left-hand side and its parts.
CREATE TABLE IF NOT EXISTS ingest.applied_files (
    export_id VARCHAR, table_name VARCHAR, source_file VARCHAR, fingerprint VARCHAR,
    rows_read BIGINT, accepted BIGINT, quarantined BIGINT, duplicates BIGINT,
    rejected_file BOOLEAN, applied_at TIMESTAMP
);
-- One row per export and table applied: an export is applied once every table has taken
-- it (a run stopped half-way through the ingest leaves the rest pending, not lost).
CREATE TABLE IF NOT EXISTS ingest.applied_exports (
    export_id VARCHAR, table_name VARCHAR, applied_at TIMESTAMP
);
-- What an export holds besides the contract's tables, and which tables it lacks: reported
-- in data quality, nothing else happens to them (names that look like identifiers redacted).
CREATE TABLE IF NOT EXISTS ingest.export_findings (
    export_id VARCHAR, check_name VARCHAR, table_name VARCHAR, detail VARCHAR
);
-- Row- and file-level quarantine found at ingest (orphans are judged later, on the final state).
CREATE TABLE IF NOT EXISTS ingest.quarantine (
    export_id VARCHAR, table_name VARCHAR, source_file VARCHAR, line_number BIGINT,
    rule VARCHAR, column_name VARCHAR, detail VARCHAR, rows_affected BIGINT
);
-- Columns a file carried that the contract does not know (ignored, listed in data quality).
CREATE TABLE IF NOT EXISTS ingest.extra_columns (
    export_id VARCHAR, table_name VARCHAR, source_file VARCHAR, column_name VARCHAR
);
-- What the warehouse was built with; a change of contract means a rebuild from the raw exports.
CREATE TABLE IF NOT EXISTS ingest.state (contract_hash VARCHAR);

-- Quality bookkeeping: orphans judged on the final state, what GX found per export,
-- the check catalogue (rules/quality_checks.yaml) and the run log behind marts.run_info.
CREATE TABLE IF NOT EXISTS quality.orphan_rows (
    export_id VARCHAR, table_name VARCHAR, source_file VARCHAR, line_number BIGINT,
    rule VARCHAR, column_name VARCHAR, detail VARCHAR, rows_affected BIGINT
);
-- Great Expectations outcomes, one row per expectation for the rows a check validated:
-- export_id names their exports ('(all)': every export). A run validates the rows it
-- changed, so earlier exports keep the outcomes of the run that applied them.
CREATE TABLE IF NOT EXISTS quality.gx_outcomes (
    export_id VARCHAR, table_name VARCHAR, check_name VARCHAR, description VARCHAR,
    rows_checked BIGINT, rows_failed BIGINT, threshold_pct DOUBLE, severity VARCHAR
);
CREATE TABLE IF NOT EXISTS quality.run_log (
    run_id VARCHAR, run_time TIMESTAMP, ingest_mode VARCHAR, exports_applied VARCHAR,
    exports_new VARCHAR, rules_version VARCHAR, code_version VARCHAR, rows_in BIGINT,
    rows_accepted BIGINT, rows_quarantined BIGINT, rows_duplicate BIGINT, patients_out BIGINT,
    status VARCHAR
);

-- Profiles of the exports applied, for the dataset-level checks (sql/quality/export_profiles.sql
-- fills it): one per export and table or measure.
CREATE TABLE IF NOT EXISTS quality.export_profiles (
    export_id VARCHAR, table_name VARCHAR, measure VARCHAR, n_rows BIGINT, n_patients BIGINT,
    mean DOUBLE, p90 DOUBLE, with_baseline BIGINT
);

-- The per-patient refresh (pipelines/response/incremental.py): what each per-patient table was
-- computed with and from, and the patients its last refresh recomputed (what its GX suite validates).
CREATE TABLE IF NOT EXISTS response.per_patient_state (
    table_name VARCHAR, fingerprint VARCHAR, export_id VARCHAR, applied_at VARCHAR
);
CREATE TABLE IF NOT EXISTS response.refreshed_patients (table_name VARCHAR, patient_id VARCHAR);
