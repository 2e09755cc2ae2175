-- What the dataset suites validate for one export (${export_id}), each export against the
-- exports applied before it (byte order of names: the apply order): one view per suite.
CREATE OR REPLACE TEMP VIEW frame_dataset_distribution AS
SELECT p.export_id, p.measure AS instrument, p.n_rows, p.mean, p.p90,
       r.mean AS reference_mean, r.p90 AS reference_p90,
       p.mean / NULLIF(r.mean, 0) AS mean_ratio, p.p90 / NULLIF(r.p90, 0) AS p90_ratio
FROM quality.export_profiles p
LEFT JOIN (
    SELECT measure, sum(mean * n_rows) / sum(n_rows) AS mean, sum(p90 * n_rows) / sum(n_rows) AS p90
    FROM quality.export_profiles
    WHERE table_name = 'measurements' AND export_id < ${export_id}
    GROUP BY measure
) r USING (measure)
WHERE p.table_name = 'measurements' AND p.measure <> '(rows)' AND p.export_id = ${export_id};

CREATE OR REPLACE TEMP VIEW frame_dataset_volume AS
SELECT p.export_id, p.table_name, p.n_rows, p.n_patients,
       p.n_rows / NULLIF(p.n_patients, 0) AS rows_per_patient,
       r.rows_per_patient AS reference_rows_per_patient,
       (p.n_rows / NULLIF(p.n_patients, 0)) / NULLIF(r.rows_per_patient, 0) AS volume_ratio
FROM quality.export_profiles p
LEFT JOIN (
    SELECT table_name, sum(n_rows) / NULLIF(sum(n_patients), 0) AS rows_per_patient
    FROM quality.export_profiles
    WHERE measure = '(rows)' AND export_id < ${export_id}
    GROUP BY table_name
) r USING (table_name)
WHERE p.measure = '(rows)' AND p.export_id = ${export_id};

CREATE OR REPLACE TEMP VIEW frame_dataset_completeness AS
SELECT export_id, n_patients, with_baseline, with_baseline / NULLIF(n_patients, 0) AS baseline_share
FROM quality.export_profiles
WHERE measure = 'baseline' AND export_id = ${export_id};
