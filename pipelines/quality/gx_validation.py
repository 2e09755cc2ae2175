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


def validate_frame(frame: pd.DataFrame, suite_file: Path, table_name: str) -> list[ExpectationOutcome]:
    """Validate a frame against one suite; one outcome per expectation."""
    context = _context()
    suite = load_suite(suite_file)
    source_name = f"clinic_{table_name}"
    try:
        source = context.data_sources.get(source_name)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(source_name)
    asset = source.add_dataframe_asset(name=f"{table_name}_{id(frame)}")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY")
    outcomes = []
    for expectation, r in zip(suite.expectations, result.results, strict=True):
        stats = r.result or {}
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
        ))
    return outcomes
