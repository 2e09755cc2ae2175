"""Benchmark (shared spec performance.md): floor, clinic cold, clinic with nothing new, clinic warm,
the scheduled path, the UI's path (Materialize all), pandas+GX peer, and the job with no work
in it (benchmarks/dagster_alone.py: what every run pays before its work).

    python -m benchmarks.run --scale S [--repeats 3] [--out benchmarks/results/S.json] [--no-spark]

At S and M it also times `clinic run --engine spark` (local mode) and counts the
patient_response rows the two engines publish differently (expected: none).

Generates the export once, then times each contender as a separate process (median of
the repeats; the floor at least three times), with peak resident memory of the whole process
tree, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.profile import last_run_steps

SCALES = {"demo": 200, "S": 10_000, "M": 100_000, "L": 1_000_000}
DIARY_EVERY = 5  # days: a diary value every 5 days gives the spec's ~100 measurement rows per patient
# The floor is the denominator of every ratio to it, and one reading of it is noisy (at L 6.8, 7.8
# and 10.7 s within an hour on this machine, the clinic's cold run 90-94 s each time): it is
# cheap, so its median is of at least this many runs whatever --repeats says.
FLOOR_RUNS_AT_LEAST = 3
ROOT = Path(__file__).resolve().parent.parent

FLOOR = """
import duckdb, json, sys
raw, params = sys.argv[1], json.loads(sys.argv[3])
sql = open(sys.argv[2]).read().replace('${raw}', raw)
for name, value in params.items():
    sql = sql.replace('${' + name + '}', value)
con = duckdb.connect()
con.execute(sql)
"""

PEER = """
import json, sys, pandas as pd, great_expectations as gx, numpy as np
raw, suites, primary = sys.argv[1], json.load(open(sys.argv[2])), json.loads(sys.argv[3])
tables = {t: pd.read_csv(f"{raw}/{t}.csv") for t in suites}
ctx = gx.get_context(mode="ephemeral")
for name, df in tables.items():  # contract-like suites (from the project's contract), on the raw tables
    batch = (ctx.data_sources.add_pandas(name).add_dataframe_asset(name)
             .add_batch_definition_whole_dataframe("b").get_batch(batch_parameters={"dataframe": df}))
    batch.validate(gx.ExpectationSuite(name=name, expectations=suites[name]))
p, m, d, a = (tables[t] for t in ("patients", "measurements", "discontinuations", "adverse_events"))
p["instrument"] = p.indication.map(primary)
v = m.merge(p[["patient_id", "instrument", "indication"]], on=["patient_id", "instrument"])
base = v[v.study_day.between(-30, 0)].sort_values("study_day").groupby("patient_id").tail(1)
ass = v[v.study_day.between(56, 252)].assign(dist=lambda f: (f.study_day - 168).abs())
ass = ass.sort_values(["dist", "study_day"], ascending=[True, False]).groupby("patient_id").head(1)
r = base.merge(ass, on="patient_id", suffixes=("_b", "_a"))
r["pct"] = 100 * (r.value_a - r.value_b) / r.value_b.replace(0, np.nan)
stop = set(d[(d.reason == "adverse_event") & (d.study_day <= 252)].patient_id) | set(
    a[(a.action == "discontinued") & (a.study_day <= 252)].patient_id)
r["category"] = np.where(r.patient_id.isin(stop), "intolerant", np.where(r.pct <= -30, "meaningful", "minimal"))
print(r.category.value_counts().to_dict())
"""


def tree_rss_kb(root: int) -> int:
    """Resident memory (KiB) of `root` and every process under it, read from /proc in this
    process. Spawning `ps` per process every sample, as this used to, took ~8 ms of CPU a call:
    on 2 cores that load slowed the process it measured (a cold run at L: 181 s against 156 s
    unmeasured)."""
    parent_and_rss: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # the process ended between the listing and the read
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after the command name, which may hold spaces
        parent_and_rss[int(name)] = (int(fields[1]), int(fields[21]))  # ppid, rss in pages
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in parent_and_rss.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += parent_and_rss.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total * (os.sysconf("SC_PAGE_SIZE") // 1024)


def measure(cmd: list[str], cwd: Path = ROOT, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the whole process tree, sampled every 50 ms."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_kb(proc.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return time.perf_counter() - start, peak / 1024


def contract_suites(contract_file: Path) -> dict[str, list[dict]]:
    """What a data team without this project would write in Great Expectations for the raw
    tables, from the export contract: not-null, codes, ranges and patterns, per table. A range
    that depends on another column (a measurement's value, by its instrument) is one
    expectation per code, on the rows of that code (GX's row_condition); an exclusive minimum
    is strict. Not here: the identifier-value screen of every cell, the foreign key and the
    whole-number check, which the contract has and a GX suite of the raw tables would not."""
    from pipelines.ingest.contract import load_contract

    suites = {}
    for table in load_contract(contract_file).tables.values():
        found = []
        for col in table.columns:
            if col.required:
                found.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col.name}})
            if col.values:
                found.append({"type": "expect_column_values_to_be_in_set",
                              "kwargs": {"column": col.name, "value_set": list(col.values)}})
            if col.minimum is not None and col.maximum is not None:
                found.append({"type": "expect_column_values_to_be_between",
                              "kwargs": {"column": col.name, "min_value": col.minimum, "max_value": col.maximum,
                                         "strict_min": col.min_exclusive}})
            if col.ranges_by:
                found.extend({"type": "expect_column_values_to_be_between",
                              "kwargs": {"column": col.name, "min_value": low, "max_value": high,
                                         "row_condition": f"{col.ranges_by}=={code!r}", "condition_parser": "pandas"}}
                             for code, (low, high) in table.ranges.items())
            if col.pattern:
                found.append({"type": "expect_column_values_to_match_regex",
                              "kwargs": {"column": col.name, "regex": col.pattern}})
        found.append({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": list(table.key)}}
                     if len(table.key) > 1 else
                     {"type": "expect_column_values_to_be_unique", "kwargs": {"column": table.key[0]}})
        suites[table.name] = found
    return suites


def floor_parameters(rules_file: Path, contract_file: Path) -> dict[str, str]:
    """floor.sql's placeholders, from the rules file (each indication's primary measure, the
    windows) and the instrument registry (each measure's direction): SQL literals only."""
    from pipelines.ingest.contract import load_contract
    from pipelines.response.rules import load_rules
    from pipelines.sqlfiles import quote_literal

    contract = load_contract(contract_file)
    rules = load_rules(rules_file, contract)
    w = rules["windows"]
    rows = ", ".join(f"({quote_literal(i)}, {quote_literal(s['primary_measure'])}, "
                     f"{contract.instruments[s['primary_measure']].improvement_sign})"
                     for i, s in rules["indications"].items())
    return {"primary_measures": rows, "baseline_from": str(int(w["baseline"]["from_day"])),
            "baseline_to": str(int(w["baseline"]["to_day"])), "assessment_from": str(int(w["assessment"]["from_day"])),
            "assessment_to": str(int(w["assessment"]["to_day"])), "target_day": str(int(w["assessment"]["target_day"])),
            "stop_counts_until_day": str(int(w["stop_counts_until_day"]))}


def primary_measures(rules_file: Path, contract_file: Path) -> dict[str, str]:
    """Each indication's primary measure (the rules file), for the peer script."""
    from pipelines.ingest.contract import load_contract
    from pipelines.response.rules import load_rules

    rules = load_rules(rules_file, load_contract(contract_file))
    return {i: s["primary_measure"] for i, s in rules["indications"].items()}


def rows_differing(duckdb_marts: Path, spark_marts: Path) -> dict:
    """patient_response as the two engines published it: rows in one and not the other, in
    each direction (doubles rounded to 6 decimals: sums may differ in the last bit)."""
    import duckdb

    from pipelines.ingest.load import literal_path

    con = duckdb.connect()
    cols = ("patient_id, category, reason, criterion, baseline_source, assessment_source, baseline_day, "
            "assessment_day, round(baseline_value, 6), round(assessment_value, 6), round(change_pct, 6)")
    rel = {k: f"(SELECT {cols} FROM read_parquet({literal_path(m / 'current' / 'patient_response.parquet')}))"
           for k, m in (("duckdb", duckdb_marts), ("spark", spark_marts))}
    only = {k: con.execute(f"SELECT count(*) FROM ({rel[k]} EXCEPT ALL {rel[o]})").fetchall()[0][0]
            for k, o in (("duckdb", "spark"), ("spark", "duckdb"))}
    rows = con.execute(f"SELECT count(*) FROM {rel['duckdb']}").fetchall()[0][0]
    return {"patients": rows, "only_duckdb": only["duckdb"], "only_spark": only["spark"]}


def dagster_home_of(work: Path) -> Path:
    """The Dagster home every run of the benchmark records in (not the project's history)."""
    return work / "dagster_home"


def outputs_of(work: Path, tag: str) -> tuple[Path, Path]:
    """The warehouse and published set of the benchmark's `tag` runs (cold, warm, scheduled, ...)."""
    return work / f"wh_{tag}.duckdb", work / f"marts_{tag}"


def median_of(runs: list[tuple[float, float]]) -> dict:
    return {"seconds": round(statistics.median(r[0] for r in runs), 3),
            "peak_mib": round(max(r[1] for r in runs), 1), "runs": [round(r[0], 3) for r in runs]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=SCALES, default="S")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "work"))
    parser.add_argument("--out")
    parser.add_argument("--spark", action=argparse.BooleanOptionalAction, default=None,
                        help="also time --engine spark (default: at S and M)")
    args = parser.parse_args(argv)
    work = Path(args.work) / args.scale
    if args.spark is None:
        args.spark = args.scale in ("S", "M")
    raw = work / "raw"
    export = raw / "2026-11-01T0600_bench"
    py = sys.executable
    if not (export / "_READY").exists():
        print(f"generating scale {args.scale} ...", file=sys.stderr)
        subprocess.run([py, "-m", "pipelines.cli", "demo-data", "--patients", str(SCALES[args.scale]),
                        "--seed", "7", "--diary-every", str(DIARY_EVERY), "--out", str(export)], check=True, cwd=ROOT)
    floor_sql = ROOT / "benchmarks" / "floor.sql"
    results = {}
    rules_file, contract_file = ROOT / "rules" / "response_rules.yaml", ROOT / "rules" / "contract.yaml"
    floor_params = json.dumps(floor_parameters(rules_file, contract_file))
    runs = [measure([py, "-c", FLOOR, str(export), str(floor_sql), floor_params])
            for _ in range(max(args.repeats, FLOOR_RUNS_AT_LEAST))]
    results["floor"] = median_of(runs)
    print(f"floor: {results['floor']}", file=sys.stderr)

    hollow_home = work / "dagster_home_hollow"  # its own run history: the hollow runs are not the clinic's
    hollow_home.mkdir(parents=True, exist_ok=True)
    results["dagster_alone"] = median_of([measure([py, "-m", "benchmarks.dagster_alone", str(hollow_home)])
                                          for _ in range(args.repeats)])
    print(f"the job with no work (Dagster alone): {results['dagster_alone']}", file=sys.stderr)

    home = {"DAGSTER_HOME": str(dagster_home_of(work))}

    def fresh_outputs(tag: str) -> tuple[Path, Path]:
        wh, marts = outputs_of(work, tag)
        wh.unlink(missing_ok=True)
        shutil.rmtree(marts, ignore_errors=True)
        return wh, marts

    def copy_outputs(source: str, tag: str) -> None:
        """The warehouse and published set of the `source` runs, copied for the `tag` runs
        (`current` and the published paths are relative links: kept as links)."""
        (wh, marts), (source_wh, source_marts) = fresh_outputs(tag), outputs_of(work, source)
        shutil.copy(source_wh, wh)
        shutil.copytree(source_marts, marts, symlinks=True)

    def clinic(raw_dir: Path, tag: str, fresh: bool, *extra: str):
        wh, marts = fresh_outputs(tag) if fresh else outputs_of(work, tag)
        return measure([py, "-m", "pipelines.cli", "run", "--raw", str(raw_dir), "--warehouse", str(wh),
                        "--marts", str(marts), *extra], env=home)

    def scheduled():
        """The job as the daemon runs it for a schedule or sensor tick (`dagster job execute`)."""
        wh, marts = fresh_outputs("scheduled")
        return measure([py, "-m", "dagster", "job", "execute", "-m", "pipelines.definitions", "-j",
                        "clinic_pipeline"], env={**home, "CLINIC_RAW_DIR": str(raw), "CLINIC_WAREHOUSE": str(wh),
                                                 "CLINIC_MARTS_DIR": str(marts)})

    def ui_path():
        """The implicit asset job, as the UI's "Materialize all" launches it (`dagster asset materialize`)."""
        wh, marts = fresh_outputs("ui")
        return measure([py, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select",
                        "*"], env={**home, "CLINIC_RAW_DIR": str(raw), "CLINIC_WAREHOUSE": str(wh),
                                   "CLINIC_MARTS_DIR": str(marts)})

    dagster_home_of(work).mkdir(parents=True, exist_ok=True)
    cold_runs = [clinic(raw, "cold", True) for _ in range(args.repeats)]
    results["clinic_cold"] = median_of(cold_runs)
    print(f"clinic cold: {results['clinic_cold']}", file=sys.stderr)
    # seconds per step of the last cold run, from its Dagster event log (no extra run)
    results["clinic_cold_steps"] = last_run_steps(dagster_home_of(work), cold_runs[-1][0])
    # the same command again on the last cold run's outputs: nothing new, so no work
    results["clinic_nothing_new"] = median_of([clinic(raw, "cold", False) for _ in range(args.repeats)])
    print(f"clinic, nothing new: {results['clinic_nothing_new']}", file=sys.stderr)
    if args.scale == "L":  # the floor and a cold run (the spec's L figures); the peer cannot fit in memory
        return _write(args, results, {"clinic_cold/floor": round(
            results["clinic_cold"]["seconds"] / results["floor"]["seconds"], 2)})
    results["scheduled_cold"] = median_of([scheduled() for _ in range(args.repeats)])
    print(f"scheduled path, cold: {results['scheduled_cold']}", file=sys.stderr)
    results["ui_cold"] = median_of([ui_path() for _ in range(args.repeats)])
    print(f"UI path (Materialize all), cold: {results['ui_cold']}", file=sys.stderr)

    warm_runs = []
    for i in range(args.repeats):
        warm_raw = work / "raw_warm"
        shutil.rmtree(warm_raw, ignore_errors=True)
        warm_raw.mkdir(parents=True)
        (warm_raw / export.name).symlink_to(export)
        copy_outputs("cold", "warm")  # the state a cold run left, as the day before's run leaves it
        delta = warm_raw / f"2026-11-02T0600_delta{i}"
        subprocess.run([py, "-m", "pipelines.cli", "demo-data", "--patients", "50", "--seed", str(100 + i),
                        "--id-prefix", f"D{i}", "--out", str(delta)], check=True, cwd=ROOT,
                       capture_output=True)
        warm_runs.append(clinic(warm_raw, "warm", False))
    results["clinic_warm"] = median_of(warm_runs)
    print(f"clinic warm: {results['clinic_warm']}", file=sys.stderr)

    if args.spark:  # Spark's local mode beside DuckDB (not a target: one machine favours DuckDB)
        results["spark_cold"] = median_of([clinic(raw, "spark", True, "--engine", "spark")
                                           for _ in range(args.repeats)])
        results["spark_differs_from_duckdb"] = rows_differing(outputs_of(work, "cold")[1], outputs_of(work, "spark")[1])
        print(f"spark cold: {results['spark_cold']}, patient_response rows differing from DuckDB's: "
              f"{results['spark_differs_from_duckdb']}", file=sys.stderr)

    suites = work / "peer_suites.json"
    suites.write_text(json.dumps(contract_suites(contract_file)))
    primary = json.dumps(primary_measures(rules_file, contract_file))
    results["peer"] = median_of([measure([py, "-c", PEER, str(export), str(suites), primary])
                                 for _ in range(args.repeats)])
    print(f"peer: {results['peer']}", file=sys.stderr)

    f, c, w, p, sch, ui, nothing = (results[k]["seconds"] for k in (
        "floor", "clinic_cold", "clinic_warm", "peer", "scheduled_cold", "ui_cold", "clinic_nothing_new"))
    return _write(args, results, {"clinic_cold/floor": round(c / f, 2), "clinic_warm/clinic_cold": round(w / c, 2),
                                  "peer/clinic_cold": round(p / c, 2), "scheduled/clinic_cold": round(sch / c, 2),
                                  "ui/clinic_cold": round(ui / c, 2), "nothing_new/clinic_cold": round(nothing / c, 2)})


def _write(args, results: dict, ratios: dict) -> int:
    results["ratios"] = ratios
    results["scale"] = args.scale
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()}
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"{args.scale}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results["ratios"]), f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
