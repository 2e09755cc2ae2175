-- A per-patient table rebuilt in full from the view ${scoped_view} over response.patients_to_score
-- (every patient; refresh_per_patient.sql replaces only some).
CREATE OR REPLACE TABLE ${table_name} AS SELECT * FROM ${scoped_view};
