"""Visit weeks: a value belongs to the nearest week within two weeks (the earlier on a tie),
and each week shows the patient's value closest to it."""

from __future__ import annotations

import csv

import duckdb
import pytest

from tests.conftest import query_snapshot, run_pipeline, settings_for

VALUES = {-7: 60, 30: 50, 42: 40, 55: 45, 100: 35, 168: 30}


@pytest.mark.slow
def test_values_land_in_their_nearest_visit_week(tmp_path):
    export = tmp_path / "raw" / "2026-01-01_weeks"
    export.mkdir(parents=True)
    ids = [f"WEEK{i:02d}" for i in range(11)]  # 11 patients: the cells are not suppressed
    with (export / "patients.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "site_id", "indication", "regimen", "sex", "age_years", "start_year"])
        w.writerows([(p, "site-a", "fibromyalgia", "ldn", "F", 50, 2024) for p in ids])
    with (export / "measurements.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "study_day", "instrument", "value"])
        w.writerows([(p, d, "fiqr_total", v) for p in ids for d, v in VALUES.items()])
    (export / "_READY").touch()
    settings = settings_for(tmp_path, tmp_path / "raw")
    result = run_pipeline(settings)
    assert result.success, [e.step_key for e in result.all_events if e.is_step_failure]
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    rows = con.execute("SELECT visit_week, n_patients, value_median, round(pct_change_median, 2) "
                       "FROM marts.measure_trajectory WHERE instrument = 'fiqr_total' "
                       "ORDER BY visit_week").fetchall()
    wilson = con.execute("SELECT pct_meaningful, round(pct_meaningful_low, 2), pct_meaningful_high "
                         "FROM marts.response_by_indication WHERE level = 'all'").fetchone()
    con.close()
    # All 11 improved 50%: Wilson 95% for 11/11 is 74.12-100 (the upper bound clamped at 100).
    assert wilson == (100.0, 74.12, 100.0)
    # day 42 is 14 days from weeks 4 and 8: it goes to week 4, where day 30 is closer anyway;
    # day 100 is 16 days from week 12: no week.
    assert rows == [(0, 11, 60.0, 0.0), (4, 11, 50.0, -16.67), (8, 11, 45.0, -25.0),
                    (24, 11, 30.0, -50.0)]


def test_every_ldn_dose_falls_in_exactly_one_band():
    import duckdb

    from pipelines.ingest.contract import load_contract
    from pipelines.response.assets import write_reporting_tables
    from pipelines.response.rules import load_rules
    from pipelines.settings import RULES_DIR

    con = duckdb.connect()
    con.execute("CREATE SCHEMA response")
    write_reporting_tables(con, load_rules(RULES_DIR / "response_rules.yaml", load_contract(RULES_DIR / "contract.yaml")))
    sql = (RULES_DIR.parent / "sql" / "marts" / "dose_periods.sql").read_text()
    condition = sql.split("LEFT JOIN response.dose_bands b\n  ON p.regimen = 'ldn'\n AND ")[1].rstrip(";\n")
    condition = condition.replace("d.dose_mg", "x.dose_mg")
    got = con.execute(f"""SELECT x.dose_mg, list(b.label ORDER BY b.sort_order)
        FROM (SELECT CAST(v AS DOUBLE) AS dose_mg FROM (VALUES (0.5), (1.5), (2.9), (3.0), (4.5), (4.6), (9.0)) t(v)) x
        LEFT JOIN response.dose_bands b ON {condition} GROUP BY ALL ORDER BY ALL""").fetchall()
    assert got == [(0.5, ["<1.5 mg"]), (1.5, ["1.5-3 mg"]), (2.9, ["1.5-3 mg"]), (3.0, ["3-4.5 mg"]),
                   (4.5, ["3-4.5 mg"]), (4.6, [">4.5 mg"]), (9.0, [">4.5 mg"])]


def test_rank_quantiles_equal_percentile_cont():
    """measure_trajectory reads quantiles off sorted ranks (they spill to disk at 10^8 rows);
    they must be percentile_cont's, interpolation and NULLs included."""
    import duckdb

    from pipelines.settings import SQL_DIR

    con = duckdb.connect()
    con.execute((SQL_DIR / "marts" / "functions.sql").read_text())
    con.execute("CREATE TABLE v AS SELECT i % 7 AS g, CASE WHEN i % 11 = 0 THEN NULL "
                "ELSE round(sin(i) * 100, 1) END AS x FROM range(2000) t(i) WHERE i % 7 <> 3 OR i < 5")
    for p in (0.25, 0.5, 0.75, 0.9):
        expected = con.execute(f"SELECT g, percentile_cont({p}) WITHIN GROUP (ORDER BY x) FROM v "
                               "GROUP BY g ORDER BY g").fetchall()
        got = con.execute(f"""SELECT g, rank_quantile(x, r, n, {p}) FROM (
            SELECT g, x, row_number() OVER (PARTITION BY g ORDER BY x) - 1 AS r,
                   count(*) OVER (PARTITION BY g) AS n FROM v WHERE x IS NOT NULL)
            GROUP BY g ORDER BY g""").fetchall()
        assert [(g, round(q, 9)) for g, q in got] == [(g, round(q, 9)) for g, q in expected], p


def test_the_published_quartiles_are_percentile_conts_over_the_patients_points(demo_run):
    """measure_trajectory aggregates only the rows at the ranks its quantiles read
    (rank_is_read): every quartile it publishes is percentile_cont's over the patient points."""
    settings, _ = demo_run
    by_group = """SELECT p.indication, t.instrument, t.visit_week, p.category, count(*),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY t.value), percentile_cont(0.25) WITHIN GROUP (ORDER BY t.value),
        percentile_cont(0.75) WITHIN GROUP (ORDER BY t.value),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY t.pct_change),
        percentile_cont(0.25) WITHIN GROUP (ORDER BY t.pct_change),
        percentile_cont(0.75) WITHIN GROUP (ORDER BY t.pct_change)
        FROM marts.patient_trajectory t JOIN marts.patient_response p USING (patient_id) GROUP BY ALL ORDER BY ALL"""
    published = """SELECT indication, instrument, visit_week, category, n_patients, value_median, value_p25, value_p75,
        pct_change_median, pct_change_p25, pct_change_p75 FROM marts.measure_trajectory ORDER BY ALL"""

    def rounded(rows):
        return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]

    expected = rounded(query_snapshot(settings, by_group))
    assert len(expected) > 50  # indication x instrument x week x category
    assert rounded(query_snapshot(settings, published)) == expected


def test_wilson_intervals_are_exactly_0_and_100_at_the_ends():
    """0 of 12 is 0-24.25%, not 2e-15-24.25% (the formula's rounding residue), and 12 of 12 ends
    at exactly 100; in between the interval holds the observed share."""
    import duckdb

    from pipelines.settings import SQL_DIR

    con = duckdb.connect()
    con.execute((SQL_DIR / "marts" / "functions.sql").read_text())
    rows = con.execute("SELECT k, wilson_low(k, 12), wilson_high(k, 12), wilson_low(k, 0) "
                       "FROM range(13) t(k) ORDER BY k").fetchall()
    assert rows[0][1] == 0.0 and rows[-1][2] == 100.0
    assert all(low < 100 * k / 12 < high for k, low, high, _ in rows[1:-1])
    assert round(rows[0][2], 2) == 24.25 and all(empty is None for *_, empty in rows)
