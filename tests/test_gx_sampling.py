"""Great Expectations validates a deterministic sample of large staged tables."""

from __future__ import annotations

import duckdb

from pipelines.quality.assets import gx_sample_query


def test_large_tables_get_the_same_sample_of_about_max_rows_every_time():
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 'e/m.csv' AS source_file, i + 2 AS line_number FROM range(200000) r(i)")
    query = gx_sample_query("t", 200_000, 20_000, "source_file, line_number")
    first = con.execute(query + " ORDER BY line_number").fetchall()
    assert 18_000 <= len(first) <= 22_000
    assert con.execute(query + " ORDER BY line_number").fetchall() == first


def test_small_tables_and_tables_without_a_sample_key_are_validated_whole():
    assert gx_sample_query("t", 100, 20_000, "patient_id") == "SELECT * FROM t"
    assert gx_sample_query("t", 10**7, 20_000, None) == "SELECT * FROM t"
