-- Adverse events by the dose band the patient was on that day: patients with the event,
-- as a share of the patients ever exposed to that band, and how many stopped because of it.
-- Per indication, and over all indications (indication = 'all') so small clinics still see rates.
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
)
SELECT c.indication, c.regimen, c.event, c.dose_band, x.band_order, x.n_exposed,
       c.n_patients, pct_of(c.n_patients, x.n_exposed) AS pct_exposed,
       wilson_low(c.n_patients, x.n_exposed) AS pct_exposed_low,
       wilson_high(c.n_patients, x.n_exposed) AS pct_exposed_high,
       c.n_discontinued,
       (SELECT max(rules_version) FROM response.rules) AS rules_version
FROM counted c JOIN exposed x USING (indication, regimen, dose_band)
ORDER BY c.indication = 'all', c.indication, c.regimen, c.event, x.band_order;
