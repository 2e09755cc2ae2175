"""Great Expectations suites from expectations/*.json, run on pandas frames.

The run calls them through `pipelines.quality.gx_worker` (a process of its own); the
functions here are what that worker does, and what tests call directly.

GX 1.x with an ephemeral context and its pandas datasource (its SQL datasource does
not work on DuckDB). Each expectation becomes one data-quality check: `mostly` gives its
threshold, GX severity (critical, warning, info) its severity (critical -> fatal).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SEVERITY = {"critical": "fatal", "warning": "warning", "info": "info"}


@dataclass(frozen=True)
class ExpectationOutcome:
    table_name: str
    check_name: str
    description: str
    rows_checked: int
    rows_failed: int
    threshold_pct: float
    severity: str
    success: bool
    detail: str = ""  # what failed, by the suite's meta.names_rows_by column (e.g. the instruments)


@cache
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def suite_path(expectations_dir: Path, name: str) -> Path:
    return Path(expectations_dir) / f"{name}.json"


def load_suite(path: Path):
    import great_expectations as gx

    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return gx.ExpectationSuite(**doc)


def _check_name(expectation) -> str:
    kwargs = expectation.configuration.kwargs
    target = (kwargs.get("column") or ",".join(kwargs.get("column_list", []) or [])
              or ",".join(kwargs[k] for k in ("column_A", "column_B") if kwargs.get(k)))
    return f"gx:{expectation.expectation_type}" + (f"({target})" if target else "")


_validations: dict[tuple[str, float, str], object] = {}


def _validation(suite_file: Path, table_name: str):
    """One GX ValidationDefinition per suite and table, made once per process: its runs are
    kept in the context's results store, which build_data_docs renders."""
    import great_expectations as gx

    path = Path(suite_file).resolve()
    key = (str(path), path.stat().st_mtime, table_name)
    if key not in _validations:
        context = _context()
        name = f"{path.stem} @ {table_name}" + (f" #{len(_validations)}" if any(
            k[0] != key[0] and k[2] == table_name and Path(k[0]).stem == path.stem for k in _validations) else "")
        try:
            source = context.data_sources.get("clinic")
        except (KeyError, ValueError):
            source = context.data_sources.add_pandas("clinic")
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("whole")
        suite = load_suite(path)
        suite.name = name
        context.suites.add_or_update(suite)
        _validations[key] = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=context.suites.get(name)))
    return _validations[key]


def validate_frame(frame: pd.DataFrame, suite_file: Path, table_name: str) -> list[ExpectationOutcome]:
    """Validate a frame against one suite; one outcome per expectation."""
    validation = _validation(suite_file, table_name)
    suite = validation.suite
    names_rows_by = (suite.meta or {}).get("names_rows_by")
    # BASIC: counts without value tallies (~30% faster); a suite whose rows are named (one row
    # per instrument) asks for the names of the failing rows, so a failure says which.
    result_format = "BASIC" if not names_rows_by else {
        "result_format": "SUMMARY", "unexpected_index_column_names": [names_rows_by]}
    result = validation.run(batch_parameters={"dataframe": frame}, result_format=result_format)
    outcomes = []
    for expectation, r in zip(suite.expectations, result.results, strict=True):
        stats = r.result or {}
        named = sorted({str(row[names_rows_by]) for row in stats.get("partial_unexpected_index_list") or []
                        if isinstance(row, dict) and names_rows_by in row}) if names_rows_by else []
        checked = int(stats.get("element_count", len(frame)) or 0)
        failed = int(stats.get("unexpected_count", 0) or 0)
        if not r.success and failed == 0:
            failed = max(checked, 1)  # a table-level expectation failed as a whole
        mostly = float(getattr(expectation, "mostly", 1.0) or 1.0)
        severity = getattr(expectation, "severity", None)
        outcomes.append(ExpectationOutcome(
            table_name=table_name,
            check_name=_check_name(expectation),
            description=expectation.description or expectation.expectation_type.replace("_", " "),
            rows_checked=checked,
            rows_failed=failed,
            threshold_pct=round(100 * (1 - mostly), 6),
            severity=SEVERITY.get(str(getattr(severity, "value", severity) or "critical"), "fatal"),
            success=bool(r.success),
            detail=", ".join(named),
        ))
    return outcomes


def build_data_docs(folder: Path) -> Path:
    """Render this process's validation results as Great Expectations' own Data Docs site in
    `folder` (then made to work offline: see pipelines/quality/data_docs.py)."""
    context = _context()
    sites = context.get_config().data_docs_sites or {}
    if "clinic" not in sites:
        context.add_data_docs_site(site_name="clinic", site_config={
            "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)}})
    context.build_data_docs(site_names=["clinic"])
    return Path(folder) / "index.html"
