-- FIQR questionnaires scored from item answers (Bennett et al. 2009):
-- function = sum(items 1-9) / 3, prorated x 9 / answered when one item is missing;
-- overall impact = sum(items 10-11); symptoms = sum(items 12-21) / 2; total = the sum.
-- Two or more missing function items, or any missing overall or symptom item: unscorable.
-- In DOUBLE (as DuckDB computes `sum * 9.0 / n`): Spark would compute it in DECIMAL, rounded
-- to a scale of its own.
CREATE OR REPLACE TABLE response.fiqr_questionnaires AS
WITH by_domain AS (
    SELECT patient_id, study_day,
           count(CASE WHEN item BETWEEN 1 AND 9 THEN 1 END) AS n_function,
           sum(CASE WHEN item BETWEEN 1 AND 9 THEN value END) AS sum_function,
           count(CASE WHEN item BETWEEN 10 AND 11 THEN 1 END) AS n_overall,
           sum(CASE WHEN item BETWEEN 10 AND 11 THEN value END) AS sum_overall,
           count(CASE WHEN item BETWEEN 12 AND 21 THEN 1 END) AS n_symptom,
           sum(CASE WHEN item BETWEEN 12 AND 21 THEN value END) AS sum_symptom,
           -- every file that holds one of the day's items (a later export may re-send a few)
           array_to_string(array_sort(array_distinct(array_agg(source_file))), ' + ') AS source_file,
           max(export_id) AS export_id
    FROM staging.fiqr_items
    GROUP BY patient_id, study_day
)
SELECT patient_id, study_day, export_id, source_file,
       n_function >= 8 AND n_overall = 2 AND n_symptom = 10 AS scorable,
       CASE WHEN n_function >= 8 AND n_overall = 2 AND n_symptom = 10
            THEN CAST(sum_function AS DOUBLE) * 9 / n_function / 3 + sum_overall + CAST(sum_symptom AS DOUBLE) / 2
       END AS fiqr_total
FROM by_domain;

-- Where a scored questionnaire and a delivered fiqr_total share a patient and day, the
-- scored one wins; a difference above 1 point is a data-quality finding.
CREATE OR REPLACE TABLE response.fiqr_disagreements AS
SELECT q.patient_id, q.study_day, q.export_id, m.export_id AS measurement_export_id,
       m.source_file, m.line_number, abs(q.fiqr_total - m.value) AS difference
FROM response.fiqr_questionnaires q
JOIN staging.measurements m
  ON m.patient_id = q.patient_id AND m.study_day = q.study_day AND m.instrument = 'fiqr_total'
WHERE q.scorable AND abs(q.fiqr_total - m.value) > 1;
