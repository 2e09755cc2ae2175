"""The model manifest: a mart is its .sql and its .yml, nothing else; a file without its pair
stops the run before any work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import EXIT_CONFIG, main
from pipelines.manifest import ManifestError, load_manifest
from pipelines.settings import SQL_DIR
from tests.conftest import DEMO_EXPORT, query_snapshot, run_pipeline, settings_for

COPY = "titration_copy"


def _sql_copy(tmp_path: Path) -> Path:
    sql = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql)
    return sql


def _copy_titration(sql: Path, released: bool = False) -> None:
    """titration's two files under a new name, as a maintainer would copy them: to the snapshot
    only, or (released) to the release as well, with titration's `release:` block."""
    marts = sql / "marts"
    (marts / f"{COPY}.sql").write_text((marts / "titration.sql").read_text().replace(
        "marts.titration", f"marts.{COPY}"))
    spec = (marts / "titration.yml").read_text().replace("\ntitration:", f"\n{COPY}:")
    if not released:
        spec = spec.replace("published_in: [snapshot, release]", "published_in: [snapshot]")
    (marts / f"{COPY}.yml").write_text(spec)


def test_the_manifest_reads_each_marts_dependencies_from_its_sql():
    manifest = load_manifest(SQL_DIR)
    titration = manifest.models["titration"]
    assert titration.reads == ("marts.patient_response", "response.dose_periods", "response.early_sleep_events",
                               "staging.adverse_events")
    assert manifest.deps(titration) == ["dose_periods", "patient_response", "response_rules",
                                        "staged_adverse_events"]


def test_a_copied_mart_is_an_asset_with_the_same_deps(tmp_path):
    sql = _sql_copy(tmp_path)
    _copy_titration(sql)
    manifest = load_manifest(sql)
    copy = manifest.models[COPY]
    assert copy.relation == f"marts.{COPY}" and copy.suite == "titration" and copy.runs_on == "engine"
    assert manifest.deps(copy) == manifest.deps(manifest.models["titration"])
    assert ("marts", COPY) in manifest.engine_files()
    assert COPY in [m.name for m in manifest.published("snapshot")]


@pytest.mark.parametrize("stray", ["marts/orphan_mart.sql", "marts/orphan_mart.yml", "response/helper.sql"])
def test_a_file_without_its_pair_is_refused_naming_it(tmp_path, stray):
    sql = _sql_copy(tmp_path)
    source = sql / "marts" / ("titration.yml" if stray.endswith(".yml") else "titration.sql")
    (sql / stray).write_text(source.read_text().replace("titration", Path(stray).stem))
    with pytest.raises(ManifestError, match=Path(stray).name):
        load_manifest(sql)


def test_a_name_that_is_not_a_plain_name_is_refused(tmp_path):
    sql = _sql_copy(tmp_path)
    spec = sql / "marts" / "titration.yml"
    spec.write_text(spec.read_text().replace("runs_on: engine", "runs_on: engine\n  publish_order: 1; DROP TABLE x"))
    with pytest.raises(ManifestError, match="publish_order"):
        load_manifest(sql)


def test_a_sql_without_its_yml_stops_clinic_run_before_any_work(tmp_path, monkeypatch, capsys):
    shutil.copytree(DEMO_EXPORT, tmp_path / "raw" / "demo")
    sql = _sql_copy(tmp_path)
    shutil.copy(sql / "marts" / "titration.sql", sql / "marts" / "orphan_mart.sql")
    monkeypatch.setenv("CLINIC_SQL_DIR", str(sql))
    code = main(["run", "--raw", str(tmp_path / "raw"), "--warehouse", str(tmp_path / "warehouse.duckdb"),
                 "--marts", str(tmp_path / "marts")])
    assert code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "sql/marts/orphan_mart.sql has no orphan_mart.yml" in err and "_files.yml" in err
    assert not (tmp_path / "warehouse.duckdb").exists() and not (tmp_path / "marts").exists()


def test_a_copied_mart_is_built_published_documented_and_validated(tmp_path, monkeypatch):
    """No Python: the copy's two files make a mart that the real job builds, publishes in
    clinic.duckdb and as Parquet with its column comments, validates with its suite, and that
    `clinic release` releases, protected and audited with the others (its `release:` block)."""
    shutil.copytree(DEMO_EXPORT, tmp_path / "raw" / DEMO_EXPORT.name)
    sql = _sql_copy(tmp_path)
    _copy_titration(sql, released=True)
    monkeypatch.setenv("CLINIC_SQL_DIR", str(sql))
    settings = settings_for(tmp_path, tmp_path / "raw")
    result = run_pipeline(settings)
    assert result.success
    assert COPY in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    copied = query_snapshot(settings, f"SELECT * FROM marts.{COPY} ORDER BY ALL")
    assert copied and copied == query_snapshot(settings, "SELECT * FROM marts.titration ORDER BY ALL")
    parquet = Path(settings.marts_dir) / f"{COPY}.parquet"
    assert duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(parquet)]).fetchone()[0] \
        == len(copied)
    comments = dict(query_snapshot(settings, "SELECT column_name, comment FROM duckdb_columns() "
                                             f"WHERE table_name = '{COPY}'"))
    assert comments["n_sleep_event"].startswith("Of them, patients with an early sleep event")
    assert query_snapshot(settings, "SELECT comment FROM duckdb_tables() WHERE table_name = "
                                    f"'{COPY}'")[0][0].startswith("LDN patients by the dose band")
    validated = query_snapshot(settings, "SELECT count(*), count(*) FILTER (WHERE status = 'pass') "
                                         f"FROM marts.data_quality WHERE table_name = 'marts.{COPY}'")[0]
    assert validated[0] > 0 and validated[0] == validated[1]
    # The run's release preview, in this process, read the copied folder's release: blocks too.
    preview = duckdb.connect(str(settings.release_preview_dir / "clinic_release.duckdb"), read_only=True)
    try:
        assert preview.execute(f"SELECT count(*) FROM marts.{COPY}").fetchone()[0] == len(copied)
    finally:
        preview.close()
    # A process of its own, as an operator runs it: the release reads the SQL folder it is given.
    released = subprocess.run([sys.executable, "-m", "pipelines.cli", "release", "--marts", str(settings.marts_dir)],
                              capture_output=True, text=True, timeout=600, env={**os.environ, "CLINIC_SQL_DIR": str(sql)})
    assert released.returncode == 0, released.stderr[-3000:]
    bundle = duckdb.connect(str(Path(settings.marts_dir) / "release" / "clinic_release.duckdb"), read_only=True)
    try:
        shown = bundle.execute(f"SELECT n_patients, n_sleep_event, n_intolerant FROM marts.{COPY}").fetchall()
        described = bundle.execute(f"SELECT comment FROM duckdb_tables() WHERE table_name = '{COPY}'").fetchall()
    finally:
        bundle.close()
    assert len(shown) == len(copied) and described[0][0]
    assert not [v for row in shown for v in row if v is not None and 1 <= v <= 10]  # small counts hidden
    manifest = json.loads((Path(settings.marts_dir) / "release" / "manifest.json").read_text())
    assert f"{COPY}.parquet" in {f["path"] for f in manifest["files"]}
