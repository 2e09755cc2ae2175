-- Response categories per indication x regimen, per indication group, and for all
-- patients. Rates are over evaluable patients (meaningful + minimal + intolerant), with
-- Wilson 95% intervals (clamped to 0-100 against rounding at p = 0 or 1); small cells are
-- suppressed only in the release bundle (pipelines/release/disclosure.py).
CREATE OR REPLACE TABLE marts.response_by_indication AS
WITH counted AS (
    SELECT level, indication_group, indication, regimen,
           count(*) AS n_patients,
           count(CASE WHEN category = 'meaningful' THEN 1 END) AS n_meaningful,
           count(CASE WHEN category = 'minimal' THEN 1 END) AS n_minimal,
           count(CASE WHEN category = 'intolerant' THEN 1 END) AS n_intolerant,
           count(CASE WHEN category = 'not_assessable' THEN 1 END) AS n_not_assessable,
           max(rules_version) AS rules_version
    FROM (
        SELECT 'indication' AS level, indication_group, indication, regimen, category, rules_version
        FROM marts.patient_response
        UNION ALL
        SELECT 'indication_group', indication_group, NULL, NULL, category, rules_version
        FROM marts.patient_response
        UNION ALL
        SELECT 'all', NULL, NULL, NULL, category, rules_version FROM marts.patient_response
    ) t
    GROUP BY level, indication_group, indication, regimen
),
rated AS (
    SELECT *, n_meaningful + n_minimal + n_intolerant AS n_evaluable, 1.959963984540054 AS z
    FROM counted
),
wilson AS (
    SELECT *,
        n_meaningful * 1.0 / NULLIF(n_evaluable, 0) AS p_meaningful,
        n_minimal * 1.0 / NULLIF(n_evaluable, 0) AS p_minimal,
        n_intolerant * 1.0 / NULLIF(n_evaluable, 0) AS p_intolerant
    FROM rated
)
SELECT level, indication_group, indication, regimen, n_patients, n_evaluable,
       n_meaningful, n_minimal, n_intolerant, n_not_assessable,
       100 * p_meaningful AS pct_meaningful,
       least(100, greatest(0, 100 * (p_meaningful + z * z / (2 * n_evaluable)
              - z * sqrt(p_meaningful * (1 - p_meaningful) / n_evaluable + z * z / (4 * n_evaluable * n_evaluable)))
           / (1 + z * z / n_evaluable))) AS pct_meaningful_low,
       least(100, greatest(0, 100 * (p_meaningful + z * z / (2 * n_evaluable)
              + z * sqrt(p_meaningful * (1 - p_meaningful) / n_evaluable + z * z / (4 * n_evaluable * n_evaluable)))
           / (1 + z * z / n_evaluable))) AS pct_meaningful_high,
       100 * p_minimal AS pct_minimal,
       least(100, greatest(0, 100 * (p_minimal + z * z / (2 * n_evaluable)
              - z * sqrt(p_minimal * (1 - p_minimal) / n_evaluable + z * z / (4 * n_evaluable * n_evaluable)))
           / (1 + z * z / n_evaluable))) AS pct_minimal_low,
       least(100, greatest(0, 100 * (p_minimal + z * z / (2 * n_evaluable)
              + z * sqrt(p_minimal * (1 - p_minimal) / n_evaluable + z * z / (4 * n_evaluable * n_evaluable)))
           / (1 + z * z / n_evaluable))) AS pct_minimal_high,
       100 * p_intolerant AS pct_intolerant,
       least(100, greatest(0, 100 * (p_intolerant + z * z / (2 * n_evaluable)
              - z * sqrt(p_intolerant * (1 - p_intolerant) / n_evaluable + z * z / (4 * n_evaluable * n_evaluable)))
           / (1 + z * z / n_evaluable))) AS pct_intolerant_low,
       least(100, greatest(0, 100 * (p_intolerant + z * z / (2 * n_evaluable)
              + z * sqrt(p_intolerant * (1 - p_intolerant) / n_evaluable + z * z / (4 * n_evaluable * n_evaluable)))
           / (1 + z * z / n_evaluable))) AS pct_intolerant_high,
       rules_version
FROM wilson
ORDER BY CASE level WHEN 'indication' THEN 1 WHEN 'indication_group' THEN 2 ELSE 3 END,
         indication_group, indication, regimen;
