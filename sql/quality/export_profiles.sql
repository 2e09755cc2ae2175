-- The exports whose dataset checks this run performs: the ones it applies, and every applied
-- export whose checks have no stored outcome for its latest application (the run that applied
-- it died or failed before them). Checks follow the data, not the run that loaded it.
CREATE OR REPLACE TABLE quality.exports_to_check AS
SELECT export_id FROM ingest.pending_exports
UNION
${unchecked_exports};

-- Profiles of the exports to check, for the dataset-level checks (Great Expectations,
-- expectations/dataset_*.json), which compare each export with the earlier ones: what no row
-- check can see. A profile is taken once, when its export is applied (a rebuild takes them
-- all again), from the staged rows the export delivered. Approximate quantiles (t-digest)
-- keep memory flat at any size; a ratio check needs no exact p90.
DELETE FROM quality.export_profiles WHERE export_id IN (SELECT export_id FROM quality.exports_to_check);

-- The distribution of each instrument's values. No patients per instrument: no suite reads them
-- (the volume rows below count each table's patients), and counting the distinct ids per
-- instrument cost about a third of this statement at L.
INSERT INTO quality.export_profiles
SELECT export_id, 'measurements', instrument, count(*), NULL, avg(value),
       approx_quantile(value, 0.9), NULL
FROM staging.measurements
WHERE export_id IN (SELECT export_id FROM quality.exports_to_check)
GROUP BY export_id, instrument;

-- Rows and patients per table: one SELECT per contract table (sql/quality/table_volume.sql).
INSERT INTO quality.export_profiles ${volume};

-- Completeness: the export's patients with a baseline value of their primary measure.
INSERT INTO quality.export_profiles
SELECT p.export_id, 'patients', 'baseline', count(*), count(*), NULL, NULL, count(b.patient_id)
FROM staging.patients p
LEFT JOIN (
    SELECT DISTINCT v.patient_id
    FROM response.measure_values v
    JOIN staging.patients q USING (patient_id)
    JOIN response.rules r ON r.indication = q.indication AND r.primary_measure = v.instrument
    WHERE v.study_day BETWEEN r.baseline_from AND r.baseline_to
) b USING (patient_id)
WHERE p.export_id IN (SELECT export_id FROM quality.exports_to_check)
GROUP BY p.export_id;
