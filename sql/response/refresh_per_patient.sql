-- Bring a per-patient table up to date: the rows of the patients in
-- response.patients_to_score are replaced by what ${scoped_view} computes for them now.
DELETE FROM ${table_name} WHERE patient_id IN (SELECT patient_id FROM response.patients_to_score);
INSERT INTO ${table_name} SELECT * FROM ${scoped_view};
