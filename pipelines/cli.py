"""`clinic`: run the pipeline, query the published marts, make demo data, open the UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipelines.settings import REPO_ROOT, ClinicSettings


def _settings(args) -> ClinicSettings:
    return ClinicSettings.from_env(raw_dir=getattr(args, "raw", None), marts_dir=getattr(args, "marts", None),
                                   warehouse=getattr(args, "warehouse", None),
                                   rules_file=getattr(args, "rules", None))


QUIET_DAGSTER = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def materialize_all(settings: ClinicSettings, quiet_dagster: bool = True):
    """Materialise every asset and check in this process (no subprocess per step)."""
    import dagster as dg

    from pipelines.definitions import ASSETS, CHECKS
    from pipelines.resources import build_resources

    return dg.materialize([*ASSETS, *CHECKS], resources=build_resources(settings),
                          raise_on_error=False, run_config=QUIET_DAGSTER if quiet_dagster else None)


def failed_checks(result) -> list[str]:
    return [f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description or 'failed'}"
            for e in result.get_asset_check_evaluations() if not e.passed]


def print_summary(settings: ClinicSettings, out=sys.stdout) -> None:
    import duckdb

    con = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        run = con.execute("SELECT * FROM marts.run_info ORDER BY run_time DESC LIMIT 1").df().iloc[0]
        print(f"\nRun {run.run_id[:8]} ({run.ingest_mode}), rules version {run.rules_version}, "
              f"code {run.code_version}", file=out)
        print(f"Rows read {run.rows_in:,}: accepted {run.rows_accepted:,}, quarantined "
              f"{run.rows_quarantined:,}, exact duplicates {run.rows_duplicate:,}", file=out)
        q = con.execute("SELECT table_name, rule, sum(rows_affected) n FROM marts.quarantine "
                        "GROUP BY ALL ORDER BY n DESC").fetchall()
        if q:
            print("Quarantine by table and rule:", file=out)
            for table, rule, n in q:
                print(f"  {table:<18} {rule:<26} {n:>9,}", file=out)
            top = con.execute("SELECT source_file, line_number, rule, column_name, detail "
                              "FROM marts.quarantine ORDER BY line_number IS NOT NULL, source_file, "
                              "line_number LIMIT 5").fetchall()
            print("First source lines to fix:", file=out)
            for f, line, rule, col, detail in top:
                where = f"{f}:{line}" if line is not None else f"{f} (whole file)"
                print(f"  {where}  {rule} {col}: {detail}", file=out)
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
        print(f"Published: {settings.snapshot}  dashboards: {settings.dashboards_dir / 'index.html'}",
              file=out)
    finally:
        con.close()


def warehouse_busy(settings: ClinicSettings) -> str | None:
    """Why the warehouse cannot be written now (another run holds DuckDB's write lock)."""
    import duckdb

    if not settings.warehouse.exists():
        return None
    try:
        duckdb.connect(str(settings.warehouse)).close()
    except duckdb.IOException as error:
        return str(error).split("\n")[0]
    return None


def cmd_run(args) -> int:
    settings = _settings(args)
    busy = warehouse_busy(settings)
    if busy:
        print(f"clinic run: the warehouse {settings.warehouse} is being written by another run "
              f"({busy}). Wait for it to finish (the Dagster UI queues runs one at a time), "
              "then run again.", file=sys.stderr)
        return 3
    from pipelines.quality.gx_worker import start_early

    start_early()
    os.environ["CLINIC_PROGRESS"] = "1"
    started = time.perf_counter()
    print(f"clinic run: raw {settings.raw_dir} -> warehouse {settings.warehouse}", file=sys.stderr)
    result = materialize_all(settings)
    failures = failed_checks(result)
    if not result.success or failures:
        print("\nclinic run FAILED.", file=sys.stderr)
        for f in failures:
            print(f"  blocking check failed: {f}", file=sys.stderr)
        for event in result.all_events:
            if event.is_step_failure:
                print(f"  step failed: {event.step_key}: "
                      f"{event.step_failure_data.error.message.strip()}", file=sys.stderr)
        print("Fix the named check (see marts.data_quality / marts.quarantine in the warehouse) "
              "and run again; the last good snapshot is still published.", file=sys.stderr)
        return 1
    print_summary(settings)
    print(f"Done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def cmd_sql(args) -> int:
    import duckdb

    settings = _settings(args)
    if not settings.snapshot.exists():
        print(f"No published snapshot at {settings.snapshot}: run `clinic run` first.", file=sys.stderr)
        return 2
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    con.execute("USE marts")
    if args.query:
        return _print_query(con, args.query)
    print(f"clinic sql on {settings.snapshot} (read-only). Tables: "
          + ", ".join(r[0] for r in con.execute("SHOW TABLES").fetchall()) + ". End with ; and Enter, "
          "quit with Ctrl-D.")
    buffer = ""
    while True:
        try:
            line = input("clinic> " if not buffer else "   ...> ")
        except EOFError:
            print()
            return 0
        buffer += line + "\n"
        if buffer.strip().endswith(";") or buffer.strip() in (".quit", "quit", "exit"):
            if buffer.strip() in (".quit", "quit", "exit"):
                return 0
            _print_query(con, buffer)
            buffer = ""


def _print_query(con, query: str) -> int:
    import duckdb

    try:
        rel = con.sql(query)
    except duckdb.Error as error:
        print(f"SQL error: {error}", file=sys.stderr)
        return 1
    if rel is not None:
        rel.show(max_rows=200, max_width=200)
    return 0


def cmd_demo_data(args) -> int:
    from pipelines.demo.generator import generate

    started = time.perf_counter()
    out = Path(args.out)
    print(f"generating {args.patients:,} patients (seed {args.seed}) into {out} ...", file=sys.stderr)
    counts = generate(args.patients, seed=args.seed, defects=args.defects,
                      id_prefix=args.id_prefix).write(out)
    for table, n in counts.items():
        print(f"  {table}: {n:,} rows", file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.1f} s; apply it with "
          f"`clinic run --raw {out.parent}`", file=sys.stderr)
    return 0


def cmd_ui(args) -> int:
    settings = _settings(args)
    home = Path(os.environ.get("DAGSTER_HOME", REPO_ROOT / "data" / "dagster_home"))
    home.mkdir(parents=True, exist_ok=True)
    from pipelines.orchestration.instance import ensure_dagster_home

    ensure_dagster_home(home)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CLINIC_RAW_DIR": str(settings.raw_dir),
           "CLINIC_MARTS_DIR": str(settings.marts_dir), "CLINIC_WAREHOUSE": str(settings.warehouse)}
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions",
           "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home})", file=sys.stderr)
    os.execvpe(cmd[0], cmd, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def paths(p):
        p.add_argument("--raw", help="folder of exports (default $CLINIC_RAW_DIR or data/raw)")
        p.add_argument("--marts", help="publish folder (default $CLINIC_MARTS_DIR or data/marts)")
        p.add_argument("--warehouse", help="warehouse file (default $CLINIC_WAREHOUSE)")
        p.add_argument("--rules", help="response rules file (default rules/response_rules.yaml)")

    run = sub.add_parser("run", help="materialise every asset in this process")
    paths(run)
    run.set_defaults(func=cmd_run)
    q = sub.add_parser("sql", help="query the published snapshot read-only")
    q.add_argument("query", nargs="?", help="SQL; without it, an interactive prompt")
    paths(q)
    q.set_defaults(func=cmd_sql)
    demo = sub.add_parser("demo-data", help="write a synthetic export following the contract")
    demo.add_argument("--patients", type=int, default=230)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--out", required=True, help="export folder to write (with _READY)")
    demo.add_argument("--defects", type=float, default=0.0,
                      help="share of rows given a realistic defect (e.g. 0.01)")
    demo.add_argument("--id-prefix", default="P",
                      help="pseudonym prefix, so exports of different patients do not collide")
    demo.set_defaults(func=cmd_demo_data)
    ui = sub.add_parser("ui", help="the Dagster web UI on the project's definitions")
    paths(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
