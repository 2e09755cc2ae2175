"""The engine that runs the business SQL after ingest, a Dagster resource chosen by
configuration (`engine`: duckdb by default, or spark; docs/scale-out.md).

Assets hand it "this .sql file": `compute.run(con, stage, name, **placeholders)`, with the
step's warehouse connection. DuckDB runs the file in the warehouse, as the project always
has. Spark (pipelines/engines/spark.py) runs the same file transpiled by sqlglot and writes
each table it computes back to the warehouse table of the same name, so everything
downstream (data quality, Great Expectations, release, snapshot, dashboards) reads the
warehouse whichever engine computed it. Which files an engine runs and which always stay in
the warehouse is listed in pipelines/engines/plan.py.
"""

from __future__ import annotations

import dagster as dg

from pipelines.sqlfiles import run_sql


class Compute(dg.ConfigurableResource):
    """Runs a business .sql file; `engine` names it (run_info and asset metadata say it)."""

    @property
    def engine(self) -> str:
        raise NotImplementedError

    @property
    def incremental(self) -> bool:
        """Whether per-patient tables may be refreshed patient by patient (DELETE/INSERT)."""
        return False

    def run(self, con, stage: str, name: str, **params: object) -> None:
        raise NotImplementedError


class DuckDBCompute(Compute):
    """The default: the file runs in the warehouse itself."""

    @property
    def engine(self) -> str:
        return "duckdb"

    @property
    def incremental(self) -> bool:
        return True

    def run(self, con, stage: str, name: str, **params: object) -> None:
        run_sql(con, stage, name, **params)


def build_compute(clinic) -> Compute:
    """The engine resource a ClinicConfig asks for."""
    if clinic.engine == "spark":
        from pipelines.engines.spark import SparkCompute

        return SparkCompute(remote=clinic.spark_remote, mirror_dir=str(clinic.spark_mirror),
                            contract_file=clinic.contract_file)
    return DuckDBCompute()
