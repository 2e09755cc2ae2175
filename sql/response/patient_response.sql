-- Each patient's response category under the rules in response.rules (from the rules file).
-- Every criterion counts in the primary measure's own direction (response.instruments, from
-- the instrument registry): improvement_abs and improvement_pct are the change signed so that
-- positive is better, so a higher-is-better instrument improves when it rises.
-- First match wins: intolerant, minimal (stopped for lack of effect), not_assessable,
-- meaningful, minimal. Plain SQL (NULLIF division; arg_min/arg_max only over non-NULL
-- values, as sqlglot maps them to Spark's min_by/max_by) so it transpiles.
CREATE OR REPLACE VIEW response.patient_response_to_score AS
WITH patients AS (
    SELECT p.*, r.* EXCLUDE (indication, indication_group),  -- both are staging.patients' already
           i.improvement_sign
    FROM staging.patients p JOIN response.rules r USING (indication)
    JOIN response.instruments i ON i.instrument = r.primary_measure
    SEMI JOIN response.patients_to_score s USING (patient_id)
),
primary_values AS (
    SELECT v.*, p.baseline_from, p.baseline_to, p.assessment_from, p.assessment_to, p.target_day
    FROM response.measure_values v
    JOIN patients p ON p.patient_id = v.patient_id AND p.primary_measure = v.instrument
),
-- One aggregate per window instead of a sort: min_by/max_by on a key that is unique per
-- patient (one primary value per patient and day), so value, day and source agree.
baseline AS (
    SELECT patient_id, max(study_day) AS baseline_day,
           arg_max(value, study_day) AS baseline_value, arg_max(source_file, study_day) AS baseline_file,
           arg_max(line_number, study_day) AS baseline_line
    FROM primary_values WHERE study_day BETWEEN baseline_from AND baseline_to
    GROUP BY patient_id
),
assessment AS (
    -- closest to the target day; on a tie the later day (a smaller key wins)
    SELECT patient_id,
           arg_min(study_day, abs(study_day - target_day) * 100000 - study_day) AS assessment_day,
           arg_min(value, abs(study_day - target_day) * 100000 - study_day) AS assessment_value,
           arg_min(source_file, abs(study_day - target_day) * 100000 - study_day) AS assessment_file,
           arg_min(line_number, abs(study_day - target_day) * 100000 - study_day) AS assessment_line
    FROM primary_values WHERE study_day BETWEEN assessment_from AND assessment_to
    GROUP BY patient_id
),
-- One discontinuation row per patient (the contract's key), so its day and reason are the stop's.
stops AS (
    SELECT d.patient_id,
           max(CASE WHEN d.reason = 'adverse_event' THEN 1 ELSE 0 END) AS stopped_for_ae,
           max(CASE WHEN d.reason = 'lack_of_effect' THEN 1 ELSE 0 END) AS stopped_for_lack,
           min(d.study_day) AS stop_day,
           max(d.source_file) AS stop_file, max(d.line_number) AS stop_line
    FROM staging.discontinuations d JOIN patients p USING (patient_id)
    WHERE d.study_day <= p.stop_counts_until_day
    GROUP BY d.patient_id
),
-- The first adverse event that ended treatment (the earliest day; on a tie the first event
-- by name), for the criterion, with its row (one per patient, day and event: the contract's key).
ae_stops AS (
    SELECT patient_id, ae_stop_day, min(event) AS ae_stop_event,
           arg_min(source_file, event) AS ae_stop_file, arg_min(line_number, event) AS ae_stop_line
    FROM (SELECT a.patient_id, a.event, a.study_day, a.source_file, a.line_number,
                 min(a.study_day) OVER (PARTITION BY a.patient_id) AS ae_stop_day
          FROM staging.adverse_events a JOIN patients p USING (patient_id)
          WHERE a.action = 'discontinued' AND a.study_day <= p.stop_counts_until_day) t
    WHERE study_day = ae_stop_day
    GROUP BY patient_id, ae_stop_day
),
joined AS (
    SELECT p.*, b.baseline_day, b.baseline_value,
           b.baseline_file || CASE WHEN b.baseline_line > 0 THEN ':' || CAST(b.baseline_line AS VARCHAR) ELSE '' END AS baseline_source,
           a.assessment_day, a.assessment_value,
           a.assessment_file || CASE WHEN a.assessment_line > 0 THEN ':' || CAST(a.assessment_line AS VARCHAR) ELSE '' END AS assessment_source,
           a.assessment_value - b.baseline_value AS change_abs,
           100.0 * (a.assessment_value - b.baseline_value) / NULLIF(b.baseline_value, 0) AS change_pct,
           p.improvement_sign * (a.assessment_value - b.baseline_value) AS improvement_abs,
           coalesce(s.stopped_for_ae, 0) = 1 OR e.patient_id IS NOT NULL AS stopped_for_ae,
           coalesce(s.stopped_for_lack, 0) = 1 AS stopped_for_lack,
           s.stopped_for_ae AS discontinued_for_ae, s.stop_day, e.ae_stop_day, e.ae_stop_event,
           s.stop_file || ':' || CAST(s.stop_line AS VARCHAR) AS stop_source,
           e.ae_stop_file || ':' || CAST(e.ae_stop_line AS VARCHAR) AS ae_stop_source
    FROM patients p
    LEFT JOIN baseline b USING (patient_id)
    LEFT JOIN assessment a USING (patient_id)
    LEFT JOIN stops s USING (patient_id)
    LEFT JOIN ae_stops e USING (patient_id)
),
-- Each criterion on its own (the rule meets when any does), so the criterion that decided
-- can be named.
-- The relative and absolute criteria read improvement_abs (the instrument's direction);
-- remission_below and assessment_zero are for lower-is-better measures only (the rules file's
-- check refuses them for a higher-is-better one).
criteria AS (
    SELECT *,
        -- + 0.0: a lower-is-better measure that did not move improves by 0, not -0
        100.0 * improvement_abs / NULLIF(baseline_value, 0) + 0.0 AS improvement_pct,
        relative_reduction_pct IS NOT NULL AND baseline_value > 0
            AND improvement_abs >= relative_reduction_pct / 100.0 * baseline_value - tolerance
            AS relative_met,
        absolute_reduction IS NOT NULL
            AND improvement_abs >= absolute_reduction - tolerance AS absolute_met,
        remission_below IS NOT NULL
            AND baseline_value >= remission_below - tolerance AND assessment_value < remission_below AS remission_met,
        assessment_zero AND abs(assessment_value) <= tolerance AS zero_met
    FROM joined
),
judged AS (
    SELECT *,
        coalesce(relative_met OR absolute_met OR remission_met OR zero_met, false) AS threshold_met
    FROM criteria
),
categorised AS (
    SELECT *,
        CASE
            WHEN stopped_for_ae THEN 'intolerant'
            WHEN stopped_for_lack AND NOT threshold_met THEN 'minimal'
            WHEN baseline_value IS NULL OR assessment_value IS NULL
              OR (baseline_zero_not_assessable AND abs(baseline_value) <= tolerance) THEN 'not_assessable'
            WHEN threshold_met THEN 'meaningful'
            ELSE 'minimal'
        END AS category,
        CASE
            WHEN stopped_for_ae THEN 'stopped_for_adverse_event'
            WHEN stopped_for_lack AND NOT threshold_met THEN 'stopped_for_lack_of_effect'
            WHEN baseline_value IS NULL THEN 'no_baseline'
            WHEN assessment_value IS NULL THEN 'no_assessment'
            WHEN baseline_zero_not_assessable AND abs(baseline_value) <= tolerance THEN 'baseline_zero'
            WHEN threshold_met THEN 'threshold_met'
            ELSE 'threshold_not_met'
        END AS reason,
        -- What decided, in the rules file's words: the criterion met, the stop or adverse event,
        -- the window with no value (see response-rules.md; `reason` keeps the spec's codes).
        CASE
            WHEN stopped_for_ae AND coalesce(discontinued_for_ae, 0) = 1
                THEN 'discontinuation adverse_event on day ' || CAST(stop_day AS VARCHAR)
            WHEN stopped_for_ae
                THEN 'adverse event ' || ae_stop_event || ' discontinued on day ' || CAST(ae_stop_day AS VARCHAR)
            WHEN stopped_for_lack AND NOT threshold_met
                THEN 'discontinuation lack_of_effect on day ' || CAST(stop_day AS VARCHAR)
            WHEN baseline_value IS NULL
                THEN 'no ' || primary_measure || ' value in days ' || CAST(baseline_from AS VARCHAR) || '..'
                     || CAST(baseline_to AS VARCHAR)
            WHEN assessment_value IS NULL
                THEN 'no ' || primary_measure || ' value in days ' || CAST(assessment_from AS VARCHAR) || '..'
                     || CAST(assessment_to AS VARCHAR)
            WHEN baseline_zero_not_assessable AND abs(baseline_value) <= tolerance
                THEN 'baseline 0: ' || rule_text || ' cannot be met'
            WHEN relative_met THEN relative_criterion
            WHEN absolute_met THEN absolute_criterion
            WHEN remission_met THEN remission_criterion
            WHEN zero_met THEN zero_criterion
            ELSE 'not met: ' || rule_text
        END AS criterion,
        -- The row of the stop that decided (the criterion's discontinuation or adverse event);
        -- any other category is decided by the baseline and assessment values' rows.
        CASE
            WHEN stopped_for_ae AND coalesce(discontinued_for_ae, 0) = 1 THEN stop_source
            WHEN stopped_for_ae THEN ae_stop_source
            WHEN stopped_for_lack AND NOT threshold_met THEN stop_source
        END AS decided_by_source
    FROM judged
)
SELECT patient_id, site_id, indication, indication_group, regimen, sex,
       CASE WHEN age_years >= 90 THEN '90+' WHEN age_years < 30 THEN '18-29'
            ELSE CAST(CAST(floor(age_years / 10) * 10 AS INTEGER) AS VARCHAR) || '-'
                 || CAST(CAST(floor(age_years / 10) * 10 + 9 AS INTEGER) AS VARCHAR) END AS age_band,
       start_year, primary_measure, baseline_day, baseline_value, assessment_day, assessment_value,
       change_abs, change_pct, improvement_pct, category, reason, criterion, rules_version, baseline_source, assessment_source,
       decided_by_source
FROM categorised;  -- unordered: the snapshot publishes it by patient_id (its .yml's publish_order)
