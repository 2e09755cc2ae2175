"""Where the project's own files live, and each setting of a deployment: its environment
variable, its command-line flag and its default (pipelines/config.py makes them the Dagster
resource; this module stays free of Dagster so `clinic sql` starts fast)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
RULES_DIR = REPO_ROOT / "rules"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
# Under the marts folder: one line per release sent (what every later release, and each run's
# release preview, is protected together with).
RELEASE_LEDGER = Path("releases") / "ledger.jsonl"


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
    "sql_dir": Setting("CLINIC_SQL_DIR", None, SQL_DIR,
                       "the SQL models and their .yml manifest (sql/<stage>/<name>.sql and .yml); a copy with "
                       "a new model adds its asset, publishing and checks"),
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
    "sql_temp_dir": Setting("CLINIC_SQL_TEMP_DIR", None, "<system temp>/clinic_sql",
                            "where `clinic sql` and `clinic explain` spill beyond the memory cap",
                            commands=("sql", "explain")),
    "sql_timeout": Setting("CLINIC_SQL_TIMEOUT", None, 0,
                           "seconds a `clinic sql` statement may run before it is cancelled (0: no limit; "
                           "--timeout)", commands=("sql",), metavar="SECONDS"),
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


def sql_dir() -> Path:
    """The SQL folder this process runs ($CLINIC_SQL_DIR, else the repository's sql/), read
    when used so a run (or a test) can point at a copy."""
    return Path(setting_value("sql_dir"))


def crossing_paths(raw_dir: object, marts_dir: object, warehouse: object) -> str | None:
    """Why the raw folder, the marts folder and the warehouse cannot be used together (one is,
    or is inside, another: a warehouse in the marts folder would be written into the published
    set, a marts folder in the raw folder read as an export), or None. Links are followed."""
    places = {"the warehouse": warehouse, "the raw folder": raw_dir, "the marts folder": marts_dir}
    resolved = {name: Path(str(path)).expanduser().resolve() for name, path in places.items()}
    for name, path in resolved.items():
        for other, other_path in resolved.items():
            if name != other and path.is_relative_to(other_path):
                how = "is" if path == other_path else "is inside"
                return (f"{name} {places[name]} {how} {other} {places[other]}"
                        + (f" (it resolves to {path})" if str(path) != str(places[name]) else "")
                        + ": the warehouse, the raw folder and the marts folder must be apart. Point "
                          "--warehouse, --raw and --marts (CLINIC_WAREHOUSE, CLINIC_RAW_DIR, CLINIC_MARTS_DIR) "
                          "at separate places and run again.")
    return None


def in_project(path: Path) -> str:
    """A default path inside the project as help says it: the commands read it there from any
    folder, not relative to the one they are run in."""
    return f"{path.relative_to(REPO_ROOT)} in the project folder"


def default_shown(name: str) -> str:
    """A setting's default as help shows it (a path: in_project)."""
    default = SETTINGS[name].default
    return in_project(default) if isinstance(default, Path) else str(default)


def default_source(name: str) -> str:
    """Where a setting comes from when its option is not given, as help says it."""
    return f"${SETTINGS[name].env} or {default_shown(name)}"


def add_marts_option(parser) -> None:
    """`--marts` as `clinic sql` and `clinic explain` take it: the published snapshot they read."""
    parser.add_argument(SETTINGS["marts_dir"].flag, dest="marts", metavar="DIR",
                        help=f"publish folder holding clinic.duckdb (default: {default_source('marts_dir')})")


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


_UNITS = {"": 1, "b": 1, "byte": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def size_in_bytes(size: str) -> int | None:
    """A size as DuckDB reads it (`1KB`, `512 MiB`, `2GB`), in bytes; None for other forms."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(size))
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
