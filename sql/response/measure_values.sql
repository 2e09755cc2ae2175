-- Every measurement value the response rules and trajectories use, with where it came
-- from: delivered rows (`<export>/<file>:<line>`) and scored FIQR questionnaires
-- (`<export>/fiqr_items.csv`), the scored one replacing a delivered fiqr_total.
-- File and line stay apart (line 0 for a scored questionnaire, which has no one line;
-- not NULL, which arg_max would skip): joining them into one text costs a string per
-- row, so it is done only for the values a result keeps.
CREATE OR REPLACE VIEW response.measure_values AS
SELECT m.patient_id, m.study_day, m.instrument, m.value,
       m.source_file, m.line_number
FROM staging.measurements m
ANTI JOIN (SELECT patient_id, study_day FROM response.fiqr_questionnaires WHERE scorable) q
  ON m.instrument = 'fiqr_total' AND q.patient_id = m.patient_id AND q.study_day = m.study_day
UNION ALL
SELECT patient_id, study_day, 'fiqr_total', fiqr_total, source_file, 0
FROM response.fiqr_questionnaires WHERE scorable;
