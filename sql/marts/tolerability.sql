-- Adverse events by the dose band the patient was on that day: patients with the event,
-- as a share of the patients ever exposed to that band, and how many stopped because of it.
-- Per indication, and over all indications (indication = 'all') so small clinics still see rates.
-- Every event reported for a regimen has a row for every band its patients were exposed to,
-- a true 0 included (a missing row would read as "unknown", and a chart would draw nothing).
CREATE OR REPLACE TABLE marts.tolerability AS
WITH exposed AS (
    SELECT coalesce(indication, 'all') AS indication, regimen, dose_band, band_order,
           count(DISTINCT patient_id) AS n_exposed
    FROM response.dose_periods
    GROUP BY GROUPING SETS ((indication, regimen, dose_band, band_order), (regimen, dose_band, band_order))
),
events AS (
    SELECT a.patient_id, a.event, a.action, dp.indication, dp.regimen, dp.dose_band
    FROM staging.adverse_events a
    JOIN response.dose_periods dp
      ON dp.patient_id = a.patient_id AND a.study_day >= dp.from_day
     AND (dp.until_day IS NULL OR a.study_day < dp.until_day)
),
counted AS (
    SELECT coalesce(indication, 'all') AS indication, regimen, event, dose_band,
           count(DISTINCT patient_id) AS n_patients,
           count(DISTINCT CASE WHEN action = 'discontinued' THEN patient_id END) AS n_discontinued
    FROM events
    GROUP BY GROUPING SETS ((indication, regimen, event, dose_band), (regimen, event, dose_band))
),
grid AS (
    SELECT x.*, e.event
    FROM exposed x JOIN (SELECT DISTINCT regimen, event FROM events) e USING (regimen)
),
rows AS (
    SELECT g.indication, g.regimen, g.event, g.dose_band, g.band_order, g.n_exposed,
           coalesce(c.n_patients, 0) AS n_patients, coalesce(c.n_discontinued, 0) AS n_discontinued
    FROM grid g LEFT JOIN counted c USING (indication, regimen, event, dose_band)
)
SELECT indication, regimen, event, dose_band, band_order, n_exposed, n_patients,
       pct_of(n_patients, n_exposed) AS pct_exposed,
       wilson_low(n_patients, n_exposed) AS pct_exposed_low,
       wilson_high(n_patients, n_exposed) AS pct_exposed_high,
       n_discontinued,
       (SELECT max(rules_version) FROM response.rules) AS rules_version
FROM rows
ORDER BY indication = 'all', indication, regimen, event, band_order;
