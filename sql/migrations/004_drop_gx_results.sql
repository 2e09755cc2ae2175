-- One run's Great Expectations outcomes only, replaced by quality.gx_outcomes (outcomes per export).
DROP TABLE IF EXISTS quality.gx_results;
