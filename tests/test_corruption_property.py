"""Property: whatever cells of a valid export are corrupted, every raw row is accounted
for, every mart still builds, and no planted identifier reaches any file the pipeline writes."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.demo.generator import DemoExport, generate
from pipelines.publish.snapshot import published_marts
from tests.conftest import query_snapshot, run_pipeline, settings_for

pytestmark = pytest.mark.slow  # every example runs the whole job
MARTS = [m.name for m in published_marts()]  # the snapshot's marts, from their .yml

VALID = generate(40, seed=3).tables


@functools.cache
def library_files() -> frozenset[bytes]:
    """The SHA-256 of every file a run copies unchanged from a library (Plotly's JavaScript,
    GX's and the project's Data Docs assets): they hold whatever their authors wrote, dates and
    numbers included, and no patient's value."""
    import great_expectations
    from plotly.offline import get_plotlyjs

    from pipelines.quality.data_docs import ASSETS

    folders = [ASSETS, Path(great_expectations.__file__).parent / "render" / "view" / "static"]
    contents = [get_plotlyjs().encode(), *(p.read_bytes() for f in folders for p in f.rglob("*") if p.is_file())]
    return frozenset(hashlib.sha256(c).digest() for c in contents)


TABLES = sorted(VALID)

identifiers = st.one_of(
    st.builds(lambda a, b, c: f"{a:03d}-{b:02d}-{c:04d}", st.integers(100, 899), st.integers(10, 99),
              st.integers(1000, 9999)),
    st.builds(lambda u, d: f"{u}@{d}.org", st.from_regex(r"[a-z]{5,8}", fullmatch=True),
              st.from_regex(r"[a-z]{4,8}", fullmatch=True)),
    st.builds(lambda n: f"+44 {n // 10**6:04d} {n % 10**6:06d}", st.integers(10**9, 10**10 - 1)),
    st.builds(lambda y, m, d: f"{y}-{m:02d}-{d:02d}", st.integers(1930, 2025), st.integers(1, 12),
              st.integers(1, 28)),
)
junk = st.one_of(st.just(""), st.just("NaN"), st.just("-1e9"), st.just("1e30"), st.text("abc ,\"xyz", max_size=6),
                 st.integers(-10**6, 10**6).map(str))
corruption = st.tuples(st.sampled_from(TABLES), st.integers(0, 10**6), st.integers(0, 10),
                       st.one_of(identifiers.map(lambda v: ("id", v)), junk.map(lambda v: ("junk", v))))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(corruption, min_size=1, max_size=12))
def test_corrupted_export_reconciles_builds_and_leaks_nothing(tmp_path_factory, corruptions):
    tmp = tmp_path_factory.mktemp("prop")
    tables = {k: v.astype(str).copy() for k, v in VALID.items()}
    planted = []
    for table, row, col, (kind, value) in corruptions:
        frame = tables[table]
        frame.iat[row % len(frame), col % len(frame.columns)] = value
        if kind == "id":
            planted.append(value)
    DemoExport(tables).write(tmp / "raw" / "2026-11-01_prop")
    s = settings_for(tmp, tmp / "raw")
    result = run_pipeline(s)
    assert result.success, [e.description for e in result.get_asset_check_evaluations() if not e.passed]

    for mart in MARTS:
        query_snapshot(s, f"SELECT count(*) FROM marts.{mart}")
    [(rows_in, accounted)] = query_snapshot(
        s, "SELECT rows_in, rows_accepted + rows_quarantined + rows_duplicate FROM marts.run_info")
    raw_rows = sum(len(f) for f in tables.values())
    assert rows_in == accounted == raw_rows

    written = [p for p in tmp.rglob("*") if p.is_file() and "raw" not in p.relative_to(tmp).parts]
    for path in written:
        data = path.read_bytes()
        if hashlib.sha256(data).digest() in library_files():
            continue  # a library's file copied as it is (a planted date was found in plotly.min.js)
        for value in planted:
            assert value.encode() not in data, f"planted identifier found in {path.name}"
