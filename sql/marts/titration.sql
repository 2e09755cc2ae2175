-- LDN starting dose band vs sleep events in the first days and intolerance: what
-- starting at full dose instead of titrating does.
CREATE OR REPLACE TABLE marts.titration AS
WITH starts AS (
    SELECT patient_id, indication, dose_band AS starting_dose_band, band_order
    FROM response.dose_periods WHERE regimen = 'ldn' AND dose_no = 1
),
sleep AS (
    SELECT DISTINCT a.patient_id
    FROM staging.adverse_events a
    JOIN response.early_sleep_events e ON e.event = a.event
    WHERE a.study_day >= 0 AND a.study_day < e.within_days
)
SELECT coalesce(s.indication, 'all') AS indication, s.starting_dose_band, s.band_order,
       count(*) AS n_patients,
       count(sl.patient_id) AS n_sleep_event,
       100.0 * count(sl.patient_id) / count(*) AS pct_sleep_event,
       count(CASE WHEN r.category = 'intolerant' THEN 1 END) AS n_intolerant,
       100.0 * count(CASE WHEN r.category = 'intolerant' THEN 1 END) / count(*) AS pct_intolerant,
       max(r.rules_version) AS rules_version
FROM starts s
JOIN marts.patient_response r USING (patient_id)
LEFT JOIN sleep sl USING (patient_id)
GROUP BY GROUPING SETS ((s.indication, s.starting_dose_band, s.band_order), (s.starting_dose_band, s.band_order))
ORDER BY coalesce(s.indication, 'all') = 'all', coalesce(s.indication, 'all'), s.band_order;
