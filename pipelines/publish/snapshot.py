"""Publishing: a read-only snapshot of the marts and one Parquet file per mart, atomically.

The warehouse is written by one process at a time; analysts and dashboards read the
snapshot, which is written beside the old one and renamed over it, so a reader sees the
old or the new snapshot, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.sqlfiles import quote_literal

MARTS = ["patient_response", "response_by_indication", "measure_trajectory", "tolerability",
         "titration", "cohort_flow", "data_quality", "quarantine", "run_info"]
# Marts refreshed patient by patient are published in a stable order all the same.
PUBLISH_ORDER = {"patient_response": "ORDER BY patient_id"}


def publish_snapshot(con, marts_dir: Path) -> dict[str, Path]:
    """Copy the marts into marts_dir/clinic.duckdb and marts_dir/<mart>.parquet."""
    marts_dir.mkdir(parents=True, exist_ok=True)
    snapshot = marts_dir / "clinic.duckdb"
    staging = marts_dir / f".clinic.duckdb.{os.getpid()}.tmp"
    staging.unlink(missing_ok=True)
    con.execute(f"ATTACH {quote_literal(str(staging))} AS publish_target")
    try:
        con.execute("CREATE SCHEMA publish_target.marts")
        for mart in MARTS:
            con.execute(f"CREATE TABLE publish_target.marts.{mart} AS SELECT * FROM marts.{mart} "
                        f"{PUBLISH_ORDER.get(mart, '')}")
    finally:
        con.execute("DETACH publish_target")
    os.replace(staging, snapshot)
    written = {"clinic.duckdb": snapshot}
    for mart in MARTS:
        target = marts_dir / f"{mart}.parquet"
        tmp = marts_dir / f".{mart}.parquet.{os.getpid()}.tmp"
        con.execute(f"COPY (SELECT * FROM marts.{mart} {PUBLISH_ORDER.get(mart, '')}) "
                    f"TO {quote_literal(str(tmp))} (FORMAT parquet)")
        os.replace(tmp, target)
        written[target.name] = target
    return written
