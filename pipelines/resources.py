"""Resources the assets get injected: where things live, and the warehouse connection."""


from contextlib import ExitStack
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from pipelines.quality.gx_worker import GxWorker, take_or_start
from pipelines.settings import ClinicSettings


class ClinicConfig(dg.ConfigurableResource):
    """Paths and settings for one deployment (CLI flags / CLINIC_* variables fill it)."""

    raw_dir: str
    marts_dir: str
    warehouse: str
    rules_file: str
    contract_file: str
    checks_file: str
    expectations_dir: str
    min_cell_size: int = 11
    gx_max_rows: int = 200_000

    @classmethod
    def from_settings(cls, s: ClinicSettings) -> "ClinicConfig":
        return cls(raw_dir=str(s.raw_dir), marts_dir=str(s.marts_dir), warehouse=str(s.warehouse),
                   rules_file=str(s.rules_file), contract_file=str(s.contract_file),
                   checks_file=str(s.checks_file), expectations_dir=str(s.expectations_dir),
                   min_cell_size=s.min_cell_size, gx_max_rows=s.gx_max_rows)

    @property
    def settings(self) -> ClinicSettings:
        return ClinicSettings(
            raw_dir=Path(self.raw_dir), marts_dir=Path(self.marts_dir),
            warehouse=Path(self.warehouse), rules_file=Path(self.rules_file),
            contract_file=Path(self.contract_file), checks_file=Path(self.checks_file),
            expectations_dir=Path(self.expectations_dir), min_cell_size=self.min_cell_size,
            gx_max_rows=self.gx_max_rows)


class Warehouse(DuckDBResource):
    """DuckDBResource that holds the warehouse open for the whole run: a step's connection
    then joins the open database instead of reopening the file (and checkpointing it at
    every step's end), and no other process can take the write lock between two steps."""

    _held: ExitStack = PrivateAttr(default_factory=ExitStack)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._held.enter_context(self.get_connection())  # the same configuration as a step's

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._held.close()


class GreatExpectations(dg.ConfigurableResource):
    """Runs the GX suites for the run's checks in a worker process that lives as long as
    the run (pipelines/quality/gx_worker.py): started when the run starts, so importing GX
    overlaps ingest instead of stalling it."""

    _worker: GxWorker | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._worker = take_or_start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def validate(self, con, query: str, suite_file: Path, table_name: str):
        """(rows validated, one ExpectationOutcome per expectation) for the rows of `query`."""
        if self._worker is None:  # used outside a run (a direct call in a script or test)
            self._worker = take_or_start()
        return self._worker.validate(con, query, suite_file, table_name)


def build_resources(settings: ClinicSettings) -> dict:
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return {
        "clinic": ClinicConfig.from_settings(settings),
        # A memory cap makes DuckDB spill big intermediate tables to disk instead of
        # growing with the export (the 2 GiB target at 10^7 rows covers Python too).
        "warehouse": Warehouse(database=str(settings.warehouse),
                               connection_config={"memory_limit": settings.duckdb_memory_limit}),
        "great_expectations": GreatExpectations(),
    }
