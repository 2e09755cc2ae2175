-- Every instrument's values by visit week and category: median and quartiles of the
-- value and of percent change from baseline, over the per-patient points in
-- response.trajectory_points (sql/response/trajectory_points.sql).
CREATE OR REPLACE TABLE marts.measure_trajectory AS
SELECT indication, instrument, visit_week, category,
       count(*) AS n_patients,  -- one value per patient and week
       percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS value_median,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY value) AS value_p25,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY value) AS value_p75,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY pct_change) AS pct_change_median,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY pct_change) AS pct_change_p25,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY pct_change) AS pct_change_p75,
       max(p.rules_version) AS rules_version
FROM response.trajectory_points t
JOIN marts.patient_response p USING (patient_id)
GROUP BY indication, instrument, visit_week, category
ORDER BY indication, instrument, visit_week, category;
