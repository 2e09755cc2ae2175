"""Resources the assets get injected: where things live, and the warehouse connection."""


from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

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


def build_resources(settings: ClinicSettings) -> dict:
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return {
        "clinic": ClinicConfig.from_settings(settings),
        # A memory cap makes DuckDB spill big intermediate tables to disk instead of
        # growing with the export (the 2 GiB target at 10^7 rows covers Python too).
        "warehouse": DuckDBResource(database=str(settings.warehouse),
                                    connection_config={"memory_limit": settings.duckdb_memory_limit}),
    }
