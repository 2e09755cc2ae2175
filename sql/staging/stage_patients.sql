-- Patients with the indication group the rules file gives them.
CREATE OR REPLACE VIEW staging.patients AS
SELECT p.*, r.indication_group
-- ON, not USING: with USING, Spark's p.* puts the join column first.
FROM core.patients p LEFT JOIN response.rules r ON r.indication = p.indication;
