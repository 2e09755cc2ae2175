-- The run that published the snapshot attached as `previous` (its latest published row), by
-- its full run time: the minute shown could tie with the run before it.
SELECT run_id, strftime(run_time, '%Y-%m-%d %H:%M') AS run_time, rules_version, exports_applied
FROM (SELECT * FROM previous.marts.run_info
      WHERE status = 'published'
      ORDER BY run_time DESC
      LIMIT 1);
