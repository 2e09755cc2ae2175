"""Where things live: command-line flags, then CLINIC_* environment variables, then the repo's folders."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
RULES_DIR = REPO_ROOT / "rules"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"


@dataclass(frozen=True)
class ClinicSettings:
    raw_dir: Path
    marts_dir: Path
    warehouse: Path
    rules_file: Path
    contract_file: Path
    checks_file: Path
    expectations_dir: Path
    min_cell_size: int = 11
    gx_max_rows: int = 200_000
    duckdb_memory_limit: str = "1GB"

    @classmethod
    def from_env(cls, **overrides: object) -> ClinicSettings:
        env = os.environ
        settings = cls(
            raw_dir=Path(env.get("CLINIC_RAW_DIR", REPO_ROOT / "data" / "raw")),
            marts_dir=Path(env.get("CLINIC_MARTS_DIR", REPO_ROOT / "data" / "marts")),
            warehouse=Path(env.get("CLINIC_WAREHOUSE", REPO_ROOT / "data" / "warehouse.duckdb")),
            rules_file=Path(env.get("CLINIC_RULES", RULES_DIR / "response_rules.yaml")),
            contract_file=Path(env.get("CLINIC_CONTRACT", RULES_DIR / "contract.yaml")),
            checks_file=Path(env.get("CLINIC_CHECKS", RULES_DIR / "quality_checks.yaml")),
            expectations_dir=Path(env.get("CLINIC_EXPECTATIONS_DIR", EXPECTATIONS_DIR)),
            min_cell_size=int(env.get("CLINIC_MIN_CELL_SIZE", 11)),
            gx_max_rows=int(env.get("CLINIC_GX_MAX_ROWS", 200_000)),
            duckdb_memory_limit=env.get("CLINIC_DUCKDB_MEMORY_LIMIT", "1GB"),
        )
        given = {k: (Path(v) if isinstance(getattr(settings, k), Path) else v)
                 for k, v in overrides.items() if v is not None}
        return replace(settings, **given)

    @property
    def snapshot(self) -> Path:
        return self.marts_dir / "clinic.duckdb"

    @property
    def dashboards_dir(self) -> Path:
        return self.marts_dir / "dashboards"
