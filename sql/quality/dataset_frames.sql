-- What the dataset suites validate, every export to check (quality.exports_to_check) at once, each
-- against the exports applied before it (byte order of names: the apply order): one view per
-- suite, one validation per suite over all the exports. The reference is a running sum over the
-- earlier exports' profiles (a window ending one row before), so many exports cost one pass.
CREATE OR REPLACE TEMP VIEW frame_dataset_distribution AS
WITH earlier AS (
    SELECT export_id, measure, n_rows, mean, p90,
           sum(mean * n_rows) OVER before / sum(n_rows) OVER before AS reference_mean,
           sum(p90 * n_rows) OVER before / sum(n_rows) OVER before AS reference_p90
    FROM quality.export_profiles
    WHERE table_name = 'measurements' AND measure <> '(rows)'
    WINDOW before AS (PARTITION BY measure ORDER BY export_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT export_id, measure AS instrument, n_rows, mean, p90, reference_mean, reference_p90,
       mean / NULLIF(reference_mean, 0) AS mean_ratio, p90 / NULLIF(reference_p90, 0) AS p90_ratio
FROM earlier
WHERE export_id IN (SELECT export_id FROM quality.exports_to_check);

CREATE OR REPLACE TEMP VIEW frame_dataset_volume AS
WITH earlier AS (
    SELECT export_id, table_name, n_rows, n_patients,
           sum(n_rows) OVER before / NULLIF(sum(n_patients) OVER before, 0) AS reference_rows_per_patient
    FROM quality.export_profiles
    WHERE measure = '(rows)'
    WINDOW before AS (PARTITION BY table_name ORDER BY export_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT export_id, table_name, n_rows, n_patients,
       n_rows / NULLIF(n_patients, 0) AS rows_per_patient, reference_rows_per_patient,
       (n_rows / NULLIF(n_patients, 0)) / NULLIF(reference_rows_per_patient, 0) AS volume_ratio
FROM earlier
WHERE export_id IN (SELECT export_id FROM quality.exports_to_check);

CREATE OR REPLACE TEMP VIEW frame_dataset_completeness AS
SELECT export_id, n_patients, with_baseline, with_baseline / NULLIF(n_patients, 0) AS baseline_share
FROM quality.export_profiles
WHERE measure = 'baseline' AND export_id IN (SELECT export_id FROM quality.exports_to_check);
