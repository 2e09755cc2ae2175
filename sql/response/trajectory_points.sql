-- Every instrument's value per patient and visit week, and its percent change from that
-- instrument's own baseline (latest value in the baseline window), and that change signed so
-- that positive is better (improvement_pct, the instrument's direction from
-- response.instruments), for the patients in
-- response.patients_to_score (pipelines/response/incremental.py keeps
-- response.trajectory_points up to date with it; marts.measure_trajectory sums it up).
-- A value belongs to the nearest visit week within the window (on a tie, the earlier
-- week); each week gets a day range that does not overlap its neighbours', so a value
-- matches one week at most, and the patient's value closest to the week's day (the
-- earlier on a tie) stands for that week. The week ranges are spelled out day by day
-- (a few hundred rows) so values find their week by an equi-join, not a range join.
CREATE OR REPLACE VIEW response.trajectory_points_to_score AS
WITH r AS (SELECT DISTINCT baseline_from, baseline_to FROM response.rules),
weeks AS (
    SELECT visit_week, 7 * visit_week AS week_day,
           greatest(7 * visit_week - window_days,
                    coalesce(CAST(floor((7 * prev_week + 7 * visit_week) / 2.0) AS INTEGER) + 1, -100000)) AS from_day,
           least(7 * visit_week + window_days,
                 coalesce(CAST(floor((7 * visit_week + 7 * next_week) / 2.0) AS INTEGER), 100000)) AS to_day
    FROM (SELECT visit_week, window_days,
                 lag(visit_week) OVER (ORDER BY visit_week) AS prev_week,
                 lead(visit_week) OVER (ORDER BY visit_week) AS next_week
          FROM response.visit_weeks)
),
week_days AS (
    SELECT visit_week, week_day, unnest(generate_series(from_day, to_day)) AS study_day FROM weeks
),
-- Filtered once, up front: both uses below share it, the filter keeps a refresh of a few
-- patients from reading every value, and only the days some week or the baseline window
-- holds are kept (DuckDB holds this for its two readers: at 10^8 values, keeping every day
-- and column spilled and made this 33 s against 19 s; at 10^7 the same either way).
values_to_score AS (
    SELECT v.patient_id, v.instrument, v.study_day, v.value FROM response.measure_values v
    WHERE v.patient_id IN (SELECT patient_id FROM response.patients_to_score)
      AND (v.study_day IN (SELECT study_day FROM week_days)
           OR v.study_day BETWEEN (SELECT min(baseline_from) FROM r) AND (SELECT max(baseline_to) FROM r))
),
baselines AS (
    SELECT v.patient_id, v.instrument, arg_max(v.value, v.study_day) AS baseline_value
    FROM values_to_score v, r
    WHERE v.study_day BETWEEN r.baseline_from AND r.baseline_to
    GROUP BY v.patient_id, v.instrument
),
in_week AS (
    SELECT v.patient_id, v.instrument, w.visit_week,
           arg_min(v.value, abs(v.study_day - w.week_day) * 100000 + v.study_day) AS value
    FROM values_to_score v
    JOIN week_days w ON v.study_day = w.study_day
    GROUP BY v.patient_id, v.instrument, w.visit_week
),
points AS (
    SELECT i.patient_id, i.instrument, i.visit_week, i.value,
           100.0 * (i.value - b.baseline_value) / NULLIF(b.baseline_value, 0) AS pct_change,
           -- + 0.0: no movement is an improvement of 0, not -0
           100.0 * d.improvement_sign * (i.value - b.baseline_value) / NULLIF(b.baseline_value, 0) + 0.0
               AS improvement_pct
    FROM in_week i
    LEFT JOIN baselines b USING (patient_id, instrument)
    LEFT JOIN response.instruments d ON d.instrument = i.instrument
)
SELECT * FROM points;
