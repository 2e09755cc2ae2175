-- Patients with a row in ${core_table} that came with one of the exports the per-patient
-- table has not seen yet (a SELECT; the loader unions one per core table).
SELECT patient_id FROM core.${core_table}
WHERE export_id IN (SELECT export_id FROM response.unseen_exports)
