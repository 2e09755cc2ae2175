-- The floor: DuckDB alone reading every CSV of the export once and computing the response
-- categories in one statement (no validation, no quarantine, no marts).
CREATE TABLE floor_result AS
WITH p AS (SELECT * FROM read_csv('${raw}/patients.csv')),
m AS (SELECT * FROM read_csv('${raw}/measurements.csv')),
d AS (SELECT * FROM read_csv('${raw}/discontinuations.csv')),
a AS (SELECT * FROM read_csv('${raw}/adverse_events.csv')),
x AS (SELECT count(*) AS n FROM read_csv('${raw}/doses.csv')),
i AS (SELECT count(*) AS n FROM read_csv('${raw}/fiqr_items.csv')),
pm AS (SELECT p.*, CASE indication WHEN 'fibromyalgia' THEN 'fiqr_total' WHEN 'crps' THEN 'pain_nrs'
        WHEN 'mechanical_pain' THEN 'pain_nrs' WHEN 'multiple_sclerosis' THEN 'msis29_physical'
        WHEN 'crohns_disease' THEN 'calprotectin_ug_g' WHEN 'alcohol_use_disorder' THEN 'heavy_drinking_days_30d'
        ELSE 'opioid_use_days_30d' END AS inst FROM p),
v AS (SELECT m.* FROM m JOIN pm ON pm.patient_id = m.patient_id AND pm.inst = m.instrument),
b AS (SELECT patient_id, arg_max(value, study_day) AS base FROM v WHERE study_day BETWEEN -30 AND 0 GROUP BY 1),
s AS (SELECT patient_id, arg_min(value, abs(study_day - 168) * 10000 - study_day) AS ass
      FROM v WHERE study_day BETWEEN 56 AND 252 GROUP BY 1),
stop AS (SELECT patient_id FROM d WHERE reason = 'adverse_event' AND study_day <= 252
         UNION SELECT patient_id FROM a WHERE action = 'discontinued' AND study_day <= 252)
SELECT pm.patient_id,
       CASE WHEN stop.patient_id IS NOT NULL THEN 'intolerant'
            WHEN base IS NULL OR ass IS NULL THEN 'not_assessable'
            WHEN base - ass >= 0.3 * base THEN 'meaningful' ELSE 'minimal' END AS category,
       (SELECT n FROM x) + (SELECT n FROM i) AS other_rows
FROM pm LEFT JOIN b USING (patient_id) LEFT JOIN s USING (patient_id)
LEFT JOIN stop USING (patient_id);
