"""Resources the assets get injected: the configuration, the warehouse, Great Expectations."""

import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from pipelines.config import ClinicConfig
from pipelines.engines import build_compute
from pipelines.quality.gx_worker import GxWorker, park, process_alive, take_or_start


class Warehouse(DuckDBResource):
    """DuckDBResource that holds the warehouse open for the whole run: a step's connection
    then joins the open database instead of reopening the file (and checkpointing it at
    every step's end), and no other process can take the write lock between two steps."""

    _held: ExitStack = PrivateAttr(default_factory=ExitStack)

    def _connect(self):
        return duckdb.connect(self.database, read_only=False,
                              config={"custom_user_agent": "dagster", **self.connection_config})

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Opened once, without dagster-duckdb's retries: a warehouse another process holds is
        # reported at once (exit 3), not after ~100 s of backoff. The steps' connections then
        # join this open database (the same configuration).
        self._held.callback(self._connect().close)
        remove_stale_spill_files(Path(f"{self.database}.tmp"))

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A step's connection, closed however the step ends: dagster-duckdb's own is left open
        when the step raises, so a process that runs jobs in process (tests, a script) kept the
        warehouse open after a failed run, and its next run or reader could not open it."""
        con = self._connect()
        try:
            yield con
        finally:
            con.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._held.close()


def remove_stale_spill_files(spill_dir: Path) -> None:
    """The spill files of a process that was killed: DuckDB's (`duckdb_temp_<pid>_...`) and the
    ingest's scratch database (`clinic_ingest_<pid>.duckdb`, pipelines/ingest/load.py). Both are
    left behind, and they hold warehouse rows. Safe once this run holds the warehouse."""
    from pipelines.ingest.load import SCRATCH_FILE

    owner = re.compile(r"(?:duckdb_temp_|" + re.escape(SCRATCH_FILE.split("{pid}")[0]) + r")(\d+)(?:[_.]|$)")
    for path in spill_dir.glob("*"):
        found = owner.match(path.name)
        if found and not process_alive(int(found.group(1))):
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


def _run_started(context: dg.InitResourceContext) -> datetime:
    """When the Dagster run started (its run record), or now if the instance does not say."""
    record = context.instance.get_run_record_by_id(context.run_id) if context.instance else None
    started = record.start_time if record is not None else None
    return datetime.fromtimestamp(started or time.time(), tz=UTC)


class GreatExpectations(dg.ConfigurableResource):
    """Runs the GX suites for the run's checks in a worker process (pipelines/quality/gx_worker.py):
    started when the run starts, so importing GX overlaps ingest instead of stalling it, and
    kept, reset, for the next run in the same process."""

    rules_file: str = ""  # what the suites' {"$rules": ...} references read (the run's rules file)
    _worker: GxWorker | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._worker = take_or_start()
        if context.run_id:  # the Data Docs name each validation by its Dagster run, not `__none__`
            self._worker.name_run(context.run_id, _run_started(context))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._worker is not None:
            park(self._worker)  # reset, for this process's next run
            self._worker = None

    def _started(self) -> GxWorker:
        if self._worker is None:  # used outside a run (a direct call in a script or test)
            self._worker = take_or_start()
        return self._worker

    def validate(self, con, query: str, suite_file: Path, table_name: str):
        """(rows validated, one ExpectationOutcome per expectation) for the rows of `query`."""
        return self._started().validate(con, query, suite_file, table_name,
                                        Path(self.rules_file) if self.rules_file else None)

    def validate_groups(self, con, query: str, suite_file: Path, table_name: str, group_by: list[str],
                        groups: list[tuple]):
        """(rows validated, for each group one ExpectationOutcome per expectation): one validation
        of the rows of `query` for many groups of them (gx_validation.validate_groups)."""
        return self._started().validate_groups(con, query, suite_file, table_name, group_by, groups,
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
