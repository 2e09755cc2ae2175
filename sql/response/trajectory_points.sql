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
-- Every day a value can count for, and what for: a visit week (the value closest to the week's
-- day, the earlier on a tie) or the baseline (visit_week NULL: the latest value in the window).
-- A day in both the baseline window and a week's range is listed for each; the smallest
-- pick_key wins.
day_roles AS (
    SELECT visit_week, study_day, abs(study_day - week_day) * 100000 + study_day AS pick_key
    FROM (SELECT visit_week, week_day, unnest(generate_series(from_day, to_day)) AS study_day FROM weeks)
    UNION ALL
    SELECT DISTINCT CAST(NULL AS BIGINT), study_day, -study_day
    FROM (SELECT unnest(generate_series(baseline_from, baseline_to)) AS study_day FROM r)
),
-- Baselines and visit weeks in one aggregate over one read of the values, so nothing is held
-- for a second reader (at 10^8 values a shared, filtered copy spilled: 19 s against 10 s).
picked AS (
    SELECT v.patient_id, v.instrument, d.visit_week, arg_min(v.value, d.pick_key) AS value
    FROM response.measure_values v
    JOIN day_roles d ON d.study_day = v.study_day
    -- The refresh's patients, as a filter DuckDB 2.0 runs as a mark join built on the patients:
    -- written as a plain IN it became a semi join built on the ~5*10^7 values it underestimated
    -- (19 s against 10 s at 10^8 values).
    WHERE coalesce(v.patient_id IN (SELECT patient_id FROM response.patients_to_score), false)
    GROUP BY v.patient_id, v.instrument, d.visit_week
),
points AS (
    SELECT i.patient_id, i.instrument, i.visit_week, i.value,
           100.0 * (i.value - b.value) / NULLIF(b.value, 0) AS pct_change,
           -- + 0.0: no movement is an improvement of 0, not -0
           100.0 * d.improvement_sign * (i.value - b.value) / NULLIF(b.value, 0) + 0.0
               AS improvement_pct
    FROM picked i
    LEFT JOIN picked b ON b.visit_week IS NULL AND b.patient_id = i.patient_id AND b.instrument = i.instrument
    LEFT JOIN response.instruments d ON d.instrument = i.instrument
    WHERE i.visit_week IS NOT NULL
)
SELECT * FROM points;
