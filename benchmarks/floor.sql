-- The floor: DuckDB alone reading every CSV of the export once and computing the response
-- categories in one statement (no validation, no quarantine, no marts). The primary measure
-- of each indication, its direction and the windows are filled in from the rules file and the
-- instrument registry (benchmarks/run.py, floor_parameters); the criterion is a plain 30%.
CREATE TABLE floor_result AS
WITH p AS (SELECT * FROM read_csv('${raw}/patients.csv')),
m AS (SELECT * FROM read_csv('${raw}/measurements.csv')),
d AS (SELECT * FROM read_csv('${raw}/discontinuations.csv')),
a AS (SELECT * FROM read_csv('${raw}/adverse_events.csv')),
x AS (SELECT count(*) AS n FROM read_csv('${raw}/doses.csv')),
i AS (SELECT count(*) AS n FROM read_csv('${raw}/fiqr_items.csv')),
pm AS (SELECT p.*, r.inst, r.sign FROM p JOIN (VALUES ${primary_measures}) r(indication, inst, sign) USING (indication)),
v AS (SELECT m.* FROM m JOIN pm ON pm.patient_id = m.patient_id AND pm.inst = m.instrument),
b AS (SELECT patient_id, arg_max(value, study_day) AS base FROM v
      WHERE study_day BETWEEN ${baseline_from} AND ${baseline_to} GROUP BY 1),
s AS (SELECT patient_id, arg_min(value, abs(study_day - ${target_day}) * 10000 - study_day) AS ass
      FROM v WHERE study_day BETWEEN ${assessment_from} AND ${assessment_to} GROUP BY 1),
stop AS (SELECT patient_id FROM d WHERE reason = 'adverse_event' AND study_day <= ${stop_counts_until_day}
         UNION SELECT patient_id FROM a WHERE action = 'discontinued' AND study_day <= ${stop_counts_until_day})
SELECT pm.patient_id,
       CASE WHEN stop.patient_id IS NOT NULL THEN 'intolerant'
            WHEN base IS NULL OR ass IS NULL THEN 'not_assessable'
            WHEN sign * (ass - base) >= 0.3 * base THEN 'meaningful' ELSE 'minimal' END AS category,
       (SELECT n FROM x) + (SELECT n FROM i) AS other_rows
FROM pm LEFT JOIN b USING (patient_id) LEFT JOIN s USING (patient_id)
LEFT JOIN stop USING (patient_id);
