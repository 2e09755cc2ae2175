"""Every check declared once (the catalogue drives marts.data_quality), Great Expectations on
what the row contract cannot see (one fixture export per failure mode), GX's Data Docs
offline, and every table's producer in the asset graph."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest

from pipelines.demo.generator import generate
from pipelines.ingest.contract import row_checks
from pipelines.quality.catalogue import CatalogueError, load_catalogue
from pipelines.quality.data_docs import remote_references
from pipelines.settings import EXPECTATIONS_DIR, REPO_ROOT, RULES_DIR, SQL_DIR
from tests.conftest import query_snapshot, settings_for

CONTRACT_FILE = RULES_DIR / "contract.yaml"


@pytest.fixture(scope="module")
def catalogue():
    from pipelines.ingest.contract import load_contract

    contract = load_contract(CONTRACT_FILE)
    return contract, load_catalogue(RULES_DIR / "quality_checks.yaml", contract, EXPECTATIONS_DIR)


def _literals(paths, pattern: str) -> set[str]:
    return {m for p in paths for m in re.findall(pattern, Path(p).read_text())}


def emitted_rules(contract) -> dict[str, set[str]]:
    """Every rule the code can emit, found where it is emitted: the contract's generated row
    checks, the loader's file rejections and export findings, the quarantine SQL, the
    derived results. (A new rule anywhere in these places shows up here.)"""
    ingest_py = sorted((REPO_ROOT / "pipelines" / "ingest").glob("*.py"))
    return {
        "contract": {c.rule for t in contract.tables.values() for c in row_checks(contract, t, [])},
        "ingest": (_literals(ingest_py, r'FileRejected\(\s*"([a-z_]+)"')
                   | _literals(ingest_py, r'\(\s*"([a-z_]+)",\s*(?:t|"\(export\)")\s*,')
                   | _literals(SQL_DIR.glob("ingest/*.sql"), r"'([a-z_]+)', ''")
                   | _literals(SQL_DIR.glob("ingest/*.sql"), r"export_findings\s+SELECT [\w.]+, '([a-z_]+)'")
                   | {"exact_duplicate", "extra_column"}),
        "staging": _literals(SQL_DIR.glob("staging/*.sql"), r"'(orphan_row)'"),
        "derived": _literals([SQL_DIR / "quality" / "check_results.sql"], r"'(fiqr_(?!items')[a-z_]+|export_name)'"),
        "reconciliation": _literals([SQL_DIR / "quality" / "check_results.sql"], r"'(reconciliation)'"),
    }


def test_every_emitted_rule_is_in_the_catalogue_and_every_entry_is_implemented(catalogue):
    contract, rows = catalogue
    emitted = emitted_rules(contract)
    declared = {}
    for r in rows:
        declared.setdefault(r.implemented_by, set()).add(r.check_name)
    for implementer, rules in emitted.items():
        assert rules, implementer
        assert rules <= declared.get(implementer, set()), (implementer, rules - declared.get(implementer, set()))
        assert declared.get(implementer, set()) <= rules, (implementer, declared[implementer] - rules)
    # The check_results SQL names exact_duplicate and extra_column itself: keep those literals honest.
    assert {"exact_duplicate", "extra_column"} <= _literals([SQL_DIR / "quality" / "check_results.sql"],
                                                            r"'([a-z_]+)'")
    # Every GX expectation of every suite is a catalogue row, per table it validates.
    gx = {(r.check_name, r.table_name) for r in rows if r.implemented_by == "great_expectations"}
    assert any(t == "measurements" and "p90_ratio" in c for c, t in gx)
    assert len({t for _, t in gx}) >= 10


def test_a_catalogue_entry_without_implementer_or_level_is_refused(tmp_path, catalogue):
    contract, _ = catalogue
    bad = tmp_path / "checks.yaml"
    bad.write_text("checks:\n  - {check: my_check, level: row, implemented_by: nobody, severity: fatal, "
                   "threshold_pct: 0, description: x}\n")
    with pytest.raises(CatalogueError, match="implemented_by"):
        load_catalogue(bad, contract, EXPECTATIONS_DIR)


def test_data_quality_shows_not_run_and_flags_undeclared_findings(demo_run, tmp_path):
    """The catalogue drives data_quality: a declared check with no result is 'not run', never
    passing, and a finding nothing declares is a fatal failure rather than lost."""
    settings, _ = demo_run
    import shutil

    wh = tmp_path / "wh.duckdb"
    shutil.copy(settings.warehouse, wh)
    con = duckdb.connect(str(wh))
    con.execute("DELETE FROM quality.gx_outcomes WHERE table_name = 'marts.cohort_flow'")
    con.execute("INSERT INTO ingest.quarantine VALUES ('demo', 'doses', 'demo/doses.csv', 5, 'brand_new_rule', "
                "'dose_mg', 'x', 1)")
    from pipelines.sqlfiles import run_sql

    run_sql(con, "marts", "quarantine")
    run_sql(con, "quality", "check_results")
    run_sql(con, "quality", "data_quality")
    rows = con.execute("SELECT check_name, status, severity FROM marts.data_quality "
                       "WHERE table_name = 'marts.cohort_flow' OR check_name = 'brand_new_rule'").fetchall()
    assert rows and all(s == "not run" for c, s, _ in rows if c != "brand_new_rule")
    assert ("brand_new_rule", "fail", "fatal") in rows


def test_the_clean_demo_triggers_no_dataset_check(demo_run):
    settings, _ = demo_run
    found = query_snapshot(settings, "SELECT status, count(*) FROM marts.data_quality WHERE level = 'dataset' "
                                     "GROUP BY ALL")
    assert found == [("pass", 10)]


def _write(path: Path, header: list[str], rows: list) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _rewrite(export: Path, table: str, change) -> None:
    with (export / f"{table}.csv").open() as fh:
        rows = list(csv.reader(fh))
    changed = (change(r) for r in rows[1:])
    _write(export / f"{table}.csv", rows[0], [r for r in changed if r is not None])


@pytest.fixture(scope="module")
def odd_exports(tmp_path_factory):
    """A clean first export, then one later export per warning-level failure mode."""
    tmp = tmp_path_factory.mktemp("dataset_checks")
    s = settings_for(tmp, tmp / "raw")
    raw = Path(s.raw_dir)
    generate(150, seed=11, id_prefix="A").write(raw / "2026-11-01_clean")
    thin = raw / "2026-11-02_one_row_per_patient"  # the diary feed lost its rows: one visit each
    generate(60, seed=12, id_prefix="B").write(thin)
    seen = set()
    _rewrite(thin, "measurements", lambda r: None if r[0] in seen else (seen.add(r[0]) or r))
    no_baseline = raw / "2026-11-03_no_baselines"  # values only after day 0
    generate(60, seed=13, id_prefix="C").write(no_baseline)
    _rewrite(no_baseline, "measurements", lambda r: r if int(r[1]) > 0 else None)
    _rewrite(no_baseline, "fiqr_items", lambda r: r if int(r[1]) > 0 else None)
    stale = raw / "2026-11-04_stale"  # the newest export was written 30 days ago
    generate(40, seed=14, id_prefix="D").write(stale)
    old = time.time() - 30 * 86400
    os.utime(stale / "_READY", (old, old))
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--raw", s.raw_dir, "--marts", s.marts_dir,
                          "--warehouse", s.warehouse], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return s, out


@pytest.mark.slow
@pytest.mark.parametrize(("export", "table", "column"), [
    ("2026-11-02_one_row_per_patient", "measurements", "volume_ratio"),
    ("2026-11-03_no_baselines", "patients", "baseline_share"),
    ("2026-11-04_stale", "(export)", "age_days"),
])
def test_each_failure_mode_triggers_its_dataset_check(odd_exports, export, table, column):
    s, out = odd_exports
    failing = query_snapshot(s, "SELECT export_id, table_name, column_name, severity FROM marts.data_quality "
                                "WHERE level = 'dataset' AND status = 'fail' ORDER BY ALL")
    assert (export, table, column, "warning") in failing
    assert column in out.stdout  # named in the run summary too
    assert not any(e == "2026-11-01_clean" for e, *_ in failing)
    # The data-quality page's grid names the failing export in the cell's hover, not a pooled rate.
    page = (Path(s.dashboards_dir) / "data_quality.html").read_text()
    worst = "" if table == "(export)" else " (the worst of 4 exports)"  # freshness: the newest export only
    assert f" in export {export}{worst}" in page
    # GX's Data Docs: one validation of each dataset suite over every export it checked (batched:
    # 4 exports, one page), named by the run.
    volume = list((Path(s.marts_dir) / "data_docs" / "validations" / "dataset_volume @ (each table)").rglob("*.html"))
    assert len(volume) == 1 and all("/run " in p.as_posix() for p in volume), volume


def _grid_cell(fig, check: str, table: str) -> tuple[str, str]:
    """The text and hover of one cell of the data-quality page's check x table grid."""
    grid = fig.data[0]
    row, col = list(grid.y).index(check), list(grid.x).index(table)
    return grid.text[row][col], grid.customdata[row][col]


def test_quality_grid_shows_the_worst_export_of_each_check_not_a_pooled_rate():
    """One export with 40% of its rows out of range among two clean ones is a 40% cell naming
    that export (pooled over the three it would read 4%); a check over all exports at once says so."""
    from dashboards.build import data_quality_figures
    from dashboards.page import RunLabel

    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute("""CREATE TABLE marts.data_quality AS SELECT * FROM (VALUES
        ('2026-11-01_a', 'measurements', 'out_of_range', 'contract', 'warning', 'fail', 0, 500),
        ('2026-11-02_b', 'measurements', 'out_of_range', 'contract', 'warning', 'fail', 40, 100),
        ('2026-11-03_c', 'measurements', 'out_of_range', 'contract', 'warning', 'pass', 0, 400),
        ('(all)', 'marts.cohort_flow', 'gx:expect_column_values_to_not_be_null(n)', 'great_expectations',
         'fatal', 'pass', 0, 7)
        ) t(export_id, table_name, check_name, implemented_by, severity, status, rows_failed, rows_checked)""")
    figs = data_quality_figures(con, RunLabel("run-1", "2026-12-06 15:00", "1"))
    text, hover = _grid_cell(figs[0], "out_of_range", "measurements")
    assert text == "40.00%"
    assert "40 of 100 rows failed in export 2026-11-02_b (the worst of 3 exports)" in hover
    assert hover.startswith("fail (warning)")
    (gx_label,) = [y for y in figs[0].data[0].y if y != "out_of_range"]
    assert "in all exports at once" in _grid_cell(figs[0], gx_label, "marts.cohort_flow")[1]


@pytest.mark.slow
def test_a_unit_change_fails_its_check_and_publishes_nothing(tmp_path, clinic_here):
    s = settings_for(tmp_path, tmp_path / "raw")
    raw = Path(s.raw_dir)
    generate(150, seed=21, id_prefix="A").write(raw / "2026-11-01_ug_per_g")
    later = raw / "2026-11-02_mg_per_g"
    generate(80, seed=22, id_prefix="B").write(later)
    # Calprotectin now in mg/g: every value divided by 1000, all still inside 0-10000.
    _rewrite(later, "measurements", lambda r: r if r[2] != "calprotectin_ug_g" else [*r[:3], f"{float(r[3]) / 1000:g}"])
    out = clinic_here("run", "--raw", s.raw_dir, "--marts", s.marts_dir, "--warehouse", s.warehouse)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "dataset_expectations.no_fatal_expectation_failed" in out.stderr
    assert "p90_ratio" in out.stderr and "2026-11-02_mg_per_g" in out.stderr
    assert not Path(s.snapshot).exists()  # nothing was published
    # The failure names its export and instrument and says what the check means, and only that
    # instrument (the newcomer's trap: "mean_ratio" alone said nothing).
    [line] = [t for t in out.stderr.splitlines() if "gx:expect_column_values_to_be_between(mean_ratio)" in t]
    assert "2026-11-02_mg_per_g" in line and ": calprotectin_ug_g)" in line
    assert "each instrument's mean is within 0.1-10x that of the earlier exports" in line
    others = {r.split(",")[2] for r in (later / "measurements.csv").read_text().splitlines()[1:]}
    for instrument in others - {"calprotectin_ug_g"}:
        assert instrument not in line


def test_data_docs_are_published_offline_beside_the_dashboards(demo_run):
    """Offline and without GX's online chrome: no reference or http(s) address off the machine
    (the vendored libraries' licence comments aside), no tutorials banner, and each validation
    named by the Dagster run that made it, not GX's `__none__`."""
    settings, result = demo_run
    site = Path(settings.marts_dir) / "data_docs"
    index = (site / "index.html").read_text()
    pages = list(site.rglob("*.html"))
    assert len(pages) > 10 and any("dataset_distribution" in p.read_text() for p in pages)
    assert remote_references(site) == []
    own = [p for p in pages if "vendor" not in p.relative_to(site).parts]
    assert not [p.name for p in own if re.search(r"https?://", p.read_text())]
    assert not [p.name for p in own if "__none__" in str(p.relative_to(site)) or "__none__" in p.read_text()]
    assert not [p.name for p in own if re.search(r"id=[\"']ge-cta-footer", p.read_text())]
    assert f"run {result.run_id[:8]}" in index
    # Every page's own references (stylesheets, scripts, the favicon GX writes a level short on the
    # validation pages, links between pages) open a file of the site, and no path holds a colon,
    # which a Windows folder cannot.
    broken = [(p.relative_to(site).as_posix(), ref) for p in own
              for ref in re.findall(r"""\s(?:href|src)=["']([^"'#?]+)""", p.read_text())
              if not re.match(r"[a-z]+:", ref) and not (p.parent / unquote(ref)).exists()]
    assert broken == []
    assert not [p for p in site.rglob("*") if ":" in p.name]
