"""Resources the assets get injected: the configuration, the warehouse, Great Expectations."""

import os
import time
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from pipelines.config import ClinicConfig
from pipelines.engines import build_compute
from pipelines.quality.gx_worker import GxWorker, process_alive, take_or_start


class Warehouse(DuckDBResource):
    """DuckDBResource that holds the warehouse open for the whole run: a step's connection
    then joins the open database instead of reopening the file (and checkpointing it at
    every step's end), and no other process can take the write lock between two steps."""

    _held: ExitStack = PrivateAttr(default_factory=ExitStack)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Opened once, without dagster-duckdb's retries: a warehouse another process holds is
        # reported at once (exit 3), not after ~100 s of backoff. The steps' connections then
        # join this open database (the same configuration as get_connection's).
        con = duckdb.connect(self.database, read_only=False,
                             config={"custom_user_agent": "dagster", **self.connection_config})
        self._held.callback(con.close)
        remove_stale_spill_files(Path(f"{self.database}.tmp"))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._held.close()


def remove_stale_spill_files(spill_dir: Path) -> None:
    """DuckDB's spill files of a process that was killed (`duckdb_temp_<pid>_...`): DuckDB
    leaves them, and they hold warehouse rows. Safe once this run holds the warehouse."""
    for path in spill_dir.glob("duckdb_temp_*"):
        pid = path.name.split("_")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)


def move_damaged_aside(warehouse: Path) -> Path:
    """Move a damaged warehouse and its WAL aside (`<name>.damaged-<UTC time>`, kept for a
    post-mortem), so the run builds a new one from the raw exports. Returns where it went."""
    warehouse = Path(warehouse)
    aside = warehouse.with_name(f"{warehouse.name}.damaged-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
    os.replace(warehouse, aside)
    wal = warehouse.with_name(warehouse.name + ".wal")
    if wal.exists():
        os.replace(wal, aside.with_name(aside.name + ".wal"))
    return aside


class GreatExpectations(dg.ConfigurableResource):
    """Runs the GX suites for the run's checks in a worker process that lives as long as
    the run (pipelines/quality/gx_worker.py): started when the run starts, so importing GX
    overlaps ingest instead of stalling it."""

    rules_file: str = ""  # what the suites' {"$rules": ...} references read (the run's rules file)
    _worker: GxWorker | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._worker = take_or_start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _started(self) -> GxWorker:
        if self._worker is None:  # used outside a run (a direct call in a script or test)
            self._worker = take_or_start()
        return self._worker

    def validate(self, con, query: str, suite_file: Path, table_name: str):
        """(rows validated, one ExpectationOutcome per expectation) for the rows of `query`."""
        return self._started().validate(con, query, suite_file, table_name,
                                        Path(self.rules_file) if self.rules_file else None)

    def build_data_docs(self, folder: Path) -> Path:
        """GX's Data Docs site of this run's validations, in `folder`; returns its index page."""
        return self._started().build_data_docs(folder)


def build_resources(clinic: ClinicConfig) -> dict:
    """The run's resources, all configured from the one ClinicConfig."""
    Path(clinic.warehouse).parent.mkdir(parents=True, exist_ok=True)
    return {
        "clinic": clinic,
        # A memory cap makes DuckDB spill big intermediate tables to disk instead of
        # growing with the export (the 2 GiB target at 10^7 rows covers Python too).
        "warehouse": Warehouse(database=clinic.warehouse,
                               connection_config={"memory_limit": clinic.duckdb_memory_limit}),
        "great_expectations": GreatExpectations(rules_file=clinic.rules_file),
        # The engine that runs the business SQL after ingest: DuckDB (the warehouse itself) or
        # Spark (pipelines/engines/spark.py), by the `engine` setting.
        "compute": build_compute(clinic),
    }
