-- Every instrument's values by visit week (nearest week within the window) and category:
-- value and percent change from that instrument's own baseline (latest in the baseline window).
CREATE OR REPLACE TABLE marts.measure_trajectory AS
WITH r AS (SELECT DISTINCT baseline_from, baseline_to, rules_version FROM response.rules),
patients AS (
    SELECT patient_id, indication, category, rules_version FROM marts.patient_response
),
baselines AS (
    SELECT patient_id, instrument, value AS baseline_value FROM (
        SELECT v.*, row_number() OVER (PARTITION BY v.patient_id, v.instrument
                                       ORDER BY v.study_day DESC) AS rn
        FROM response.measure_values v, r
        WHERE v.study_day BETWEEN r.baseline_from AND r.baseline_to
    ) WHERE rn = 1
),
in_week AS (
    SELECT v.patient_id, v.instrument, v.value, w.visit_week,
           row_number() OVER (PARTITION BY v.patient_id, v.instrument, w.visit_week
                              ORDER BY abs(v.study_day - 7 * w.visit_week), v.study_day) AS rn_week,
           row_number() OVER (PARTITION BY v.patient_id, v.instrument, v.study_day
                              ORDER BY abs(v.study_day - 7 * w.visit_week), w.visit_week) AS rn_day
    FROM response.measure_values v
    JOIN response.visit_weeks w ON abs(v.study_day - 7 * w.visit_week) <= w.window_days
),
points AS (
    SELECT p.indication, i.instrument, i.visit_week, p.category, i.patient_id, i.value,
           100.0 * (i.value - b.baseline_value) / NULLIF(b.baseline_value, 0) AS pct_change,
           p.rules_version
    FROM in_week i
    JOIN patients p USING (patient_id)
    LEFT JOIN baselines b USING (patient_id, instrument)
    WHERE i.rn_week = 1 AND i.rn_day = 1
)
SELECT indication, instrument, visit_week, category,
       count(DISTINCT patient_id) AS n_patients,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS value_median,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY value) AS value_p25,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY value) AS value_p75,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY pct_change) AS pct_change_median,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY pct_change) AS pct_change_p25,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY pct_change) AS pct_change_p75,
       false AS suppressed, max(rules_version) AS rules_version
FROM points
GROUP BY indication, instrument, visit_week, category
ORDER BY indication, instrument, visit_week, category;
