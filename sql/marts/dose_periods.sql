-- Which dose a patient was on each day: a dose row holds from its day until the next.
-- LDN doses get their band from the rules file; other regimens are one band each.
CREATE OR REPLACE TABLE response.dose_periods AS
SELECT d.patient_id, p.indication, p.regimen, d.study_day AS from_day,
       lead(d.study_day) OVER (PARTITION BY d.patient_id ORDER BY d.study_day) AS until_day,
       d.dose_mg,
       CAST(row_number() OVER (PARTITION BY d.patient_id ORDER BY d.study_day) AS BIGINT) AS dose_no,  -- INT in Spark
       CASE WHEN p.regimen = 'ldn' THEN b.label ELSE p.regimen END AS dose_band,
       CASE WHEN p.regimen = 'ldn' THEN b.sort_order ELSE 99 END AS band_order
FROM staging.doses d
JOIN staging.patients p USING (patient_id)
LEFT JOIN response.dose_bands b
  ON p.regimen = 'ldn'
 AND (d.dose_mg > b.from_mg OR (d.dose_mg = b.from_mg AND NOT b.from_taken_by_previous))
 AND (d.dose_mg < b.to_mg OR (b.to_inclusive AND d.dose_mg = b.to_mg));
