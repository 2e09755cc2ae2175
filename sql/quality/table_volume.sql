SELECT export_id, '${table_name}', '(rows)', count(*), count(DISTINCT patient_id), NULL, NULL, NULL
FROM staging.${table_name}
WHERE export_id IN (SELECT export_id FROM quality.exports_to_check)
GROUP BY export_id
