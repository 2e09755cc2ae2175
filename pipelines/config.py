"""One deployment's configuration, declared once.

Each field of `ClinicConfig` is at the same time a Dagster resource field (shown in the
UI, injected into assets, checks and the sensor), a `CLINIC_*` environment variable and,
for the paths, a `clinic` command-line option (pipelines/settings.py declares each once):
the defaults come from the environment, then from the repository's own folders. Before a run does any work the resource checks
what a mistake in it would quietly break: the contract, the rules file, the memory cap, the
engine (and, for Spark, that pyspark and a Java runtime are there), the SQL folder's manifest.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from pipelines.settings import ENGINES, SETTINGS, ConfigError, crossing_paths, setting_value, size_in_bytes

RELEASE_PREVIEW = "release-preview"  # the folder a run builds for the clinic: not for release
RELEASE_MANIFEST = "manifest.json"  # a release's (and the preview's) manifest, in its folder

SPEC_MIN_CELL_SIZE = 11  # the spec's min_cell_size (outputs.md): releases show no count of 1 to 10


def below_release_floor(min_cell_size: int) -> str | None:
    """Why no release may be made with this minimum cell size, or None: the spec's min_cell_size
    is the floor, since a smaller one lets counts of a few patients leave the clinic. Below it a
    run warns and still builds its preview (marked), for the clinic's eyes only."""
    if min_cell_size >= SPEC_MIN_CELL_SIZE:
        return None
    return (f"CLINIC_MIN_CELL_SIZE={min_cell_size} is below the spec's {SPEC_MIN_CELL_SIZE}, the floor for a "
            f"release (counts of {min_cell_size} to {SPEC_MIN_CELL_SIZE - 1} patients would leave the clinic)")
MEMORY_LIMIT_FLOOR = 64 * 2**20  # below this DuckDB cannot run the pipeline's queries at all
def _from_env(name: str):
    """A field whose default is read when the resource is made: its variable, then the default."""
    return Field(default_factory=lambda: setting_value(name), description=f"{SETTINGS[name].help} "
                                                                            f"(${SETTINGS[name].env})")


class ClinicConfig(dg.ConfigurableResource):
    """Paths and settings of one deployment (see SETTINGS for each field's variable and flag)."""

    raw_dir: str = _from_env("raw_dir")
    marts_dir: str = _from_env("marts_dir")
    warehouse: str = _from_env("warehouse")
    rules_file: str = _from_env("rules_file")
    contract_file: str = _from_env("contract_file")
    checks_file: str = _from_env("checks_file")
    sql_dir: str = _from_env("sql_dir")
    expectations_dir: str = _from_env("expectations_dir")
    min_cell_size: int = _from_env("min_cell_size")
    gx_max_rows: int = _from_env("gx_max_rows")
    duckdb_memory_limit: str = _from_env("duckdb_memory_limit")
    sql_temp_dir: str = _from_env("sql_temp_dir")
    sql_timeout: int = _from_env("sql_timeout")
    engine: str = _from_env("engine")
    spark_remote: str = _from_env("spark_remote")
    spark_mirror_dir: str = _from_env("spark_mirror_dir")
    release_cadence: str = _from_env("release_cadence")

    @classmethod
    def with_overrides(cls, **given: object) -> ClinicConfig:
        """Defaults from the environment, with the given fields (e.g. command-line flags) set."""
        return cls(**{k: (str(v) if isinstance(v, Path) else v) for k, v in given.items() if v is not None})

    def values(self) -> dict[str, object]:
        """Every setting's value, by its name in SETTINGS."""
        return {name: getattr(self, name) for name in SETTINGS}

    @property
    def snapshot(self) -> Path:
        return Path(self.marts_dir) / "clinic.duckdb"

    @property
    def dashboards_dir(self) -> Path:
        return Path(self.marts_dir) / "dashboards"

    @property
    def release_dir(self) -> Path:
        """The newest release (`clinic release`); a run builds only release_preview_dir."""
        return Path(self.marts_dir) / "release"

    @property
    def release_preview_dir(self) -> Path:
        return Path(self.marts_dir) / RELEASE_PREVIEW

    @property
    def spark_mirror(self) -> Path:
        """Where the warehouse and Spark exchange Parquet files (beside the warehouse by default)."""
        if self.spark_mirror_dir != SETTINGS["spark_mirror_dir"].default:
            return Path(self.spark_mirror_dir)
        warehouse = Path(self.warehouse)
        return warehouse.with_name(warehouse.name + ".spark")

    def contract(self):
        from pipelines.ingest.contract import load_contract

        return load_contract(Path(self.contract_file))

    def rules(self) -> dict:
        from pipelines.response.rules import load_rules

        return load_rules(Path(self.rules_file), self.contract())

    def check(self) -> None:
        """Stop before any work when a setting or a rules file cannot be used."""
        import duckdb

        from pipelines.ingest.contract import ContractError
        from pipelines.quality.gx_validation import SuiteError, check_rule_references
        from pipelines.response.rules import RulesError

        crossing = crossing_paths(self.raw_dir, self.marts_dir, self.warehouse)
        if crossing:
            raise ConfigError(crossing)
        if self.min_cell_size < 1:
            raise ConfigError(f"min_cell_size {self.min_cell_size} must be at least 1 (CLINIC_MIN_CELL_SIZE)")
        if self.gx_max_rows < 1:
            raise ConfigError(f"gx_max_rows {self.gx_max_rows} must be at least 1 (CLINIC_GX_MAX_ROWS): it is how "
                              "many rows Great Expectations validates before it takes a sample")
        marts = Path(self.marts_dir)
        if marts.exists() and not marts.is_dir():
            raise ConfigError(f"the marts folder {marts} is a file, not a folder (--marts, CLINIC_MARTS_DIR)")
        if not Path(self.sql_dir).is_dir():
            raise ConfigError(f"the SQL folder {self.sql_dir} does not exist (CLINIC_SQL_DIR; unset it to use "
                              "the project's sql/)")
        try:
            duckdb.connect(config={"memory_limit": self.duckdb_memory_limit}).close()
        except duckdb.Error:
            raise ConfigError(f"memory limit {self.duckdb_memory_limit!r} is not a size DuckDB understands "
                              "(CLINIC_DUCKDB_MEMORY_LIMIT, e.g. 1GB or 512MB)") from None
        limit = size_in_bytes(self.duckdb_memory_limit)
        if limit is not None and limit < MEMORY_LIMIT_FLOOR:
            raise ConfigError(f"memory limit {self.duckdb_memory_limit!r} is below the {MEMORY_LIMIT_FLOOR // 2**20} MB "
                              "a run needs (CLINIC_DUCKDB_MEMORY_LIMIT, e.g. 1GB or 512MB)")
        if self.release_cadence not in SETTINGS["release_cadence"].choices:
            raise ConfigError(f"release cadence {self.release_cadence!r} is not one of "
                              f"{', '.join(SETTINGS['release_cadence'].choices)} (CLINIC_RELEASE_CADENCE)")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)} (CLINIC_ENGINE, --engine)")
        if self.engine == "spark":
            from pipelines.engines.spark import spark_unavailable, transpile_all

            problem = spark_unavailable(self.spark_remote)
            if problem:
                raise ConfigError(problem)
            transpile_all(self.contract())  # a file Spark cannot run stops the run here, named
        from pipelines.manifest import load_manifest
        from pipelines.settings import sql_dir

        if Path(self.sql_dir).resolve() != sql_dir().resolve():
            raise ConfigError(f"sql_dir {self.sql_dir} differs from the SQL folder this process reads "
                              f"({sql_dir()}): set it with $CLINIC_SQL_DIR alone")
        from pipelines.quality.catalogue import CatalogueError, load_catalogue

        try:
            load_manifest()  # a .sql without its .yml, or the reverse, stops the run here, named
            check_rule_references(Path(self.expectations_dir), self.rules())
            load_catalogue(Path(self.checks_file), self.contract(), Path(self.expectations_dir))
        except FileNotFoundError as error:
            raise ConfigError(f"cannot read {error.filename}: {error.strerror}") from None
        except (ContractError, RulesError, SuiteError, CatalogueError) as error:
            raise ConfigError(str(error)) from None

    def warnings(self) -> list[str]:
        """Settings that work but weaken what the spec asks for (said at the start of a run)."""
        found = []
        if below := below_release_floor(self.min_cell_size):
            found.append(f"{below}: they are not suppressed in the run's release preview (marked so), and "
                         "`clinic release` refuses to make a release")
        return found

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.check()
        for warning in self.warnings():
            context.log.warning(warning)
