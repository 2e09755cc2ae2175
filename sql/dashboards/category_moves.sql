-- The front page's "what changed": how patients moved between the snapshot published before
-- this run (attached read-only as `previous`) and this run's. One row per pair of categories
-- that changed; '(new)' for a patient not published before, '(gone)' for one no longer published.
SELECT coalesce(b.category, '(new)') AS from_category, coalesce(a.category, '(gone)') AS to_category,
       count(*) AS patients
FROM marts.patient_response a
FULL JOIN previous.marts.patient_response b USING (patient_id)
WHERE a.category IS DISTINCT FROM b.category
GROUP BY ALL
ORDER BY patients DESC, from_category, to_category;
