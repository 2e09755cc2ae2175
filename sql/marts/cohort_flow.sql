-- From enrolment to a category, per indication (and all patients).
CREATE OR REPLACE TABLE marts.cohort_flow AS
-- Off treatment before the assessment window opens: the same two stops as the response rules
-- (a discontinuation, or an adverse event with action `discontinued`), each patient once.
WITH r AS (SELECT DISTINCT assessment_from FROM response.rules),
early_stop AS (
    SELECT d.patient_id FROM staging.discontinuations d, r WHERE d.study_day < r.assessment_from
    UNION
    SELECT a.patient_id FROM staging.adverse_events a, r
    WHERE a.action = 'discontinued' AND a.study_day < r.assessment_from
),
flow AS (
    SELECT coalesce(p.indication, 'all') AS indication,
           count(*) AS enrolled,
           count(p.baseline_value) AS with_baseline,
           count(*) - count(e.patient_id) AS reached_assessment_window,
           count(p.assessment_value) AS assessed,
           n_category(p.category, 'meaningful') AS n_meaningful,
           n_category(p.category, 'minimal') AS n_minimal,
           n_category(p.category, 'intolerant') AS n_intolerant,
           n_category(p.category, 'not_assessable') AS n_not_assessable,
           max(p.rules_version) AS rules_version
    -- ON, not USING: Spark loses a USING join's hidden column (e.patient_id) under GROUPING SETS
    FROM marts.patient_response p LEFT JOIN early_stop e ON e.patient_id = p.patient_id
    GROUP BY GROUPING SETS ((p.indication), ())
)
SELECT indication, enrolled, with_baseline, reached_assessment_window, assessed,
       n_meaningful, n_minimal, n_intolerant, n_not_assessable, rules_version
FROM flow
ORDER BY indication = 'all', indication;
