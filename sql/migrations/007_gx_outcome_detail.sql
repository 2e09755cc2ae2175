-- What failed, named (the instruments of a drift failure): the detail of a Great Expectations
-- outcome, shown in data_quality and the run summary.
ALTER TABLE quality.gx_outcomes ADD COLUMN IF NOT EXISTS detail VARCHAR;
