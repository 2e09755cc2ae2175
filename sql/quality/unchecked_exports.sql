-- Applied exports whose dataset checks have no stored outcome for their latest application
-- (quality.dataset_checked, written once every dataset suite stored its outcomes for an export):
-- the run that applied them died or failed first. The next run checks them.
SELECT a.export_id
FROM (SELECT export_id, CAST(max(applied_at) AS VARCHAR) AS applied_at
      FROM ingest.applied_exports GROUP BY export_id) a
WHERE NOT EXISTS (SELECT 1 FROM quality.dataset_checked c
                  WHERE c.export_id = a.export_id AND c.applied_at = a.applied_at)
