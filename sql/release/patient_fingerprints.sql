-- One row per patient: a hash of the pseudonym and of what the released marts count about the
-- patient (indication, regimen, category, days, trajectory values). Kept beside the release
-- ledger, inside the clinic: two releases' fingerprints say how many patients were added or
-- changed between them (pipelines/release/ledger.py). ${trajectory}: marts.patient_trajectory
-- in the published snapshot, response.trajectory_points in the warehouse.
SELECT sha256(p.patient_id) AS patient,
       md5(concat_ws('|', p.indication, p.indication_group, p.regimen, p.category,
                     p.baseline_day, p.assessment_day, coalesce(t.points, ''))) AS state
FROM marts.patient_response p
LEFT JOIN (SELECT patient_id,
                  string_agg(concat_ws(':', instrument, visit_week, value), ',' ORDER BY instrument, visit_week)
                      AS points
           FROM ${trajectory} GROUP BY patient_id) t USING (patient_id)
ORDER BY patient
