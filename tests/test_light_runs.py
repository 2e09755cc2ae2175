"""A run costs what changed: with nothing new, `clinic run` and the schedule do no work, say
so, keep the published set and leave a record; with something new, the dashboard pages, Data
Docs and release preview whose inputs did not change are carried over, not rebuilt; every way
of starting the job runs in process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.demo.generator import generate
from pipelines.ingest.contract import load_contract
from pipelines.ingest.load import contract_hash
from pipelines.orchestration.fingerprint import FINGERPRINT_FILE, decide, published_fingerprint
from pipelines.orchestration.nothing_new import NOTHING_NEW_SINCE
from pipelines.orchestration.schedules import daily_schedule
from pipelines.publish.reuse import PARTS_FILE, digest_of, previous_set, record_part, reusable, static_inputs
from pipelines.response.assets import version_reused
from pipelines.response.rules import rules_content
from tests.conftest import DEMO_EXPORT, clinic, materialization, query_snapshot, run_pipeline, settings_for
from tests.test_scheduled_runs import published_files, run_args

# sqlglot is light and loads before the decision: the manifest check reads each model's deps.
HEAVY = ("pandas", "great_expectations", "plotly", "scipy", "highspy", "pyspark")


def imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level packages named in `python -X importtime`'s report."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.fixture
def published_copy(demo_copy, demo_run):
    """A copy of the demo run (same inputs, so nothing is new for it), and the run that published it."""
    return demo_copy, demo_run[1].run_id


def test_the_published_set_carries_the_fingerprint_of_what_it_was_built_from(demo_run):
    settings, result = demo_run
    stored = published_fingerprint(Path(settings.marts_dir))
    assert (Path(settings.marts_dir) / "current" / FINGERPRINT_FILE).is_file()
    assert stored["run_id"] == result.run_id
    assert set(stored["parts"]) == {"exports", "rules", "contract", "checks", "expectations", "sql", "code",
                                    "settings", "ledger"}
    assert decide(settings.values()).nothing_new
    rules = settings.rules()
    assert (stored["rules_version"], stored["rules_content"]) == (rules["version"], rules_content(rules))
    assert version_reused(rules, stored) is None  # the same rules
    assert version_reused({**rules, "version": "2", "tolerance": 0.5}, stored) is None  # changed, with a new version
    assert version_reused({**rules, "windows": {}}, {**stored, "rules_content": None}) is None  # a set from before
    changed = version_reused({**rules, "tolerance": 0.5}, stored)
    assert f"keep its version {rules['version']}" in changed and "give the changed rules a new `version`" in changed


def test_a_run_with_nothing_new_does_no_work_says_so_and_is_in_the_run_history(published_copy, tmp_path):
    s, published_run = published_copy
    marts = Path(s.marts_dir)
    before, current = published_files(marts), os.readlink(marts / "current")
    home = tmp_path / "dagster_home"
    out = clinic("run", *run_args(s), env={"DAGSTER_HOME": str(home)}, python_flags=("-X", "importtime"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"nothing new since run {published_run[:8]}" in out.stdout
    assert "clinic run --force" in out.stdout
    assert not imported_modules(out.stderr) & set(HEAVY)  # decided before anything heavy was imported
    assert published_files(marts) == before and os.readlink(marts / "current") == current
    assert not list((marts / "versions").glob(".building-*"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
    assert run.job_name == "clinic_nothing_new" and run.is_success
    assert run.tags[NOTHING_NEW_SINCE] == published_run and run.tags["clinic/started_by"] == "clinic run"


def test_a_change_or_force_makes_the_run_work(published_copy, tmp_path, clinic_here):
    """What differs is named and the run works; a setting that cannot be used is said before
    anything else, even when nothing is new (exit 2: proof it did not stop at 'nothing new')."""
    s, published_run = published_copy
    rules = tmp_path / "rules" / "response_rules.yaml"  # same name and content: the same input
    rules.parent.mkdir()
    shutil.copy(s.rules_file, rules)
    assert decide({**s.values(), "rules_file": str(rules)}).nothing_new
    broken = tmp_path / "broken_rules.yaml"
    broken.write_text(rules.read_text() + "\nthresholds: [not, a, mapping\n")
    refused = clinic_here("run", *run_args(s), "--rules", str(broken), env={"DAGSTER_HOME": str(tmp_path / "h")})
    assert refused.returncode == 2 and "not valid YAML" in refused.stderr, refused.stderr[-3000:]
    rules.write_text(rules.read_text() + "\n# reviewed again, no change of rule\n")
    changed = clinic_here("run", *run_args(s), "--rules", str(rules), env={"DAGSTER_HOME": str(tmp_path / "h")})
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert f"changed since run {published_run[:8]}: rules" in changed.stderr
    assert "unchanged: reused" not in changed.stderr  # the same marts, other rules: every part built
    forced = clinic_here("run", *run_args(s), "--force", env={"DAGSTER_HOME": str(tmp_path / "h"),
                                                          "CLINIC_DUCKDB_MEMORY_LIMIT": "bogus"})
    assert forced.returncode == 2 and "not a size DuckDB understands" in forced.stderr
    assert "nothing new" not in forced.stdout


@pytest.mark.slow
def test_a_run_after_one_that_applied_an_export_but_did_not_publish_works(published_copy, tmp_path, clinic_here):
    """The published set's inputs again, but a later run applied an export and failed, and the
    export has gone since: not "nothing new" (the warehouse is not what was published), and the
    run says the export is gone (exit 4), without promising to check it again."""
    s, published_run = published_copy
    home = {"DAGSTER_HOME": str(tmp_path / "h")}
    export = generate(200, seed=12, id_prefix="E")
    values = export.tables["measurements"]
    calprotectin = values["instrument"] == "calprotectin_ug_g"
    values.loc[calprotectin, "value"] = values.loc[calprotectin, "value"].astype(float) / 1000  # sent in mg/g
    folder = Path(s.raw_dir) / "2026-12-09_mg"
    export.write(folder)
    failed = clinic_here("run", *run_args(s), env=home)
    assert failed.returncode == 1 and "Applied to the warehouse, not published: 2026-12-09_mg" in failed.stderr
    shutil.move(folder, tmp_path / "moved_away")
    decision = decide(s.values())
    assert decision.previous_run == published_run and not decision.nothing_new
    assert decision.changed == [decision.warehouse] and "is not the one that published" in decision.warehouse
    gone = clinic_here("run", *run_args(s), env=home)
    assert gone.returncode == 4, gone.stderr[-3000:]
    assert "2026-12-09_mg" in gone.stderr and "checks them again" not in gone.stderr


@pytest.mark.slow
def test_an_export_that_changes_only_some_marts_rebuilds_only_what_shows_them(published_copy, tmp_path,
                                                                              monkeypatch, capsys):
    """An export whose rows all go to quarantine (measurements of an unknown patient): the
    quarantine and data quality change, the patients' marts do not. The pages of those marts
    and the release preview are carried over from the published set, and equal what drawing
    them again gives; the front page and the data-quality page are drawn; Data Docs show the
    new export's validation, so they are built."""
    from dashboards.build import build_dashboards
    from pipelines.release.bundle import RELEASE_DB

    s, published_run = published_copy
    before = previous_set(Path(s.marts_dir))
    orphans = Path(s.raw_dir) / "2026-12-10T0600_orphans"
    orphans.mkdir()
    with (DEMO_EXPORT / "measurements.csv").open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    with (orphans / "measurements.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *(["Q0000001", *row[1:]] for row in rows[:5])])
    (orphans / "_READY").touch()

    monkeypatch.setenv("CLINIC_PROGRESS", "1")  # the progress lines `clinic run` prints
    result = run_pipeline(s)
    assert result.success
    # No patient recomputed: patient_response's suite is not run again, and the run says so.
    assert "(patient_response: no patient recomputed, its last outcomes stand)" in capsys.readouterr().err
    assert query_snapshot(s, "SELECT rule, count(*) FROM marts.quarantine WHERE export_id = "
                             "'2026-12-10T0600_orphans' GROUP BY rule") == [("orphan_row", 5)]
    pages = materialization(result, "dashboards").metadata
    assert pages["pages_reused"].value == ["outcomes", "trajectories", "tolerability", "cohort_flow", "dictionary"]
    assert pages["pages_drawn"].value == ["index", "data_quality"]
    assert pages["reused_from_run"].value == published_run
    preview = materialization(result, "release_preview").metadata
    assert preview["reused_from_run"].value == published_run and preview["cells_suppressed"].value > 0
    assert materialization(result, "gx_data_docs").metadata["reused_from_run"].value == ""
    [audit] = [e for e in result.get_asset_check_evaluations() if e.check_name == "disclosure_audit"]
    assert audit.passed  # audited on the carried-over files, as published

    now = previous_set(Path(s.marts_dir))
    assert now != before
    # A carried page is what drawing it from this run's snapshot gives, byte for byte.
    drawn = build_dashboards(now / "clinic.duckdb", tmp_path / "drawn", s.rules())
    for page in drawn:
        if page.stem != "index":  # the front page compares with the set before: drawn by the run
            assert (now / "dashboards" / page.name).read_bytes() == page.read_bytes(), page.name
    assert "run " + result.run_id[:8] in (now / "dashboards" / "outcomes.html").read_text()
    # The preview is the published one (the audit above held it to this run's true marts).
    for name in ("manifest.json", RELEASE_DB):
        assert (now / "release-preview" / name).read_bytes() == (before / "release-preview" / name).read_bytes()
    assert json.loads((now / PARTS_FILE).read_text())["run_id"] == result.run_id


def test_a_part_is_reused_only_with_the_same_inputs_and_untouched_files(tmp_path):
    published, building = tmp_path / "versions" / "a", tmp_path / "versions" / "b"
    (published / "dashboards").mkdir(parents=True)
    page = published / "dashboards" / "outcomes.html"
    page.write_text("<p>run 1234abcd at 2026-12-06 10:00 UTC</p>")
    record_part(published, "run-a", "dashboards/outcomes.html", "inputs-1", [page], stamp="run 1234abcd")
    (tmp_path / "current").symlink_to("versions/a")
    found = reusable(previous_set(tmp_path), "dashboards/outcomes.html", "inputs-1")
    assert found and found.run_id == "run-a" and found.extra == {"stamp": "run 1234abcd"}
    building.mkdir()
    [copied] = found.carry_into(building)
    assert copied.read_text() == page.read_text()
    assert reusable(previous_set(tmp_path), "dashboards/outcomes.html", "inputs-2") is None  # inputs changed
    assert reusable(previous_set(tmp_path), "data_docs", "inputs-1") is None  # never recorded
    assert reusable(None, "dashboards/outcomes.html", "inputs-1") is None  # nothing published
    page.write_text("<p>edited since</p>")
    assert reusable(previous_set(tmp_path), "dashboards/outcomes.html", "inputs-1") is None


def test_a_carried_page_shows_this_run_or_is_drawn(tmp_path):
    from dashboards.build import restamp_page

    page = tmp_path / "outcomes.html"
    page.write_text("<p class='run'>run 1234abcd at 2026-12-06 10:00 UTC</p><script>{\"text\": \"run "
                    "1234abcd at 2026-12-06 10:00 UTC\"}</script>")
    target = tmp_path / "new.html"
    assert restamp_page(page, target, "run 1234abcd at 2026-12-06 10:00 UTC", "run 99ffee00 at 2026-12-07 06:00 UTC")
    assert target.read_text().count("run 99ffee00 at 2026-12-07 06:00 UTC") == 2 and "1234abcd" not in target.read_text()
    target.unlink()
    for stamp in ("run 5555aaaa at 2026-12-05 10:00 UTC", ""):  # not the page's run, or none recorded
        assert not restamp_page(page, target, stamp, "run 99ffee00 at 2026-12-07 06:00 UTC")
        assert not target.exists()


def test_a_change_of_rules_code_or_settings_changes_every_part_and_a_new_export_none():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA ingest; CREATE TABLE ingest.run_plan (input_fingerprint VARCHAR)")

    def static(**changed) -> str | None:
        parts = {"exports": "e", "rules": "r", "contract": "c", "checks": "k", "expectations": "x", "sql": "s",
                 "code": "p", "settings": "min_cell_size=11", **changed}
        con.execute("DELETE FROM ingest.run_plan")
        con.execute("INSERT INTO ingest.run_plan VALUES (?)", [json.dumps({"parts": parts, "digest": "d"})])
        return static_inputs(con)

    assert static() == static(exports="a new export")
    assert len({static(), static(rules="r2"), static(code="p2"), static(settings="min_cell_size=5"),
                static(sql="s2")}) == 5
    con.execute("UPDATE ingest.run_plan SET input_fingerprint = NULL")
    assert static_inputs(con) is None  # a run without a fingerprint reuses nothing
    assert digest_of("a", 1) != digest_of("a", 2)


def test_a_warehouse_whose_free_blocks_duckdb_cut_off_is_not_damaged_and_one_cut_short_is(tmp_path):
    """DuckDB truncates free blocks at a file's end at a checkpoint (seen after a run that
    applied a quarantined-only export) but still counts them: not damage, or the next run
    would refuse to start."""
    from pipelines.diagnosis import duckdb_file_damage

    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    for table in ("kept", "dropped"):
        con.execute(f"CREATE TABLE {table} AS SELECT range AS i, range::VARCHAR AS s FROM range(300000)")
        con.execute("CHECKPOINT")
    con.execute("DROP TABLE dropped")
    con.execute("CHECKPOINT")
    con.close()
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE z (i INTEGER)")
    con.execute("DROP TABLE z")
    con.execute("CHECKPOINT")
    con.close()
    con = duckdb.connect(str(path), read_only=True)
    [(total, size)] = con.execute("SELECT total_blocks, block_size FROM pragma_database_size()").fetchall()
    con.close()
    assert path.stat().st_size < total * size  # the file did shrink below what total_blocks says
    assert duckdb_file_damage(path) is None
    os.truncate(path, path.stat().st_size // 2)  # a file really cut short still is damage
    assert duckdb_file_damage(path)


@pytest.mark.parametrize("change", ["new_export", "touched_file", "setting", "expectations", "instrument_range"])
def test_the_fingerprint_sees_each_kind_of_change(published_copy, tmp_path, change):
    s, _ = published_copy
    values = s.values()
    if change == "instrument_range":  # the registry the contract names: its codes and ranges are the contract's
        rules = tmp_path / "rules"
        shutil.copytree(Path(s.contract_file).parent, rules)
        values["contract_file"] = str(rules / Path(s.contract_file).name)
        assert decide(values).nothing_new  # a copy is the same contract
        registry = rules / "instruments.yaml"
        text = registry.read_text()
        assert "  max: 10\n" in text
        registry.write_text(text.replace("  max: 10\n", "  max: 7\n", 1))
        before, after = (load_contract(Path(f) / "contract.yaml") for f in (Path(s.contract_file).parent, rules))
        assert contract_hash(before) != contract_hash(after)  # the warehouse reloads its exports under it
    elif change == "new_export":
        generate(10, seed=3, id_prefix="N").write(Path(s.raw_dir) / "2026-12-09_new")
    elif change == "touched_file":
        os.utime(Path(s.raw_dir) / DEMO_EXPORT.name / "patients.csv")
    elif change == "setting":
        values["min_cell_size"] = 5
    else:
        suites = tmp_path / "expectations"
        shutil.copytree(s.expectations_dir, suites)
        values["expectations_dir"] = str(suites)
        assert decide(values).nothing_new  # a copy is the same suites
        next(suites.glob("*.json")).write_text("{}")
    decision = decide(values)
    assert not decision.nothing_new
    assert decision.changed == {"new_export": ["exports"], "touched_file": ["exports"], "setting": ["settings"],
                                "expectations": ["expectations"], "instrument_range": ["contract"]}[change]


def test_the_schedule_skips_a_day_with_nothing_new_and_runs_when_an_export_arrives(published_copy):
    s, published_run = published_copy
    with dg.instance_for_test() as instance:
        quiet = daily_schedule.evaluate_tick(dg.build_schedule_context(instance=instance, resources={"clinic": s}))
        assert not quiet.run_requests
        assert f"nothing new since run {published_run[:8]}" in quiet.skip_message
        generate(10, seed=3, id_prefix="N").write(Path(s.raw_dir) / "2026-12-09_new")
        busy = daily_schedule.evaluate_tick(dg.build_schedule_context(instance=instance, resources={"clinic": s}))
        [request] = busy.run_requests
        assert request.tags["clinic/changed"] == "exports"


def test_a_complete_folder_whose_name_does_not_fit_is_news(published_copy):
    """A run reports a complete export it cannot apply (its name does not fit): one arriving
    must not be 'nothing new', or a daily schedule would never say it is there."""
    s, _ = published_copy
    unfit = Path(s.raw_dir) / "2026-12-09 site y"
    unfit.mkdir()
    (unfit / "_READY").touch()
    decision = decide(s.values())
    assert not decision.nothing_new and decision.changed == ["exports"]
    shutil.rmtree(unfit)
    assert decide(s.values()).nothing_new


def test_a_release_made_since_the_published_set_is_news(published_copy):
    """The run's release preview is protected together with every release sent: after `clinic
    release` the published preview shows a release that was already made."""
    from pipelines.settings import RELEASE_LEDGER

    s, _ = published_copy
    ledger = Path(s.marts_dir) / RELEASE_LEDGER
    ledger.parent.mkdir(exist_ok=True)
    ledger.write_text('{"release_id": "r0001"}\n')
    decision = decide(s.values())
    assert not decision.nothing_new and decision.changed == ["ledger"]


def test_nothing_published_yet_means_work(tmp_path):
    s = settings_for(tmp_path, DEMO_EXPORT.parent)
    decision = decide(s.values())
    assert decision.previous is None and not decision.nothing_new


def _pins(lock: Path) -> dict[str, str]:
    return {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1].strip()
            for line in lock.read_text().splitlines() if "==" in line and not line.startswith("#")}


def test_the_default_install_has_no_spark_and_the_test_lock_adds_it():
    from pipelines.settings import REPO_ROOT

    app, tests = _pins(REPO_ROOT / "requirements.lock"), _pins(REPO_ROOT / "requirements-test.lock")
    assert not {"pyspark", "py4j", "pytest", "playwright"} & set(app)
    assert "sqlglot" in app  # the base reads SQL dependencies with it
    assert {"pyspark", "py4j", "pytest", "pytest-xdist", "playwright"} <= set(tests)
    assert not set(app) & set(tests)  # each pin once
    assert "-r requirements.lock" in (REPO_ROOT / "requirements-test.lock").read_text().splitlines()
    loaded = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pipelines.definitions"],
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "pyspark" not in imported_modules(loaded.stderr)


def test_engine_spark_without_pyspark_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main
    from pipelines.engines import spark

    monkeypatch.setattr(spark, "_installed", lambda module: module != "pyspark")
    code = main(["run", "--engine", "spark", "--raw", str(DEMO_EXPORT.parent), "--warehouse",
                 str(tmp_path / "w.duckdb"), "--marts", str(tmp_path / "marts")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "needs the Python package pyspark" in err and "pip install -r requirements-test.lock" in err
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize(("command", "runs_a_job"), [
    (["asset", "materialize", "-m", "pipelines.definitions", "--select", "*"], True),  # the benchmark's UI path
    (["job", "execute", "-m", "pipelines.definitions", "-j", "clinic_pipeline"], True),  # the scheduled path
    (["api", "execute_run", "{}"], True),  # a run launched from the UI or by the daemon
    (["api", "grpc", "-m", "pipelines.definitions"], False),  # the UI's code server: it never runs a job
])
def test_a_dagster_process_that_runs_a_job_starts_the_gx_worker_as_it_loads_the_definitions(
        monkeypatch, command, runs_a_job):
    """As `clinic run` does, so GX's import overlaps the run's start; built once per process."""
    from pipelines import definitions
    from pipelines.quality import gx_worker

    monkeypatch.setattr(sys, "argv", [str(Path(dg.__file__).parent / "__main__.py"), *command])
    monkeypatch.setattr(gx_worker, "_spare", [])
    definitions.defs.load_fn.cache_clear()
    try:
        loaded = definitions.defs()
        assert definitions.defs() is loaded
        assert len(gx_worker._spare) == (1 if runs_a_job else 0)
    finally:
        for worker in gx_worker._spare:
            worker.close()
        definitions.defs.load_fn.cache_clear()
