"""The check catalogue: every data-quality check, declared once, as one table.

Like the OHDSI Data Quality Dashboard, a check is a row: what it checks (level, table,
columns), how much may fail (threshold) and what a failure means (severity), and what
implements it. `rules/quality_checks.yaml` declares the checks the pipeline's own code runs
(the contract's row checks, the loader's file checks, reconciliation, derived findings);
the Great Expectations suites in `expectations/` declare theirs. This module joins both into
`quality.check_catalogue`, one row per check and table; `sql/quality/data_quality.sql`
crosses it with what the run found.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.declared import declared_text, load_yaml
from pipelines.ingest.contract import Contract, row_checks
from pipelines.manifest import Manifest, load_manifest
from pipelines.quality.gx_validation import expectation_columns, gx_check_name, suite_files

LEVELS = ("file", "row", "table", "dataset", "mart")
SEVERITIES = ("fatal", "warning", "info")
IMPLEMENTERS = ("contract", "ingest", "staging", "reconciliation", "derived", "great_expectations")
GX_SEVERITY = {"critical": "fatal", "warning": "warning", "info": "info"}


class CatalogueError(ValueError):
    """The catalogue or a suite cannot be used; the message names the check."""


@dataclass(frozen=True)
class CatalogueRow:
    check_name: str
    table_name: str
    column_name: str  # the columns it reads, comma-separated ('' for the whole row or file)
    level: str
    implemented_by: str
    threshold_pct: float
    severity: str
    description: str


def suite_tables(path: Path, contract: Contract, manifest: Manifest | None = None) -> tuple[list[str], str]:
    """The tables a suite validates and its level: a mart suite, every model whose .yml names
    it (`expectations:`, pipelines/manifest.py); another, its meta.table (`*`: every contract table)."""
    meta = json.loads(Path(path).read_text(encoding="utf-8")).get("meta", {})
    table, level = meta.get("table"), meta.get("level")
    if level == "mart":
        tables = [m.relation for m in (manifest or load_manifest()).models.values() if m.suite == path.stem]
        if not tables:
            raise CatalogueError(f"{path.name}: no model's .yml names this suite: add `expectations: {path.stem}` "
                                 "to the mart's .yml, or remove the suite")
        return tables, level
    if not table or level not in LEVELS:
        raise CatalogueError(f"{path.name}: meta must name the table and a level ({', '.join(LEVELS)})")
    return (list(contract.tables) if table == "*" else [table]), level


def suite_rows(path: Path, contract: Contract, manifest: Manifest | None = None) -> list[CatalogueRow]:
    """One catalogue row per expectation of a suite and table it validates."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    tables, level = suite_tables(path, contract, manifest)
    rows = []
    for e in doc["expectations"]:
        kwargs = e.get("kwargs", {})
        severity = GX_SEVERITY.get(e.get("severity", "critical"))
        if severity is None:
            raise CatalogueError(f"{path.name}: {e['type']} has severity {e.get('severity')!r}")
        rows += [CatalogueRow(
            gx_check_name(e["type"], kwargs), table, ",".join(expectation_columns(kwargs)), level,
            "great_expectations", round(100 * (1 - float(kwargs.get("mostly", 1.0))), 6), severity,
            e.get("description") or e["type"].replace("_", " ")) for table in tables]
    return rows


def _contract_columns(contract: Contract) -> dict[tuple[str, str], list[str]]:
    """(table, rule) -> the columns the contract's generated row checks apply it to."""
    found: dict[tuple[str, str], list[str]] = {}
    for table in contract.tables.values():
        for check in row_checks(contract, table, []):
            found.setdefault((table.name, check.rule), [])
            if check.column and check.column not in found[(table.name, check.rule)]:
                found[(table.name, check.rule)].append(check.column)
    return found


def load_catalogue(checks_file: Path, contract: Contract, expectations_dir: Path) -> list[CatalogueRow]:
    """Every check as one row per table it applies to; refuses what it cannot use."""
    doc = load_yaml(declared_text(checks_file, "check catalogue", CatalogueError))
    contract_columns = _contract_columns(contract)
    rows: list[CatalogueRow] = []
    for c in doc["checks"]:
        name = c["check"]
        if c.get("level") not in LEVELS or c.get("severity") not in SEVERITIES or \
                c.get("implemented_by") not in IMPLEMENTERS or c["implemented_by"] == "great_expectations":
            raise CatalogueError(f"{checks_file}: check {name} needs a level ({', '.join(LEVELS)}), a severity "
                                 f"({', '.join(SEVERITIES)}) and implemented_by (one of {', '.join(IMPLEMENTERS[:-1])}"
                                 "; Great Expectations checks are declared in their suites)")
        tables = c.get("tables", list(contract.tables))
        for table in tables:
            if table not in contract.tables and table != "(export)":
                raise CatalogueError(f"{checks_file}: check {name} names table {table}, not in the contract")
            if c["implemented_by"] == "contract":
                if (table, name) not in contract_columns:
                    continue  # the contract has no such rule for this table (e.g. no enum column)
                columns = ", ".join(contract_columns[(table, name)])
            else:
                unknown = [col for col in c.get("columns", []) if col not in contract.tables[table].column_names]
                if unknown:
                    raise CatalogueError(f"{checks_file}: check {name} names columns {unknown}, not in {table}")
                columns = ", ".join(c.get("columns", []))
            rows.append(CatalogueRow(name, table, columns, c["level"], c["implemented_by"],
                                     float(c["threshold_pct"]), c["severity"], c["description"]))
    for suite in suite_files(expectations_dir):
        rows += suite_rows(suite, contract)
    keys = [(r.check_name, r.table_name) for r in rows]
    if doubled := sorted({k for k in keys if keys.count(k) > 1}):
        raise CatalogueError(f"checks declared twice for a table: {doubled[:3]}")
    return rows


def declared_columns(checks_file: Path, check: str) -> dict[str, tuple[str, ...]]:
    """table -> the columns a catalogue check declares (e.g. what identity_conflict compares)."""
    doc = load_yaml(Path(checks_file).read_text(encoding="utf-8"))
    return {table: tuple(c.get("columns", [])) for c in doc["checks"] if c["check"] == check
            for table in c.get("tables", [])}


def write_catalogue(con, rows: list[CatalogueRow]) -> None:
    """quality.check_catalogue, the left-hand side of marts.data_quality."""
    con.execute("CREATE OR REPLACE TABLE quality.check_catalogue (check_name VARCHAR, table_name VARCHAR, "
                "column_name VARCHAR, level VARCHAR, implemented_by VARCHAR, threshold_pct DOUBLE, "
                "severity VARCHAR, description VARCHAR)")
    con.executemany("INSERT INTO quality.check_catalogue VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [tuple(asdict(r).values()) for r in rows])
