"""Where the project's own files live, and each setting of a deployment: its environment
variable, its command-line flag and its default (pipelines/config.py makes them the Dagster
resource; this module stays free of Dagster so `clinic sql` starts fast)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
RULES_DIR = REPO_ROOT / "rules"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"


ENGINES = ("duckdb", "spark")


class ConfigError(ValueError):
    """A setting cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class Setting:
    """How one field is set: its environment variable, its command-line flag, its default."""

    env: str
    flag: str | None  # a command-line option for the commands listed; None: environment only
    default: object
    help: str
    commands: tuple[str, ...] = ("run", "ui")
    choices: tuple[str, ...] | None = None  # the values a flag accepts (None: any)
    metavar: str = "PATH"


SETTINGS = {
    "raw_dir": Setting("CLINIC_RAW_DIR", "--raw", REPO_ROOT / "data" / "raw",
                       "folder of export folders (each applied once it holds _READY)"),
    "marts_dir": Setting("CLINIC_MARTS_DIR", "--marts", REPO_ROOT / "data" / "marts",
                         "where the snapshot, Parquet files, dashboards and release bundle are published",
                         ("run", "ui", "sql", "explain", "release")),
    "warehouse": Setting("CLINIC_WAREHOUSE", "--warehouse", REPO_ROOT / "data" / "warehouse.duckdb",
                         "the DuckDB file the pipeline owns while it runs", ("run", "ui", "release")),
    "rules_file": Setting("CLINIC_RULES", "--rules", RULES_DIR / "response_rules.yaml",
                          "the versioned response rules", ("run", "ui", "release")),
    "contract_file": Setting("CLINIC_CONTRACT", None, RULES_DIR / "contract.yaml",
                             "the export contract"),
    "checks_file": Setting("CLINIC_CHECKS", None, RULES_DIR / "quality_checks.yaml",
                           "the data-quality check catalogue"),
    "expectations_dir": Setting("CLINIC_EXPECTATIONS_DIR", None, EXPECTATIONS_DIR,
                                "the Great Expectations suites"),
    "min_cell_size": Setting("CLINIC_MIN_CELL_SIZE", None, 11,
                             "the release bundle suppresses counts from 1 to this minus 1"),
    "release_cadence": Setting("CLINIC_RELEASE_CADENCE", None, "off",
                               "when the release schedule makes a release by itself: off, weekly or monthly "
                               "(off: only `clinic release` does)", choices=("off", "weekly", "monthly")),
    "gx_max_rows": Setting("CLINIC_GX_MAX_ROWS", None, 200_000,
                           "above this many rows Great Expectations validates a fixed hash sample"),
    "duckdb_memory_limit": Setting("CLINIC_DUCKDB_MEMORY_LIMIT", None, "1GB",
                                   "DuckDB's memory cap; it spills to disk beyond it"),
    "engine": Setting("CLINIC_ENGINE", "--engine", "duckdb",
                      "the engine that runs the business SQL after ingest (staging, scoring, categories, "
                      "marts): duckdb, or spark (the same sql/ files transpiled by sqlglot; docs/scale-out.md)",
                      choices=ENGINES, metavar="{duckdb,spark}"),
    "spark_remote": Setting("SPARK_REMOTE", "--spark-remote", "local[*]",
                            "where --engine spark runs: local[*] (pyspark's local mode, this machine) or a "
                            "Spark Connect URL such as sc://host:15002", metavar="URL"),
    "spark_mirror_dir": Setting("CLINIC_SPARK_MIRROR", None, "<warehouse>.spark",
                                "with --engine spark: the folder of Parquet files the warehouse and Spark "
                                "exchange (a path the cluster shares)", commands=("run", "ui")),
}


def setting_value(name: str, given: object = None) -> object:
    """A setting's value: given (a flag), else its environment variable, else its default."""
    setting = SETTINGS[name]
    if given is not None:
        return str(given) if isinstance(given, Path) else given
    raw = os.environ.get(setting.env)
    if raw is None:
        return str(setting.default) if isinstance(setting.default, Path) else setting.default
    if isinstance(setting.default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{setting.env}={raw!r} is not a whole number") from None
    return raw
