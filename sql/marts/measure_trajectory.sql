-- Every instrument's values by visit week and category: median and quartiles of the
-- value and of percent change from baseline, over the per-patient points in
-- response.trajectory_points (sql/response/trajectory_points.sql).
-- The quantiles are exact (percentile_cont's linear interpolation between the ranks around
-- (n - 1) * p: rank_quantile in sql/marts/functions.sql), read off ranks from a sort, which
-- spills to disk, rather than from percentile_cont's per-group buffers, which do not: at 10^8
-- measurement rows those ran out of DuckDB's memory cap.
CREATE OR REPLACE TABLE marts.measure_trajectory AS
WITH points AS (
    SELECT p.indication, t.instrument, t.visit_week, p.category, t.value, t.pct_change, p.rules_version
    FROM response.trajectory_points t
    JOIN marts.patient_response p USING (patient_id)
),
value_ranks AS (
    SELECT indication, instrument, visit_week, category, value, rules_version,
           row_number() OVER (PARTITION BY indication, instrument, visit_week, category ORDER BY value) - 1 AS r,
           count(*) OVER (PARTITION BY indication, instrument, visit_week, category) AS n
    FROM points
),
values_by_week AS (
    SELECT indication, instrument, visit_week, category,
           count(*) AS n_patients,  -- one value per patient and week
           rank_quantile(value, r, n, 0.5) AS value_median,
           rank_quantile(value, r, n, 0.25) AS value_p25,
           rank_quantile(value, r, n, 0.75) AS value_p75,
           max(rules_version) AS rules_version
    FROM value_ranks
    GROUP BY indication, instrument, visit_week, category
),
change_ranks AS (  -- percent change is NULL without a baseline: ranked among the others
    SELECT indication, instrument, visit_week, category, pct_change,
           row_number() OVER (PARTITION BY indication, instrument, visit_week, category ORDER BY pct_change) - 1
               AS r,
           count(*) OVER (PARTITION BY indication, instrument, visit_week, category) AS n
    FROM points
    WHERE pct_change IS NOT NULL
),
changes_by_week AS (
    SELECT indication, instrument, visit_week, category,
           rank_quantile(pct_change, r, n, 0.5) AS pct_change_median,
           rank_quantile(pct_change, r, n, 0.25) AS pct_change_p25,
           rank_quantile(pct_change, r, n, 0.75) AS pct_change_p75
    FROM change_ranks
    GROUP BY indication, instrument, visit_week, category
)
SELECT v.indication, v.instrument, v.visit_week, v.category, v.n_patients,
       v.value_median, v.value_p25, v.value_p75,
       c.pct_change_median, c.pct_change_p25, c.pct_change_p75, v.rules_version
FROM values_by_week v
LEFT JOIN changes_by_week c USING (indication, instrument, visit_week, category)
ORDER BY indication, instrument, visit_week, category;
