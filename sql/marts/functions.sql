-- What several marts compute the same way, written once (run before each mart's SQL).
-- Wilson 95% score interval of k successes in n, in percent: exactly 0 at k = 0 and 100 at
-- k = n (the formula leaves a rounding residue such as 2e-15 there); NULL when n is 0. Ratios in DOUBLE, written out: `100.0 * k / n`
-- is DOUBLE in DuckDB but DECIMAL (rounded to 6 places) in Spark. Spark runs these macros
-- inlined by pipelines/engines/transpile.py (it has no SQL macros).
CREATE OR REPLACE TEMP MACRO wilson_low(k, n) AS
    CASE WHEN n > 0 AND k = 0 THEN CAST(0 AS DOUBLE) WHEN n > 0 THEN least(100, greatest(0, 100 * (
        CAST(k AS DOUBLE) / n + 1.959963984540054 ^ 2 / (2 * n)
        - 1.959963984540054 * sqrt((CAST(k AS DOUBLE) / n) * (1 - CAST(k AS DOUBLE) / n) / n + 1.959963984540054 ^ 2 / (4 * n * n)))
        / (1 + 1.959963984540054 ^ 2 / n))) END;
CREATE OR REPLACE TEMP MACRO wilson_high(k, n) AS
    CASE WHEN n > 0 AND k = n THEN CAST(100 AS DOUBLE) WHEN n > 0 THEN least(100, greatest(0, 100 * (
        CAST(k AS DOUBLE) / n + 1.959963984540054 ^ 2 / (2 * n)
        + 1.959963984540054 * sqrt((CAST(k AS DOUBLE) / n) * (1 - CAST(k AS DOUBLE) / n) / n + 1.959963984540054 ^ 2 / (4 * n * n)))
        / (1 + 1.959963984540054 ^ 2 / n))) END;
-- A percentage of n, NULL when n is 0.
CREATE OR REPLACE TEMP MACRO pct_of(k, n) AS CAST(k AS DOUBLE) * 100 / NULLIF(n, 0);
-- Patients of one response category among those aggregated (the only place categories are counted).
CREATE OR REPLACE TEMP MACRO n_category(category, wanted) AS count(CASE WHEN category = wanted THEN 1 END);
-- The p-quantile of v in a group, from v's 0-based rank r among the group's n values: the
-- value at rank (n - 1) * p, interpolated linearly between the ranks around it (what
-- percentile_cont gives, from a sort that spills to disk: sql/marts/measure_trajectory.sql).
CREATE OR REPLACE TEMP MACRO rank_quantile(v, r, n, p) AS
    max(CASE WHEN r = floor((n - 1) * p) THEN v END)
    + ((max(n) - 1) * p - floor((max(n) - 1) * p))
      * (max(CASE WHEN r = ceil((n - 1) * p) THEN v END) - max(CASE WHEN r = floor((n - 1) * p) THEN v END));
-- Whether rank_quantile(v, r, n, p) reads the value at rank r (floor or ceil of (n - 1) * p, the
-- integers less than 1 away; written without floor and ceil, which cost more than the rest): a
-- filter so that it aggregates only those rows.
CREATE OR REPLACE TEMP MACRO rank_is_read(r, n, p) AS abs(r - (n - 1) * p) < 1;
