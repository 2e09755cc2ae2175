-- Exports whose dataset checks all stored their outcomes, per application (written once every
-- dataset suite has run for an export): an applied export missing here is checked by the next
-- run, whatever happened to the run that applied it (sql/quality/unchecked_exports.sql).
CREATE TABLE IF NOT EXISTS quality.dataset_checked (export_id VARCHAR, applied_at VARCHAR);
