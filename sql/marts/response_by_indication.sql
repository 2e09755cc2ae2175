-- Response categories per indication x regimen, per indication group, and for all
-- patients. Rates are over evaluable patients (meaningful + minimal + intolerant), with
-- Wilson 95% intervals (clamped to 0-100 against rounding at p = 0 or 1); small cells are
-- suppressed only in the release bundle (pipelines/release/disclosure.py).
CREATE OR REPLACE TABLE marts.response_by_indication AS
WITH counted AS (
    SELECT level, indication_group, indication, regimen,
           count(*) AS n_patients,
           n_category(category, 'meaningful') AS n_meaningful,
           n_category(category, 'minimal') AS n_minimal,
           n_category(category, 'intolerant') AS n_intolerant,
           n_category(category, 'not_assessable') AS n_not_assessable,
           max(rules_version) AS rules_version
    FROM (
        SELECT 'indication' AS level, indication_group, indication, regimen, category, rules_version
        FROM marts.patient_response
        UNION ALL
        SELECT 'indication_group', indication_group, NULL, NULL, category, rules_version
        FROM marts.patient_response
        UNION ALL
        -- indication = 'all', as in cohort_flow, tolerability and titration: a join on indication keeps it.
        SELECT 'all', NULL, 'all', NULL, category, rules_version FROM marts.patient_response
    ) t
    GROUP BY level, indication_group, indication, regimen
),
rated AS (
    SELECT *, n_meaningful + n_minimal + n_intolerant AS n_evaluable FROM counted
)
SELECT level, indication_group, indication, regimen, n_patients, n_evaluable,
       n_meaningful, n_minimal, n_intolerant, n_not_assessable,
       pct_of(n_meaningful, n_evaluable) AS pct_meaningful,
       wilson_low(n_meaningful, n_evaluable) AS pct_meaningful_low,
       wilson_high(n_meaningful, n_evaluable) AS pct_meaningful_high,
       pct_of(n_minimal, n_evaluable) AS pct_minimal,
       wilson_low(n_minimal, n_evaluable) AS pct_minimal_low,
       wilson_high(n_minimal, n_evaluable) AS pct_minimal_high,
       pct_of(n_intolerant, n_evaluable) AS pct_intolerant,
       wilson_low(n_intolerant, n_evaluable) AS pct_intolerant_low,
       wilson_high(n_intolerant, n_evaluable) AS pct_intolerant_high,
       rules_version
FROM rated
ORDER BY CASE level WHEN 'indication' THEN 1 WHEN 'indication_group' THEN 2 ELSE 3 END,
         indication_group, indication, regimen;
