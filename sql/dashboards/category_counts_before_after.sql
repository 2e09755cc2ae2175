-- The front page's "what changed": patients per indication and category in the snapshot
-- published before this run (attached read-only as `previous`) and in this run's.
WITH before AS (
    SELECT indication, category, count(*) AS n FROM previous.marts.patient_response GROUP BY ALL
),
after AS (
    SELECT indication, category, count(*) AS n FROM marts.patient_response GROUP BY ALL
)
SELECT indication, category, coalesce(b.n, 0) AS n_before, coalesce(a.n, 0) AS n_after
FROM after a FULL JOIN before b USING (indication, category)
ORDER BY indication, category;
