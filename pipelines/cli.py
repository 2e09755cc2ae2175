"""`clinic`: run the pipeline, query the published marts, make demo data, open the UI."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import time
from pathlib import Path

from pipelines.settings import (
    REPO_ROOT,
    SETTINGS,
    ConfigError,
    default_shown,
    default_source,
    in_project,
    setting_value,
)

# The summary's next step for the failing checks: the check's name first, so a terminal too narrow
# for every column still shows it (clinic sql shows the leading columns that fit), then the table and
# columns, which tell apart the rows of one check failing in several places.
FAILING_CHECKS_QUERY = ("SELECT check_name, table_name, column_name, severity, export_id, rows_failed "
                        "FROM data_quality WHERE status = 'fail'")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_CONFIG, EXIT_BUSY, EXIT_INPUTS_MISSING, EXIT_STEP_FAILED = 0, 1, 2, 3, 4, 5
EXIT_CODES = {
    EXIT_OK: "the run published a new set of outputs, or found nothing new since the last (which stays published)",
    EXIT_CHECK_FAILED: "a blocking check failed (named above); nothing new was published",
    EXIT_CONFIG: "a setting, the contract or the rules file cannot be used; nothing was run",
    EXIT_BUSY: "another run is writing the warehouse; wait for it and run again",
    EXIT_INPUTS_MISSING: ("the raw folder is missing or empty, or lost or changed exports applied before; "
                          "nothing was changed (see --rebuild)"),
    EXIT_STEP_FAILED: "a step failed (its cause is printed); nothing new was published",
}
CHECK_FAILED = "DagsterAssetCheckFailedError"
QUIET_DAGSTER = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


DEFAULT_DAGSTER_HOME = REPO_ROOT / "data" / "dagster_home"


def dagster_home() -> Path:
    """The project's Dagster instance: run history, schedules and sensors (DAGSTER_HOME)."""
    return Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME)


def dagster_home_unusable() -> str | None:
    """Why the Dagster home cannot hold the run history (a setting: exit 2), or None."""
    import tempfile

    home = dagster_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=home).close()
    except OSError as error:
        return (f"the Dagster home {home} cannot be written ({error.strerror or error}): set DAGSTER_HOME to a "
                f"writable folder (default {DEFAULT_DAGSTER_HOME.relative_to(REPO_ROOT)}) and run again.")
    return None


def project_instance():
    import dagster as dg

    from pipelines.orchestration.instance import ensure_dagster_home

    home = dagster_home()
    ensure_dagster_home(home)
    return dg.DagsterInstance.from_config(str(home))


def run_job(clinic, instance=None, rebuild: bool = False, tags: dict | None = None, quiet: bool = True):
    """Execute the project's `clinic_pipeline` job, the one the schedule, the sensor and the
    UI run, in this process (no subprocess per step), in `instance` (ephemeral when None)."""
    from pipelines.definitions import INGEST_STEP, build_definitions

    job = build_definitions(clinic).resolve_job_def("clinic_pipeline")
    run_config = {**(QUIET_DAGSTER if quiet else {}), "ops": {INGEST_STEP: {"config": {"rebuild": rebuild}}}}
    return job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False,
                                  tags=tags or {})


# --- explaining a failed run ----------------------------------------------------------------


def _root(error):
    """The first error of a chain: followed through raise-from (cause) and through an error
    raised while handling another (context: "cannot rollback" after a full disk)."""
    while error is not None and (error.cause or error.context) is not None:
        error = error.cause or error.context
    return error


def _named(cls_name: str, message: str) -> str:
    """An error's message, led by its class name once (Python's messages often carry it)."""
    return message if message.split(":", 1)[0].endswith(cls_name) else f"{cls_name}: {message}"


INTERRUPTED_ADVICE = "the run was stopped before it finished; run again (the next run picks up what this one applied)"


def _advice(cls_name: str, message: str) -> str:
    text = f"{cls_name} {message}".lower()
    if "no space left" in text or "errno 28" in text:
        return "free disk space where the warehouse, the temp folder and the marts live, then run again"
    if "read-only file system" in text or "permission denied" in text:
        return "make the marts folder, the warehouse's folder and the temp folder writable, then run again"
    if "corrupt database file" in text or "could not read enough bytes" in text:
        return ("a DuckDB file is damaged; if it is the warehouse, `clinic run --rebuild` moves it aside and "
                "rebuilds it from the raw exports")
    if "out of memory" in text or "outofmemory" in text or "memoryerror" in text:
        return "raise CLINIC_DUCKDB_MEMORY_LIMIT or free memory, then run again"
    if "interrupted" in text or "keyboardinterrupt" in text:  # Ctrl-C, SIGTERM, the UI's Terminate
        return INTERRUPTED_ADVICE
    return "fix the cause above and run again"


def run_failures(result) -> list[tuple[int, str]]:
    """(exit code, one line) per failure of a run, with the root cause and what to do. A
    failed blocking check is left to failed_checks, which names it."""
    steps, run_level = [], []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            user = data.user_failure_data
            if user is not None and user.description:
                code = next((int(v.value) for k, v in (user.metadata or {}).items()
                             if k == "clinic/exit_code"), EXIT_STEP_FAILED)
                steps.append((code, f"{event.step_key}: {user.description}"))
                continue
            root = _root(data.error)
            if root is None or root.cls_name == CHECK_FAILED:
                continue
            cls, message = root.cls_name, root.message.strip()
            steps.append((EXIT_STEP_FAILED, f"{event.step_key}: {_named(cls, message)} -> {_advice(cls, message)}"))
        elif event.event_type_value in ("RESOURCE_INIT_FAILURE", "PIPELINE_FAILURE", "RUN_FAILURE"):
            root = _root(getattr(event.event_specific_data, "error", None))
            if root is not None and root.cls_name != CHECK_FAILED:
                code = EXIT_CONFIG if root.cls_name == "ConfigError" else EXIT_STEP_FAILED
                run_level.append((code, _named(root.cls_name, root.message.strip())))
    failures = [_busy_if_locked(code, line) for code, line in steps or run_level]
    return list(dict.fromkeys(failures))  # each once (a resource failure is also the run's failure)


def _busy_if_locked(code: int, line: str) -> tuple[int, str]:
    """A warehouse lock taken by another run after the pre-check is still a held lock (exit 3)."""
    if "could not set lock on file" in line.lower():
        return EXIT_BUSY, (f"{line.splitlines()[0]} -> another run is writing the warehouse; wait for it to "
                           "finish (the Dagster UI queues runs one at a time), then run again")
    return code, line


def failed_checks(result) -> list[str]:
    return [f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description or 'failed'}"
            + (f" (exports {e.metadata['exports'].value})" if "exports" in (e.metadata or {}) else "")
            for e in result.get_asset_check_evaluations() if not e.passed]


# --- the summary ----------------------------------------------------------------------------


def _columns(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    """Rows as lines whose columns line up whatever their length (the last one left ragged)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]).rstrip()
            for r in rows]


def _shortened(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


PUBLISHED_EXPORTS = ("SELECT exports_applied FROM marts.run_info WHERE status = 'published' {but} "
                     "ORDER BY run_time DESC LIMIT 1")


def _exports(listed: str | None) -> list[str]:
    return [e for e in (listed or "").split(",") if e]


def published_exports(snapshot: Path) -> set[str] | None:
    """The exports the published set holds (its latest published run's), or None when no set
    can be read (none yet: empty; damaged: unknown)."""
    import duckdb

    try:
        if not Path(snapshot).exists():
            return set()
        con = duckdb.connect(str(snapshot), read_only=True)
        try:
            rows = con.execute(PUBLISHED_EXPORTS.format(but="")).fetchall()
        finally:
            con.close()
    except (duckdb.Error, OSError):
        return None
    return set(_exports(rows[0][0])) if rows else set()


def applied_not_published(clinic) -> list[str]:
    """Exports the warehouse holds that the published set does not (applied by a run that
    failed or died before publishing): said when a run fails, since the next run checks and
    publishes them. Empty when either side cannot be read (the failure lines say why)."""
    import duckdb

    from pipelines.sqlfiles import has_table

    published = published_exports(clinic.snapshot)
    if published is None:
        return []
    try:
        if not Path(clinic.warehouse).exists():
            return []
        con = duckdb.connect(str(clinic.warehouse), read_only=True)
        try:
            if not has_table(con, "ingest", "applied_exports"):
                return []
            applied = [e for (e,) in con.execute("SELECT DISTINCT export_id FROM ingest.applied_exports "
                                                  "ORDER BY export_id").fetchall()]
        finally:
            con.close()
    except (duckdb.Error, OSError):
        return []
    return [e for e in applied if e not in published]


def print_summary(clinic, run_id: str, out=None) -> None:
    """What this run read, what it found (each failing check with what it means, the lines to
    fix first, from its own exports), the categories now published, and where to look next."""
    import duckdb

    out = out or sys.stdout  # the stdout of the moment (a test's capture), not the one at import

    from pipelines.quality.findings import check_status, failing_checks

    con = duckdb.connect(str(clinic.snapshot), read_only=True)
    try:
        [run] = con.execute("SELECT * FROM marts.run_info WHERE run_id = ?", [run_id]).df().itertuples()
        applied = _exports(run.exports_new)
        before = con.execute(PUBLISHED_EXPORTS.format(but="AND run_id <> ?"), [run_id]).fetchall()
        # Applied by an earlier run that failed or died before publishing: checked and published now.
        caught_up = [e for e in _exports(run.exports_applied)
                     if e not in applied and e not in set(_exports(before[0][0] if before else ""))]
        print(f"\nRun {run.run_id[:8]} ({run.ingest_mode}, engine {run.engine}), rules version "
              f"{run.rules_version}, code {run.code_version}", file=out)
        print(f"Exports applied now: {', '.join(applied) or ('none' if caught_up else 'none (nothing new)')}"
              + (f"; published now, applied by an earlier run that did not publish: {', '.join(caught_up)}"
                 if caught_up else ""), file=out)
        print(f"Rows read this run {run.rows_in:,}: accepted {run.rows_accepted:,}, quarantined "
              f"{run.rows_quarantined:,}, exact duplicates {run.rows_duplicate:,}", file=out)
        print(f"Data quality: {check_status(con).sentence()}.", file=out)
        failing = failing_checks(con, clinic.expectations_dir)
        if failing:
            shown = failing[:25]
            print(f"Checks failing ({len(failing)}; every one in marts.data_quality):", file=out)
            for line in _columns([("severity", "check", "table", "export", "failed", "where"),
                                  *((f.severity, f.check, f.table, f.export, f.count or "-",
                                     _shortened(f.where, 400)) for f in shown)]):
                print(line, file=out)
            if len(failing) > len(shown):
                print(f"  ... and {len(failing) - len(shown)} more", file=out)
            meanings = dict.fromkeys((f.check, f.meaning) for f in shown if f.meaning)
            print("What they mean:", file=out)
            for line in _columns([(f"{check}:", meaning) for check, meaning in meanings]):
                print(line, file=out)
        top = con.execute("""
            SELECT source_file, line_number, rule, column_name, detail FROM marts.quarantine
            WHERE list_contains(string_split(?, ','), export_id)
            ORDER BY line_number IS NOT NULL, export_id DESC, source_file, line_number LIMIT 5""",
            [run.exports_new or ""]).fetchall()
        if top:  # the latest export first, as the data-quality page lists them
            print("First source lines to fix (exports applied now, the latest first):", file=out)
            for line in _columns([(f"{f}:{line}" if line is not None else f"{f} (whole file)",
                                   f"{rule} {col}".strip() + ":", detail or "") for f, line, rule, col, detail in top]):
                print(line, file=out)
        cats = con.execute("""
            SELECT indication, count(*) n,
                   count(CASE WHEN category = 'meaningful' THEN 1 END),
                   count(CASE WHEN category = 'minimal' THEN 1 END),
                   count(CASE WHEN category = 'intolerant' THEN 1 END),
                   count(CASE WHEN category = 'not_assessable' THEN 1 END)
            FROM marts.patient_response GROUP BY indication ORDER BY indication""").fetchall()
        print(f"Patients per category:\n  {'indication':<22}{'n':>7}{'meaningful':>12}{'minimal':>9}"
              f"{'intolerant':>12}{'not_assessable':>16}", file=out)
        for row in cats:
            print(f"  {row[0]:<22}{row[1]:>7}{row[2]:>12}{row[3]:>9}{row[4]:>12}{row[5]:>16}", file=out)
        print(f"Published: {clinic.snapshot}  dashboards: {clinic.dashboards_dir / 'index.html'}", file=out)
        marts = Path(clinic.marts_dir)
        prog = _prog()
        refused = _preview_refusal(clinic.release_preview_dir)
        print("Next:", file=out)
        for line in _columns([
            (f"{prog} sql{_reach(clinic, 'marts_dir')} \"{FAILING_CHECKS_QUERY}\"",
             "the failing checks (any query on the marts)"),
            (f"{prog} explain{_reach(clinic, 'marts_dir')} <patient_id>",
             "why a patient is in its category: values, days, source lines"),
            (str(marts / "data_docs" / "index.html"), "Great Expectations' Data Docs of this run's validations"),
            (str(clinic.release_preview_dir) + "/", "a preview of the next release, NOT for release"),
            (f"{prog} release{_reach(clinic, 'marts_dir', 'warehouse', 'rules_file')}",
             f"would refuse now: {refused}" if refused else
             f"makes the next release into {clinic.release_dir}/, the only folder that may "
             "leave the clinic (copy it with cp -rL)"),
        ]):
            print(line, file=out)
    finally:
        con.close()


def _preview_refusal(preview: Path) -> str | None:
    """Why `clinic release` would refuse the published set, as its release preview's manifest
    says (None: it would not, or there is no preview)."""
    import json

    from pipelines.config import RELEASE_MANIFEST

    try:
        return json.loads((preview / RELEASE_MANIFEST).read_text(encoding="utf-8")).get("refused")
    except (OSError, ValueError):
        return None


def _prog() -> str:
    """The command as it was typed (`.venv/bin/clinic` outside an activated venv), so a next
    step printed with it runs as shown."""
    return sys.argv[0] if Path(sys.argv[0]).name == "clinic" else "clinic"


def _reach(clinic, *names: str) -> str:
    """The options a later command needs to read what this run wrote: each of the `names`
    settings whose value this run took from an option, not from the environment or the default
    that command would use by itself (`clinic sql` alone reads data/marts, not `--marts ./marts`)."""
    import shlex

    given = {name: str(getattr(clinic, name)) for name in names}
    return "".join(f" {SETTINGS[name].flag} {shlex.quote(value)}" for name, value in given.items()
                   if Path(value).absolute() != Path(str(setting_value(name))).absolute())


def warehouse_unavailable(clinic, rebuild: bool = False) -> tuple[int, str] | None:
    """Why the warehouse cannot be opened for writing now: held by another run (exit 3),
    damaged (exit 5; with `rebuild`, read in full and, if damaged, moved aside to be rebuilt),
    or something else named as what it is (exit 5)."""
    import duckdb

    from pipelines.diagnosis import duckdb_file_damage
    from pipelines.resources import move_damaged_aside

    path = Path(clinic.warehouse)
    if not path.exists():
        return None
    try:
        duckdb.connect(str(path)).close()
        damage = duckdb_file_damage(path, None if rebuild else ("ingest",))
    except duckdb.IOException as error:
        first = str(error).split("\n")[0]
        if "lock" in first.lower():
            return EXIT_BUSY, (f"the warehouse {path} is being written by another run ({first}). Wait for it "
                               "to finish (the Dagster UI queues runs one at a time), then run again.")
        try:  # the machine's refusal (permissions, a folder) is said as such
            with path.open("r+b"):
                pass
        except OSError as refused:
            return EXIT_STEP_FAILED, (f"the warehouse {path} cannot be opened: {refused.strerror or refused}; "
                                      "check its permissions, or point --warehouse elsewhere")
        if "not a valid duckdb database" in first.lower():  # some other file, not a damaged warehouse
            return EXIT_STEP_FAILED, (f"the warehouse {path} cannot be opened: {first} Point --warehouse "
                                      "(CLINIC_WAREHOUSE) at the warehouse, or move that file away")
        damage = first  # the file opens, DuckDB cannot read it (cut short, say): its content is damaged
    except duckdb.Error as error:
        damage = str(error).splitlines()[0]
    if damage and rebuild:
        aside = move_damaged_aside(path)
        print(f"clinic run: the warehouse file {path} is damaged: {damage}; moved it (and its WAL) to {aside} "
              "and rebuilding it from the raw exports.", file=sys.stderr)
    elif damage:
        return EXIT_STEP_FAILED, (f"the warehouse file {path} is damaged: {damage}; `clinic run --rebuild` "
                                  "rebuilds it from the raw exports (it moves the damaged file aside first).")
    return None


# --- commands -------------------------------------------------------------------------------


def _config(args):
    from pipelines.config import ClinicConfig

    return ClinicConfig.with_overrides(**{name: getattr(args, name, None) for name in SETTINGS})


def _nothing_new(decision) -> int:
    """Say that the run has nothing to do, and record it in the run history (Dagster's import
    is the only heavy thing this path pays for)."""
    from pipelines.orchestration.nothing_new import nothing_new_message, record_nothing_new

    print(f"clinic run: {nothing_new_message(decision.previous_run)}")
    try:
        with project_instance() as instance:
            run_id = record_nothing_new(instance, decision.previous_run, decision.fingerprint.digest,
                                        {"clinic/started_by": "clinic run"})
        print(f"(recorded as run {run_id[:8]} of clinic_nothing_new in the Dagster run history, "
              f"{dagster_home()})", file=sys.stderr)
    except Exception as error:  # noqa: BLE001 - nothing was to be done; a history that cannot be written is no failure
        print(f"clinic run: could not record this run in the Dagster run history: {error}", file=sys.stderr)
    return EXIT_OK


def _checked_config(args, command: str):
    """The settings of this command, checked (rules, contract, manifest, paths), or None after
    saying what cannot be used (the caller exits 2)."""
    try:
        clinic = _config(args)
        clinic.check()
    except ConfigError as error:
        print(f"clinic {command}: {error}", file=sys.stderr)
        return None
    return clinic


def cmd_run(args) -> int:
    started = time.perf_counter()
    clinic = _checked_config(args, "run")
    if clinic is None:
        return EXIT_CONFIG
    home_problem = dagster_home_unusable()
    if home_problem:
        print(f"clinic run: {home_problem}", file=sys.stderr)
        return EXIT_CONFIG
    unavailable = warehouse_unavailable(clinic, rebuild=args.rebuild)
    if unavailable:
        print(f"clinic run: {unavailable[1]}", file=sys.stderr)
        return unavailable[0]
    # Only then: a setting, a declaration or a warehouse that cannot be used is said even on a
    # day with nothing new (the checks above import no pandas, GX or plotly).
    if not (args.force or args.rebuild):
        from pipelines.orchestration.fingerprint import decide

        try:
            decision = decide(clinic.values())
        except ConfigError as error:
            print(f"clinic run: {error}", file=sys.stderr)
            return EXIT_CONFIG
        except OSError:  # a declaration that cannot be read: the run's own checks say which
            decision = None
        if decision is not None and decision.nothing_new:
            return _nothing_new(decision)
        if decision is not None and decision.previous_run:
            print(f"clinic run: changed since run {decision.previous_run[:8]}: "
                  f"{', '.join(decision.changed)}", file=sys.stderr)

    from pipelines.quality.gx_worker import start_early

    start_early()  # Great Expectations' slow import overlaps Dagster's and the ingest
    for warning in clinic.warnings():
        print(f"clinic run: warning: {warning}", file=sys.stderr)
    os.environ["CLINIC_PROGRESS"] = "1"
    engine = "duckdb" if clinic.engine == "duckdb" else f"spark on {clinic.spark_remote}"
    print(f"clinic run: raw {clinic.raw_dir} -> warehouse {clinic.warehouse}, engine {engine} "
          f"(Dagster home {dagster_home()})", file=sys.stderr)
    warehouse_existed = Path(clinic.warehouse).exists()
    with project_instance() as instance:
        result = run_job(clinic, instance, rebuild=args.rebuild, tags={"clinic/started_by": "clinic run"})
    checks, failures = failed_checks(result), run_failures(result)
    if not result.success or checks:
        print(f"\nclinic run FAILED (run {result.run_id[:8]} in the Dagster UI's run history).", file=sys.stderr)
        for line in checks:
            print(f"  blocking check failed: {line}", file=sys.stderr)
        for _, line in failures:
            print(f"  {line}", file=sys.stderr)
        if not warehouse_existed and EXIT_INPUTS_MISSING in (code for code, _ in failures):
            # Stopped before applying anything: the empty warehouse it opened goes too (a path
            # given by mistake leaves nothing behind).
            for path in (Path(clinic.warehouse), Path(f"{clinic.warehouse}.wal")):
                path.unlink(missing_ok=True)
        print("The last published set is still what analysts and dashboards read." if clinic.snapshot.exists()
              else f"Nothing is published in {clinic.marts_dir} yet.", file=sys.stderr)
        # (an applied export gone from the raw folder is not checked again: the failure above says so)
        pending = [e for e in applied_not_published(clinic) if (Path(clinic.raw_dir) / e).is_dir()]
        if pending:
            stopped = any(line.endswith(INTERRUPTED_ADVICE) for _, line in failures)  # nothing to fix
            print(f"Applied to the warehouse, not published: {', '.join(pending)}; the next run checks them "
                  "again and publishes them once every check passes"
                  + ("." if stopped and not checks else " (fix what failed above first)."), file=sys.stderr)
        codes = [code for code, _ in failures]
        return EXIT_CHECK_FAILED if checks and not codes else min(codes or [EXIT_STEP_FAILED])
    print_summary(clinic, result.run_id)
    print(f"Done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return EXIT_OK


EXIT_REFUSED = 6  # `clinic release`: the release cannot be made safe (nothing written)


def cmd_release(args) -> int:
    """Make the next release, protected together with every release in the ledger, or refuse."""
    import duckdb

    from pipelines.release.ledger import make_release
    from pipelines.release.protection import Refused

    clinic = _checked_config(args, "release")
    if clinic is None:
        return EXIT_CONFIG
    try:
        release = make_release(clinic)
    except ConfigError as error:  # below the spec's floor for a release
        print(f"clinic release REFUSED: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as error:
        print(f"clinic release: {error}", file=sys.stderr)
        return EXIT_INPUTS_MISSING
    except ValueError as error:  # the ledger does not match what was sent
        print(f"clinic release: {error}", file=sys.stderr)
        return EXIT_STEP_FAILED
    except Refused as refused:
        print(f"clinic release REFUSED, nothing written, the ledger unchanged: {refused.reason}", file=sys.stderr)
        return EXIT_REFUSED
    except (OSError, duckdb.Error) as error:  # a full disk, a read-only marts folder
        name = type(error).__name__
        print(f"clinic release: {_named(name, str(error).splitlines()[0] if str(error) else name)}; "
              f"nothing was released, the ledger is unchanged; "
              f"{_advice(name, str(error)).replace('run again', 'run `clinic release` again')}", file=sys.stderr)
        return EXIT_STEP_FAILED
    use = release.entry["utility"]
    print(f"release {release.release_id} made from run {release.entry['run_id'][:8]}: "
          f"{use['published_exact']} of {use['count_cells']} count cells published "
          f"({use['published_share']:.0%}), protected together with {len(release.entry['earlier'])} "
          f"earlier release(s)\n{clinic.release_dir} -> {release.folder} (copy it with "
          f"`cp -rL {clinic.release_dir} <destination>`)")
    return EXIT_OK


def cmd_sql(args) -> int:
    from pipelines.sql_shell import run

    return run(args)


def cmd_demo_data(args) -> int:
    from pipelines.demo.generator import default_id_prefix, write_export

    started = time.perf_counter()
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # An export a run may have applied: rewriting it would make the next run stop on a file
        # that "changed after it was applied".
        print(f"clinic demo-data: {out} exists and is not empty; nothing was written. Give --out a new "
              "folder (a new export name), or remove that one first.", file=sys.stderr)
        return EXIT_CONFIG
    prefix = args.id_prefix if args.id_prefix is not None else default_id_prefix(out.name, args.seed)
    print(f"generating {args.patients:,} patients (seed {args.seed}) into {out}, ids {prefix}0000001 ... "
          f"({'--id-prefix' if args.id_prefix is not None else 'prefix from the folder name and seed'}) ...",
          file=sys.stderr)
    counts = write_export(out, args.patients, seed=args.seed, defects=args.defects, id_prefix=prefix,
                          diary_every=args.diary_every, progress=lambda m: print(f"  {m}", file=sys.stderr))
    for table, n in counts.items():
        print(f"  {table}: {n:,} rows", file=sys.stderr)
    import shlex

    raw = "" if out.parent.absolute() == Path(str(setting_value("raw_dir"))).absolute() else \
        f" {SETTINGS['raw_dir'].flag} {shlex.quote(str(out.parent))}"
    contract = _config(args).contract()
    if contract.export_names.why_unfit(out.name, contract):  # then there is nothing to apply yet
        print(f"done in {time.perf_counter() - started:.1f} s; note: `clinic run` will not apply it: name the "
              f"folder like {contract.export_names.example} (rules/contract.yaml exports), then "
              f"`{_prog()} run{raw}`", file=sys.stderr)
    else:
        print(f"done in {time.perf_counter() - started:.1f} s; apply it with `{_prog()} run{raw}`", file=sys.stderr)
    return 0


def cmd_ui(args) -> int:
    clinic = _config(args)
    home = dagster_home()
    from pipelines.orchestration.instance import ensure_dagster_home

    ensure_dagster_home(home)
    env = {**os.environ, "DAGSTER_HOME": str(home),
           **{s.env: str(getattr(clinic, name)) for name, s in SETTINGS.items()}}
    # `dagster dev` warns that `dg dev` supersedes it; dg needs a project layout of its own
    # (dagster-dg-cli), and the warning says nothing the person who typed `clinic ui` can act on.
    cmd = [sys.executable, "-W", "ignore:Function `dev_command` is superseded:FutureWarning",
           "-m", "dagster", "dev", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home}); stop it with Ctrl-C "
          "or SIGTERM", file=sys.stderr)
    # Started from a script (`clinic ui &`), SIGINT arrives ignored, and dagster dev maps SIGTERM
    # to SIGINT's handler: both would be ignored and the UI, daemon and code servers outlive
    # every kill but -9. With the defaults back, dagster dev stops its processes on either.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    os.execvpe(cmd[0], cmd, env)


# --- the parser -----------------------------------------------------------------------------


def _settings_help() -> str:
    lines = ["environment (each overridden by its option where there is one):"]
    for name, s in SETTINGS.items():
        lines.append(f"  {s.env:<28} {s.help} (default {default_shown(name)})")
    lines.append(f"  {'DAGSTER_HOME':<28} the Dagster instance whose run history every run joins "
                 f"(default {in_project(DEFAULT_DAGSTER_HOME)})")
    return "\n".join(lines)


def _add_settings(parser: argparse.ArgumentParser, command: str) -> None:
    for name, s in SETTINGS.items():
        if s.flag and command in s.commands:
            parser.add_argument(s.flag, dest=name, metavar=s.metavar, choices=s.choices,
                                help=f"{s.help} (default {default_source(name)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clinic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser(
        "run", formatter_class=formatter, help="run the pipeline on the raw exports and publish the marts",
        description="Run the clinic_pipeline job (the one the daily schedule, the new-export sensor and "
                    "the UI run) in this process, in the project's Dagster instance, so the run is in the "
                    "same history; print progress and a summary.",
        epilog="exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
               + "\n\n" + _settings_help())
    _add_settings(run, "run")
    run.add_argument("--rebuild", action="store_true",
                     help="rebuild the warehouse from the exports present, dropping exports or files applied "
                          "before that are gone or changed, and say what is dropped (default: such a run stops)")
    run.add_argument("--force", action="store_true",
                     help="run even when nothing changed since the published set was built, incrementally as "
                          "any run (--rebuild rebuilds from the raw exports; default: such a run says "
                          "'nothing new since run <id>' and stops, exit 0)")
    run.set_defaults(func=cmd_run)

    from pipelines.sql_shell import add_parser as add_sql_parser

    add_sql_parser(sub).set_defaults(func=cmd_sql)

    from pipelines.explain import add_parser as add_explain_parser

    add_explain_parser(sub)

    demo = sub.add_parser("demo-data", help="write a synthetic export that follows the contract",
                          description="Write one complete export folder (with _READY) of synthetic "
                                      "patients, deterministic for a seed.")
    demo.add_argument("--patients", type=int, default=230, help="number of patients (default 230)")
    demo.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    demo.add_argument("--out", required=True, metavar="DIR", help="export folder to write (required)")
    demo.add_argument("--defects", type=float, default=0.0,
                      help="share of rows given a realistic defect, e.g. 0.01 (default 0)")
    demo.add_argument("--diary-every", type=int, default=0, metavar="DAYS",
                      help="add a patient diary value every DAYS days (about 10x the measurement rows per "
                           "patient; the benchmark uses 5); default 0: clinic visits only, shaped like the "
                           "committed demo, so the export passes the rows-per-patient check beside it")
    demo.add_argument("--id-prefix", default=None,
                      help="pseudonym prefix; an earlier export's prefix (the committed demo's is P) reuses its "
                           "ids for other generated people, whose sex or age mostly differ (identity_conflict "
                           "shows them) (default: one of its own, from the folder name and the seed, so exports "
                           "of different patients never share an id)")
    demo.set_defaults(func=cmd_demo_data)

    release = sub.add_parser(
        "release", formatter_class=formatter, help="make the next release (what may leave the clinic)",
        description="Make the next release from the published internal set into <marts>/release/, protected "
                    "together with every release in the ledger (<marts>/releases/ledger.jsonl), and append it "
                    "to the ledger; or refuse, saying why and how many more patients it needs.",
        epilog=f"exit codes:\n  {EXIT_OK}  the release was made\n  {EXIT_CONFIG}  a setting cannot be used\n"
               f"  {EXIT_INPUTS_MISSING}  nothing is published yet (run `clinic run` first)\n"
               f"  {EXIT_STEP_FAILED}  a release in the ledger differs from what was sent (nothing written)\n"
               f"  {EXIT_REFUSED}  refused: it cannot be made safe (nothing written, the ledger unchanged)")
    _add_settings(release, "release")
    release.set_defaults(func=cmd_release)

    ui = sub.add_parser("ui", help="the Dagster web UI on the project's definitions",
                        description="Start the Dagster web UI and daemon (schedule, sensor) on the "
                                    "project's definitions and Dagster home.")
    _add_settings(ui, "ui")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipelines.explain import dash_ids_as_positional

    args = build_parser().parse_args(dash_ids_as_positional(sys.argv[1:] if argv is None else argv))
    return args.func(args)


def entry() -> None:
    """The `clinic` command (pyproject's script, and `python -m pipelines.cli`): main(), then an
    exit that skips the interpreter's teardown of every module a command loaded (Dagster, pandas,
    Plotly, pyarrow...), 0.9 s at the end of every `clinic run`, measured at demo and at 10^5
    patients. The exit handlers run first (the GX worker is stopped, logging flushed) and the
    output is flushed; every file and connection a command opens is closed by then. Tests call
    main() and keep their interpreter."""
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that left (`| head`), or a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
