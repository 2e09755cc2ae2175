-- A per-patient table rebuilt in full (first build, changed rules or SQL, or an engine that
-- recomputes every run): every staged patient is to be scored.
CREATE OR REPLACE TABLE response.patients_to_score AS SELECT patient_id FROM staging.patients;
