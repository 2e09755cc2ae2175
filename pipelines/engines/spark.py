"""The Spark engine: the same business SQL, transpiled by sqlglot, run by pyspark.

`SparkCompute` is the run's resource when `engine` is spark. When the run starts it
transpiles every business file the run will hand it (pipelines/engines/plan.py; a file
that cannot be transpiled stops the run before any work, naming the file) and starts a
SparkSession in the background: pyspark's local mode (`local[*]`, this machine) or a
cluster through Spark Connect (`sc://host:15002`).

The warehouse stays the system of record. A relation Spark reads that it did not compute
this run (core tables, the rules, ingest's quarantine) is copied from DuckDB to a Parquet
file in the mirror folder and registered as a Spark temporary view (`core.measurements`
-> `core__measurements`). A view the SQL defines is defined on both sides (lazy, no
copy). A table the SQL computes is computed by Spark, written to the mirror folder as
Parquet, read back by DuckDB into the warehouse table of the same name, and registered in
Spark for the statements after it. On a cluster the mirror folder must be a path both the
cluster and this machine see (docs/scale-out.md).
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import re
import shutil
import threading
import warnings
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from pipelines.config import ClinicConfig
from pipelines.engines import Compute
from pipelines.engines.plan import engine_files
from pipelines.engines.transpile import NotPortable, SparkStatement, spark_name, transpile_file
from pipelines.ingest.contract import load_contract
from pipelines.ingest.load import literal_path
from pipelines.settings import ConfigError
from pipelines.sqlfiles import quote_literal

LOCAL = "local[*]"
LOG4J = Path(__file__).with_name("log4j2.properties")


def is_local(remote: str) -> bool:
    """`local[*]`, `local[2]`, `local`: pyspark's local mode in this process's JVM."""
    return remote == "local" or (remote.startswith("local[") and remote.endswith("]"))


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def spark_unavailable(remote: str) -> str | None:
    """Why `engine: spark` cannot run here (a missing package or Java), or None."""
    for module, package in (("pyspark", "pyspark[connect]==4.3.0"), ("sqlglot", "sqlglot==30.30.0")):
        if not _installed(module):
            return (f"--engine spark needs the Python package {module}, which the default install (`make run`, "
                    f"requirements.lock) leaves out: install it with `.venv/bin/pip install -r "
                    f"requirements-test.lock` (what `make test` adds, pinned) or `.venv/bin/pip install "
                    f"'{package}'`, then run again")
    if is_local(remote):
        java_home = os.environ.get("JAVA_HOME")
        if not shutil.which("java") and not (java_home and (Path(java_home) / "bin" / "java").exists()):
            return ("--engine spark in local mode needs a Java runtime, 17 or newer: apt-get install "
                    "default-jre-headless (`make test` installs it), or point --spark-remote at a Spark "
                    "Connect server (sc://host:15002)")
    elif not remote.startswith("sc://"):
        return f"spark remote {remote!r} is neither local[*] nor a Spark Connect URL (sc://host:15002)"
    return None


def start_session(remote: str = LOCAL, app_name: str = "clinic"):
    """A SparkSession: local mode, or Spark Connect when `remote` is an sc:// URL. In the
    same process, an active session is reused (pyspark's getOrCreate)."""
    warnings.filterwarnings("ignore", message=".*pandas.*", category=FutureWarning)  # pyspark 4.3 on pandas 3
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)  # failed queries raise anyway
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC")
    if is_local(remote):
        # pyspark would take SPARK_REMOTE (our setting's variable, maybe holding local[*]) as a
        # request for Spark Connect; local mode is asked for explicitly here.
        os.environ.pop("SPARK_REMOTE", None)
        cores = os.cpu_count() or 2
        builder = (builder.master(remote)
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))  # not 200 on one machine
                   .config("spark.driver.memory", "2g")
                   .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG4J.as_uri()}"))
    else:
        builder = builder.remote(remote)
    return builder.getOrCreate()


def parquet_files(folder: Path) -> str:
    """The Parquet files Spark wrote into `folder`, as a DuckDB glob literal (the folder's
    own glob characters bracketed, as pipelines/ingest/load.py's literal_path does)."""
    return quote_literal(re.sub(r"([*?\[])", r"[\1]", str(folder)) + "/*.parquet")


def transpile_all(contract) -> int:
    """Transpile every business file a run hands to Spark (cached for the run's steps); the
    first that cannot run on Spark raises ConfigError naming it. Returns the statements' number."""
    try:
        return sum(len(transpile_file(stage, name, tuple(sorted(params.items()))))
                   for stage, name, params in engine_files(contract))
    except NotPortable as error:
        raise ConfigError(str(error)) from None


def _active_local_session() -> bool:
    from pyspark import SparkContext

    return SparkContext._active_spark_context is not None


class SparkCompute(Compute):
    """The business SQL on Spark (local mode or Spark Connect), results written back to the warehouse."""

    remote: str = LOCAL
    mirror_dir: str
    contract_file: str = ""

    _session: object = PrivateAttr(default=None)
    _owns_session: bool = PrivateAttr(default=False)
    _starting: threading.Thread | None = PrivateAttr(default=None)
    _start_error: BaseException | None = PrivateAttr(default=None)
    _in_spark: set = PrivateAttr(default_factory=set)
    _mirror_ready: bool = PrivateAttr(default=False)
    _writes: itertools.count = PrivateAttr(default_factory=itertools.count)

    @property
    def engine(self) -> str:
        return "spark"

    def prepare(self) -> int:
        """Transpile every file the run hands to Spark (cached); the first that cannot run on
        Spark stops the run before any work. Returns the number of statements."""
        return transpile_all(load_contract(Path(self.contract_file or ClinicConfig().contract_file)))

    def setup_for_execution(self, context: dg.InitResourceContext | None = None) -> None:
        problem = spark_unavailable(self.remote)
        if problem:
            raise ConfigError(problem)
        self.prepare()
        self._in_spark, self._mirror_ready, self._writes = set(), False, itertools.count()
        # The JVM starts while the ingest runs (5-20 s); the first Spark step waits for it.
        self._starting = threading.Thread(target=self._start, name="spark-session", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        try:
            self._owns_session = not (is_local(self.remote) and _active_local_session())
            self._session = start_session(self.remote)
        except BaseException as error:  # reported by the first step that needs the session
            self._start_error = error

    def teardown_after_execution(self, context: dg.InitResourceContext | None = None) -> None:
        if self._starting is not None:
            self._starting.join()
        if self._session is not None and self._owns_session:
            self._session.stop()
        self._session = None
        shutil.rmtree(self.mirror_dir, ignore_errors=True)  # copies of warehouse rows

    @property
    def session(self):
        if self._session is None:
            if self._starting is None:  # used outside a run (a direct call)
                self.setup_for_execution()
            self._starting.join()
            if self._start_error is not None:
                raise RuntimeError(f"Spark did not start ({self.remote}): {self._start_error}") from self._start_error
        return self._session

    # --- the exchange with the warehouse ----------------------------------------------------

    def _new_path(self, relation: str) -> Path:
        """A fresh folder per write: views defined on an earlier write keep their files."""
        if not self._mirror_ready:  # first use: this run holds the warehouse, so the folder is ours
            shutil.rmtree(self.mirror_dir, ignore_errors=True)
            Path(self.mirror_dir).mkdir(parents=True, exist_ok=True)
            self._mirror_ready = True
        return Path(self.mirror_dir).absolute() / f"{relation}.{next(self._writes):04d}"

    def _mirror(self, con, relation: str) -> None:
        """A warehouse relation Spark has not computed this run, copied to Parquet for Spark."""
        path = self._new_path(relation)
        path.mkdir()
        con.execute(f"COPY (SELECT * FROM {relation}) TO {literal_path(path / 'data.parquet')} (FORMAT parquet)")
        self.session.read.parquet(str(path)).createOrReplaceTempView(spark_name(relation))
        self._in_spark.add(relation)

    def _compute(self, con, statement: SparkStatement) -> None:
        """A table computed by Spark, written to Parquet, read into the warehouse table."""
        path = self._new_path(statement.target)
        self.session.sql(statement.spark_sql).write.mode("overwrite").parquet(str(path))
        self.session.read.parquet(str(path)).createOrReplaceTempView(spark_name(statement.target))
        con.execute(f"CREATE OR REPLACE TABLE {statement.target} AS SELECT * FROM read_parquet({parquet_files(path)})")

    def run(self, con, stage: str, name: str, **params: object) -> None:
        statements = transpile_file(stage, name, tuple(sorted((k, str(v)) for k, v in params.items())))
        for statement in statements:
            for relation in statement.reads:
                if relation not in self._in_spark:
                    self._mirror(con, relation)
            if statement.kind == "view":
                con.execute(statement.duckdb_sql)  # the same definition in the warehouse
                self.session.sql(statement.spark_sql).createOrReplaceTempView(spark_name(statement.target))
            else:
                self._compute(con, statement)
            self._in_spark.add(statement.target)
