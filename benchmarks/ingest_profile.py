"""Loading one table (measurements by default) against the floor's read of the same file.

    python -m benchmarks.ingest_profile --scale M [--repeats 3] [--table measurements] [--statements]

The spec's target (performance.md): loading measurements within 4x the floor's read of them.
Both are timed in this one process, side by side, as medians: the floor's read is DuckDB
reading the CSV with its own sniffer into a table (what the floor's statement needs of the
file); loading is the clinic's ingest of the same file into a fresh warehouse file (check,
number, quarantine and merge, one transaction), with the run's memory cap. The export is the
benchmark's (benchmarks/run.py generates it, or this script does the same way).
`--statements` adds each SQL statement's wall and CPU seconds of the last load, slowest first.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.run import ROOT, SCALES
from pipelines.ingest.contract import load_contract
from pipelines.ingest.load import apply_export, ensure_warehouse, literal_path
from pipelines.settings import setting_value


def cpu_seconds() -> float:
    """This process's CPU time, all threads (DuckDB's included): on a shared machine it moves
    far less than wall time with the other work, so the ratio is given in both."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TimedConnection:
    """A DuckDB connection that records each statement's wall and CPU seconds (its first line
    names it)."""

    def __init__(self, con):
        self._con, self.timings = con, []

    def execute(self, query, *args):
        """Each statement of a script (several statements in one string) is timed on its own."""
        parts = duckdb.extract_statements(query) if isinstance(query, str) and not args else []
        if len(parts) > 1:
            for part in parts:
                result = self.execute(part.query)
            return result
        started, cpu = time.perf_counter(), cpu_seconds()
        result = self._con.execute(query, *args)
        name = next((line for line in str(query).splitlines() if line and not line.startswith("--")), "")
        self.timings.append((round(time.perf_counter() - started, 3), round(cpu_seconds() - cpu, 3), name[:100]))
        return result

    def __getattr__(self, name):
        return getattr(self._con, name)


def floor_read(path: Path, memory_limit: str) -> tuple[float, float]:
    """The floor's read of one file: sniffed and typed by DuckDB, into a table (wall, CPU seconds)."""
    con = duckdb.connect(config={"memory_limit": memory_limit})
    started, cpu = time.perf_counter(), cpu_seconds()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv({literal_path(path)})")
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    con.close()
    return seconds, cpu


def load(export: Path, table: str, work: Path, memory_limit: str,
         statements: bool = False) -> tuple[float, float, dict]:
    """The clinic's ingest of one table of one export into a fresh warehouse file (wall, CPU
    seconds, and what it loaded)."""
    contract = load_contract(ROOT / "rules" / "contract.yaml")
    warehouse = work / "ingest_profile.duckdb"
    warehouse.unlink(missing_ok=True)
    con = duckdb.connect(str(warehouse), config={"memory_limit": memory_limit})
    ensure_warehouse(con, contract)
    timed = TimedConnection(con) if statements else con
    started, cpu = time.perf_counter(), cpu_seconds()
    [result] = apply_export(timed, contract, contract.tables[table], export)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    counts = {"rows_read": result.rows_read, "quarantined": result.failed, "duplicates": result.duplicates,
              "loaded": con.execute(f"SELECT count(*) FROM core.{table}").fetchone()[0]}
    if statements:
        counts["outside_sql_seconds"] = round(seconds - sum(s for s, _, _ in timed.timings), 3)
        counts["statements"] = sorted(timed.timings, reverse=True)[:15]
    con.close()
    warehouse.unlink(missing_ok=True)
    return seconds, cpu, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="S")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--table", default="measurements")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "work"))
    parser.add_argument("--statements", action="store_true", help="each statement's seconds of the last load")
    args = parser.parse_args(argv)
    export = Path(args.work) / args.scale / "raw" / "2026-11-01T0600_bench"
    if not (export / "_READY").exists():  # the same export benchmarks/run.py makes
        subprocess.run([sys.executable, "-m", "pipelines.cli", "demo-data", "--patients", str(SCALES[args.scale]),
                        "--seed", "7", "--out", str(export)], check=True, cwd=ROOT)
    memory_limit = str(setting_value("duckdb_memory_limit"))
    floors, loads, counts = [], [], {}
    with tempfile.TemporaryDirectory(dir=Path(args.work)) as tmp:
        for i in range(args.repeats):  # interleaved, so a busy spell of the machine hits both
            floors.append(floor_read(export / f"{args.table}.csv", memory_limit))
            *timing, counts = load(export, args.table, Path(tmp), memory_limit,
                                   statements=args.statements and i == args.repeats - 1)
            loads.append(tuple(timing))
    floor, loading = (statistics.median(s for s, _ in floors), statistics.median(c for _, c in floors)), (
        statistics.median(s for s, _ in loads), statistics.median(c for _, c in loads))
    print(json.dumps({"scale": args.scale, "table": args.table, "memory_limit": memory_limit,
                      "floor_read_seconds": round(floor[0], 3), "loading_seconds": round(loading[0], 3),
                      "loading/floor_read": round(loading[0] / floor[0], 2),
                      "floor_read_cpu_seconds": round(floor[1], 3), "loading_cpu_seconds": round(loading[1], 3),
                      "loading/floor_read, cpu": round(loading[1] / floor[1], 2),
                      "runs": {"floor_read": [round(s, 3) for s, _ in floors],
                               "loading": [round(s, 3) for s, _ in loads]},
                      **counts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
