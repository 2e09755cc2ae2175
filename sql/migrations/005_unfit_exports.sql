-- Complete folders whose name does not fit the export name grammar (rules/contract.yaml
-- `exports`): not applied, described without their name; rewritten by every run's plan.
CREATE TABLE IF NOT EXISTS ingest.unfit_exports (detail VARCHAR);
