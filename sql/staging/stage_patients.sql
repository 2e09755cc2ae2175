-- Patients with the indication group the rules file gives them.
CREATE OR REPLACE VIEW staging.patients AS
SELECT p.*, r.indication_group
FROM core.patients p LEFT JOIN response.rules r USING (indication);
