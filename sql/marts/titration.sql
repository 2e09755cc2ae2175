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
),
counted AS (
    SELECT coalesce(s.indication, 'all') AS indication, s.starting_dose_band, s.band_order,
           count(*) AS n_patients,
           count(sl.patient_id) AS n_sleep_event,
           n_category(r.category, 'intolerant') AS n_intolerant,
           max(r.rules_version) AS rules_version
    FROM starts s
    JOIN marts.patient_response r USING (patient_id)
    LEFT JOIN sleep sl ON sl.patient_id = s.patient_id  -- ON: see cohort_flow.sql
    GROUP BY GROUPING SETS ((s.indication, s.starting_dose_band, s.band_order),
                            (s.starting_dose_band, s.band_order))
)
SELECT indication, starting_dose_band, band_order, n_patients,
       n_sleep_event, pct_of(n_sleep_event, n_patients) AS pct_sleep_event,
       wilson_low(n_sleep_event, n_patients) AS pct_sleep_event_low,
       wilson_high(n_sleep_event, n_patients) AS pct_sleep_event_high,
       n_intolerant, pct_of(n_intolerant, n_patients) AS pct_intolerant,
       wilson_low(n_intolerant, n_patients) AS pct_intolerant_low,
       wilson_high(n_intolerant, n_patients) AS pct_intolerant_high,
       rules_version
FROM counted
ORDER BY indication = 'all', indication, band_order;
