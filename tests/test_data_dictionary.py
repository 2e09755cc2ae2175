"""The data dictionary (sql/**/*.yml) against what a real run publishes: every column of the
snapshot and of the release database is described, no description names a column that does
not exist, and Dagster's column schemas carry the same words."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.dictionary import DictionaryError, coverage, load_dictionary
from pipelines.settings import SQL_DIR
from tests.conftest import materialization

# Described by its owner beside its SQL; until that file exists its columns are not required here.
PENDING_FILES = {"data_quality": SQL_DIR / "quality" / "data_quality.yml"}


def _databases(settings):
    return {"snapshot": settings.snapshot, "release": settings.release_preview_dir / "clinic_release.duckdb"}


def _pending() -> set[str]:
    return {table for table, path in PENDING_FILES.items() if not path.exists()}


@pytest.mark.parametrize("audience", ["snapshot", "release"])
def test_every_published_column_has_a_description(demo_run, audience):
    settings, _ = demo_run
    con = duckdb.connect(str(_databases(settings)[audience]), read_only=True)
    try:
        bare_tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' "
                                  "AND coalesce(trim(comment), '') = ''").fetchall()
        bare_columns = con.execute("SELECT table_name || '.' || column_name, table_name FROM duckdb_columns() "
                                   "WHERE schema_name = 'marts' AND coalesce(trim(comment), '') = ''").fetchall()
        described = con.execute("SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'marts' "
                                "AND comment IS NOT NULL").fetchone()[0]
    finally:
        con.close()
    pending = _pending()
    assert [t for (t,) in bare_tables if t not in pending] == []
    assert [c for c, t in bare_columns if t not in pending] == []
    assert described > 60


@pytest.mark.parametrize("audience", ["snapshot", "release"])
def test_the_dictionary_describes_only_columns_that_exist(demo_run, audience):
    settings, _ = demo_run
    con = duckdb.connect(str(_databases(settings)[audience]), read_only=True)
    try:
        database = con.execute("SELECT current_database()").fetchone()[0]
        found = coverage(con, database, audience)
    finally:
        con.close()
    assert found.absent == []
    assert [u for u in found.undocumented if u.split(".")[0] not in _pending()] == []


def test_comments_say_units_signs_and_suppression_where_an_analyst_looks(demo_run):
    settings, _ = demo_run
    con = duckdb.connect(str(settings.release_preview_dir / "clinic_release.duckdb"), read_only=True)
    try:
        comments = dict(con.execute("SELECT table_name || '.' || column_name, comment FROM duckdb_columns() "
                                    "WHERE schema_name = 'marts'").fetchall())
    finally:
        con.close()
    assert "suppressed" in comments["response_by_indication.n_minimal"]
    assert "evaluable" in comments["response_by_indication.pct_meaningful"]
    assert "µg/g" in comments["measure_trajectory.instrument"]  # from the instrument registry
    assert "faecal calprotectin" in comments["measure_trajectory.instrument"]
    assert "lower is better" in comments["measure_trajectory.instrument"]
    snapshot = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        change = snapshot.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'patient_response' "
                                  "AND column_name = 'change_pct'").fetchone()[0]
    finally:
        snapshot.close()
    assert "signed as measured" in change and "% of baseline" in change


def test_clinic_sql_schema_shows_the_descriptions(demo_run):
    import subprocess
    import sys

    from pipelines.settings import REPO_ROOT

    settings, _ = demo_run
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "sql", "--marts", str(settings.marts_dir),
                           ".schema patient_response"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "-- One row per patient" in done.stdout
    assert "change_pct DOUBLE,  -- 100 * (assessment_value - baseline_value) / baseline_value" in done.stdout


def test_dagster_column_schemas_carry_the_descriptions(demo_run):
    _, result = demo_run
    materialisation = materialization(result, "patient_response")
    schema = materialisation.metadata["dagster/column_schema"].value
    descriptions = {c.name: c.description for c in schema.columns}
    assert all(descriptions.values()), [n for n, d in descriptions.items() if not d]
    assert descriptions["criterion"].startswith("What decided")


def test_a_dictionary_file_added_later_is_read_in_either_shape(tmp_path):
    """The data-quality mart's owner adds sql/quality/data_quality.yml: as a mapping of tables,
    or as one table with a list of columns; either is read on the next load."""
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "data_quality.yml").write_text(
        "description: One row per export x table x check.\n"
        "columns:\n"
        "  - {name: export_id, description: the export}\n"
        "  - {name: status, description: 'pass, fail or not run'}\n")
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / "run_info.yml").write_text(
        "run_info:\n  description: One row per run.\n  columns:\n    run_id: the run\n")
    dictionary = load_dictionary(tmp_path)
    assert list(dictionary.columns_of("data_quality", "snapshot")) == ["export_id", "status"]
    assert dictionary.tables["data_quality"].warehouse_relation == "marts.data_quality"

    (tmp_path / "marts" / "again.yml").write_text(
        "run_info:\n  description: twice\n  columns:\n    run_id: the run\n")
    with pytest.raises(DictionaryError, match="run_info is described in"):
        load_dictionary(tmp_path)
    (tmp_path / "marts" / "again.yml").write_text("quarantine:\n  description: ''\n  columns: {a: b}\n")
    with pytest.raises(DictionaryError, match="again.yml: quarantine.description"):
        load_dictionary(tmp_path)


def test_the_dictionary_pages_show_code_as_code_not_backticks(demo_run):
    settings, _ = demo_run
    for folder in (Path(settings.dashboards_dir), settings.release_preview_dir / "dashboards"):
        page = (folder / "dictionary.html").read_text(encoding="utf-8")
        assert "<code>" in page and "`" not in page, folder
    preview_front = (settings.release_preview_dir / "dashboards" / "index.html").read_text(encoding="utf-8")
    assert "PREVIEW, NOT FOR RELEASE" in preview_front and "`" not in preview_front.split("<script")[0]
